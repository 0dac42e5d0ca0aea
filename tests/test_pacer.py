"""Pacing: the arithmetic, and the shared schedule in Postgres across pacers."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest

from dialer import pacer, repository

SID = "AC" + "1" * 32


def test_spacing_keeps_a_margin_below_the_cps() -> None:
    for cps in (1, 10, 30, 100):
        gap = pacer.slot_spacing(cps)
        assert gap > 1 / cps
        # cps + 1 consecutive slots never fit in one second, even when a send is
        # LATE_TOLERANCE late: the guarantee behind "no window above the CPS".
        assert cps * gap - pacer.LATE_TOLERANCE > 1.0
        assert cps * gap < 1.01


def test_aimd_halves_and_recovers() -> None:
    assert pacer.backed_off(1.0) == 0.5
    assert pacer.backed_off(pacer.MIN_FACTOR) == pacer.MIN_FACTOR
    assert pacer.recovered(0.5, 2.0) == pytest.approx(0.7)
    assert pacer.recovered(0.95, 5.0) == 1.0


async def _slots(pool: asyncpg.Pool, cps: float, pacers: int, sends: int) -> list[float]:
    """The slots of the turns the pacers gave, in order. The slots, not the moments the
    turns were noticed: a loaded machine may stop this process for milliseconds between
    a turn's check and any clock reading after it."""
    await repository.upsert_account(pool, SID, cps, None)
    slots: list[float] = []

    async def worker(p: pacer.AccountPacer) -> None:
        for _ in range(sends):
            slot = await p.wait_turn()
            assert time.monotonic() >= slot  # never early
            slots.append(slot)

    group = [
        pacer.AccountPacer(
            account_sid=SID, cps=cps,
            reserve=lambda sid, n, gap: repository.reserve_slots(pool, sid, n, gap),
        )
        for _ in range(pacers)
    ]
    await asyncio.gather(*(worker(p) for p in group))
    for p in group:
        await p.aclose()
    return sorted(slots)


@pytest.mark.parametrize("pacers", [1, 3])
async def test_pacers_sharing_an_account_never_beat_its_cps(
    pool: asyncpg.Pool, pacers: int
) -> None:
    cps = 50
    slots = await _slots(pool, cps, pacers, sends=120 // pacers)
    # Any cps + 1 turns in a row, whichever pacers gave them, span more than a second
    # even when the first is sent LATE_TOLERANCE after its slot (pacer.at_slot): no
    # one-second window holds more than cps sends. What this leaves for the error of
    # each pacer's estimate of the database clock is the margin less that tolerance.
    spans = [slots[i + cps] - slots[i] for i in range(len(slots) - cps)]
    assert min(spans) > 1 + pacer.LATE_TOLERANCE
    # The rate is never above the CPS, nor far below it: slots a busy machine wakes late
    # for are skipped, which costs rate, never bursts (how much rate is a timing figure:
    # bench/pacing.py measures it on a quiet machine).
    mean = (slots[-1] - slots[0]) / (len(slots) - 1)
    assert 1 / cps <= mean < 1.5 / cps


async def test_unknown_account_is_an_error(pool: asyncpg.Pool) -> None:
    with pytest.raises(LookupError, match="not in the database"):
        await repository.reserve_slots(pool, "AC" + "9" * 32, 1, 0.1)
