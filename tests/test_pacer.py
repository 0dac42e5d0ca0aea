"""Pacing: the arithmetic, and the shared schedule in Postgres across pacers."""

from __future__ import annotations

import asyncio
import time
from functools import partial

import asyncpg
import pytest

from dialer import pacer, repository
from dialer.account_runtime import reserve_slots

SID = "AC" + "1" * 32


def test_spacing_keeps_a_margin_below_the_cps() -> None:
    for cps in (1, 10, 30, 100):
        gap = pacer.slot_spacing(cps)
        assert gap > 1 / cps
        # cps + 1 consecutive slots never fit in one second, even when the first is
        # sent as late as a send may be, with a millisecond left for its way to the
        # server: the guarantee behind "no window above the CPS".
        assert cps * gap - pacer.send_tolerance(cps) >= 1.0 + 0.001 - 1e-9
        assert cps * gap < 1.01


def test_aimd_halves_and_recovers() -> None:
    assert pacer.backed_off(1.0) == 0.5
    assert pacer.backed_off(pacer.MIN_FACTOR) == pacer.MIN_FACTOR
    assert pacer.recovered(0.5, 2.0) == pytest.approx(0.7)
    assert pacer.recovered(0.95, 5.0) == 1.0


async def wait_turn(p: pacer.AccountPacer) -> pacer.Slot:
    """What the dispatcher and the transport do with a slot, without the request: sleep
    until it (timers may fire up to a millisecond early), and give it up as missed when
    woken past its deadline."""
    while True:
        slot = await p.next_slot()
        while (delay := slot.at - time.monotonic()) > 0:  # noqa: ASYNC110 (a deadline)
            await asyncio.sleep(delay)
        if time.monotonic() <= slot.deadline:
            return slot
        p.missed(slot)


async def _turns(group: list[pacer.AccountPacer], sends: int) -> list[pacer.Slot]:
    """The slots of the turns the pacers gave, in order. The slots, not the moments the
    turns were noticed: a loaded machine may stop this process for milliseconds between
    a turn's check and any clock reading after it."""
    slots: list[pacer.Slot] = []

    async def worker(p: pacer.AccountPacer) -> None:
        for _ in range(sends):
            slot = await wait_turn(p)
            assert time.monotonic() >= slot.at  # never early
            slots.append(slot)

    await asyncio.gather(*(worker(p) for p in group))
    for p in group:
        await p.aclose()
    return sorted(slots, key=lambda slot: slot.at)


def assert_windows_hold(slots: list[pacer.Slot], cps: int) -> None:
    """Any cps + 1 turns in a row, whichever pacers gave them, span more than a second
    even when the first is sent at its deadline, with the margin's
    arrival slack to spare: no one-second window holds more than cps sends."""
    spare = pacer.margin(cps) - pacer.send_tolerance(cps)
    spans = [slots[i + cps].at - slots[i].deadline for i in range(len(slots) - cps)]
    assert min(spans) >= 1 + spare - 1e-9


@pytest.mark.parametrize("pacers", [1, 3])
async def test_pacers_sharing_an_account_never_beat_its_cps(
    pool: asyncpg.Pool, pacers: int
) -> None:
    cps = 50
    await repository.upsert_account(pool, SID, cps, None)
    group = [
        pacer.AccountPacer(
            account_sid=SID, cps=cps,
            reserve=partial(reserve_slots, pool),
        )
        for _ in range(pacers)
    ]
    slots = await _turns(group, sends=120 // pacers)
    assert_windows_hold(slots, cps)
    # The rate is never above the CPS, nor far below it: slots a busy machine wakes late
    # for are skipped, which costs rate, never bursts (how much rate is a timing figure:
    # bench/pacing.py measures it on a quiet machine).
    mean = (slots[-1].at - slots[0].at) / (len(slots) - 1)
    assert 1 / cps <= mean < 1.5 / cps


class Schedule:
    """The shared schedule of ``reserve_slots`` in memory, on a database clock that is
    this process's monotonic clock moved by an epoch, read after ``before`` seconds of
    a round trip and answered after ``after`` more: how lopsided a round trip is, a
    process cannot tell."""

    EPOCH = 1.7e9

    def __init__(self) -> None:
        self.next_slot = 0.0
        self.given: list[float] = []  # every slot, as a moment of the local clock

    def reserve(self, before: float, after: float) -> pacer.ReserveSlots:
        async def reserve(sid: str, count: int, spacing: float) -> pacer.Reservation:
            sent = time.monotonic()
            await asyncio.sleep(before)
            db_now = time.monotonic() + self.EPOCH
            first = max(self.next_slot, db_now + 0.001)
            self.next_slot = first + count * spacing
            self.given += [first + i * spacing - self.EPOCH for i in range(count)]
            await asyncio.sleep(after)
            return pacer.Reservation(first, db_now, sent, time.monotonic())

        return reserve

    def truth(self, slot: pacer.Slot) -> float:
        return min(self.given, key=lambda given: abs(given - slot.at))


async def test_lopsided_round_trips_never_make_a_send_early_or_too_late() -> None:
    """One pacer's database reads its clock late in each round trip, the other's early:
    a mapping that takes the middle of the round trip sends the first pacer's calls
    early and the second's late, and two of them can fall in one second. Each slot is
    placed at the latest moment it can be and given up when the round trip leaves no
    room for lateness."""
    cps, schedule = 50, Schedule()
    group = [pacer.AccountPacer(account_sid=SID, cps=cps, reserve=schedule.reserve(*delays))
             for delays in ((0.0015, 0.0), (0.0, 0.0015))]
    slots = await _turns(group, sends=40)
    for slot in slots:
        assert schedule.truth(slot) <= slot.at
        assert slot.deadline <= schedule.truth(slot) + pacer.send_tolerance(cps)
    assert_windows_hold(slots, cps)


async def test_a_pacer_that_cannot_tell_the_time_well_enough_does_not_send() -> None:
    """Round trips wider than the send tolerance: no slot can be placed within it, so
    every one is given up, counted, and none is handed out."""
    cps, schedule = 50, Schedule()
    slow = pacer.AccountPacer(account_sid=SID, cps=cps, reserve=schedule.reserve(0.004, 0.004))
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(wait_turn(slow), 0.3)
    await slow.aclose()
    assert slow.skipped_slots > 0 and len(schedule.given) >= slow.skipped_slots


async def test_unknown_account_is_an_error(pool: asyncpg.Pool) -> None:
    with pytest.raises(LookupError, match="not in the database"):
        await repository.reserve_slots(pool, "AC" + "9" * 32, 1, 0.1)
