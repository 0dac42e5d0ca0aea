"""Caps in the claim, against real Postgres: counted over every campaign, race-free
across concurrent claims, per subject, the quiet period, what does not count, and the
record each attempt keeps of what it was counted against."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from collections.abc import Sequence
from typing import Any

import asyncpg

from dialer import queries, repository
from dialer.campaigns import Campaign
from dialer.caps import Cap, parse_caps
from dialer.compliance import ClaimCaps, ClaimDecisions
from dialer.testing import SIM_SID, make_campaign, run_cli
from dialer.windows import parse_weekly

NOW = dt.datetime(2026, 6, 3, 15, 0, tzinfo=dt.UTC)  # a Wednesday
DAY = dt.timedelta(days=1)
_numbers = itertools.count(2_000_000)


def number() -> str:
    """A fresh San Francisco number (the area code places it in California)."""
    return f"+1415{next(_numbers):07d}"


async def campaign_of(pool: asyncpg.Pool, campaign_id: int) -> Campaign:
    return Campaign.from_row(await pool.fetchrow("SELECT * FROM campaigns WHERE id = $1",
                                                 campaign_id))


async def claim(pool: asyncpg.Pool, campaign_id: int, *, now: dt.datetime = NOW,
                everywhere: tuple[Cap, ...] = (), worker: str = "w1") -> list[asyncpg.Record]:
    """One claim as the dispatcher makes it."""
    campaign = await campaign_of(pool, campaign_id)
    planner = campaign.planner
    return await repository.claim_due(
        pool, campaign_id=campaign_id, account_sid=SIM_SID, limit=50, max_concurrent=None,
        account_max_concurrent=None, worker_id=worker, now=now,
        decide=ClaimDecisions(planner, now), caps=ClaimCaps(campaign.caps(everywhere), planner,
                                                              now),
        rule_packs=planner.policy.pack_tags)


async def due(pool: asyncpg.Pool, campaign_id: int) -> dt.datetime:
    value: dt.datetime = await pool.fetchval(
        "SELECT next_attempt_at FROM contacts WHERE campaign_id = $1", campaign_id)
    return value


async def record_of(pool: asyncpg.Pool, campaign_id: int) -> asyncpg.Record:
    row = await pool.fetchrow(
        "SELECT r.* FROM attempt_compliance r JOIN call_attempts a ON a.id = r.attempt_id "
        "WHERE a.campaign_id = $1", campaign_id)
    assert row is not None
    return row


async def capped(pool: asyncpg.Pool, name: str, phones: Sequence[str], caps: str = "1/24h",
                 **spec: Any) -> int:
    return await make_campaign(pool, name, phones, caps=parse_caps(caps), **spec)


async def test_one_number_in_several_campaigns_is_counted_across_them(pool: asyncpg.Pool) -> None:
    x = number()
    first = await capped(pool, "first", [x])
    second = await capped(pool, "second", [x])
    uncapped = await make_campaign(pool, "uncapped", [x])
    roomier = await capped(pool, "roomier", [x], "2/24h")

    assert [r["phone"] for r in await claim(pool, first)] == [x]
    record = await record_of(pool, first)
    assert (record["phone"], record["subject"], record["caps"]) == (x, "", ["campaign:1/24h=0"])

    # The second campaign's contact waits until the first call leaves the 24 hours.
    assert await claim(pool, second, now=NOW + dt.timedelta(hours=5)) == []
    assert await due(pool, second) == NOW + DAY
    # A campaign without caps calls anyway; its call counts against the others' caps.
    assert len(await claim(pool, uncapped)) == 1
    assert (await record_of(pool, uncapped))["caps"] == []
    assert await claim(pool, roomier) == []
    assert await due(pool, roomier) == NOW + DAY
    # Once the window has moved on, the waiting contact is called.
    assert len(await claim(pool, second, now=NOW + DAY + dt.timedelta(seconds=1))) == 1


async def test_concurrent_claims_of_one_number_call_it_once(pool: asyncpg.Pool) -> None:
    """Six claims at once (three campaigns, two workers each) of one number under a cap of
    1 per 24h, 25 times: every time exactly one attempt."""
    for round_no in range(25):
        x = number()
        campaigns = [await capped(pool, f"r{round_no}c{i}", [x]) for i in range(3)]
        results = await asyncio.gather(*(
            claim(pool, campaign_id, worker=worker)
            for campaign_id in campaigns for worker in ("w1", "w2")))
        assert sum(len(r) for r in results) == 1, round_no
        attempts = await pool.fetchval(
            "SELECT count(*) FROM call_attempts a JOIN contacts k ON k.id = a.contact_id "
            "WHERE k.phone = $1", x)
        assert attempts == 1


async def test_a_claim_waits_for_another_claim_of_the_same_number(pool: asyncpg.Pool) -> None:
    """The lock the cap check rests on: a second transaction locking the number waits
    until the first commits (then its next statement sees the first's attempt)."""
    x = number()
    lock = queries.get("lock_numbers")
    async with pool.acquire() as first, pool.acquire() as second:
        holding = first.transaction()
        await holding.start()
        await first.execute(lock, [x])
        waiter = second.transaction()
        await waiter.start()
        waiting = asyncio.ensure_future(second.execute(lock, [x, number()]))
        await asyncio.sleep(0.3)
        assert not waiting.done()
        await holding.commit()
        await asyncio.wait_for(waiting, 5)
        await waiter.commit()
    assert await pool.fetchval("SELECT count(*) FROM number_locks WHERE phone = $1", x) == 1


async def test_calls_that_never_reached_anyone_do_not_count(pool: asyncpg.Pool) -> None:
    x = number()
    first = await capped(pool, "first", [x])
    second = await capped(pool, "second", [x])
    [claimed] = await claim(pool, first)
    for state in ("void", "rejected"):
        await pool.execute("UPDATE call_attempts SET state = $2 WHERE id = $1",
                           claimed["attempt_id"], state)
        got = await claim(pool, second)
        assert len(got) == 1, state
        await repository.release_unsent(pool, [got[0]["attempt_id"]], due_at=NOW)
    # A claim handed back unsent is gone and counts for nothing either.
    await pool.execute("UPDATE call_attempts SET state = 'requested' WHERE id = $1",
                       claimed["attempt_id"])
    await repository.release_unsent(pool, [claimed["attempt_id"]], due_at=NOW)
    assert len(await claim(pool, second)) == 1


async def test_two_debts_of_one_person_are_capped_apart(pool: asyncpg.Pool) -> None:
    x = number()
    spec = {"subject": "collections", "subject_column": "debt_id"}
    first = await capped(pool, "debt-a", [x], **spec)
    second = await capped(pool, "debt-b", [x], **spec)
    again = await capped(pool, "debt-a-again", [x], **spec)
    for campaign_id, debt in ((first, "A-1"), (second, "B-2"), (again, "A-1")):
        await pool.execute("UPDATE contacts SET attributes = $2 WHERE campaign_id = $1",
                           campaign_id, {"debt_id": debt, "name": "Ann"})
    assert len(await claim(pool, first)) == 1
    assert len(await claim(pool, second)) == 1
    assert await claim(pool, again) == []
    assert await due(pool, again) == NOW + DAY
    assert [(await record_of(pool, c))["subject"] for c in (first, second)] == [
        "collections#A-1", "collections#B-2"]


async def test_the_quiet_period_after_a_conversation(pool: asyncpg.Pool) -> None:
    x = number()
    talked = await make_campaign(pool, "talked", [x], subject="collections")
    [first] = await claim(pool, talked)
    ended = NOW + dt.timedelta(minutes=4)
    await pool.execute(
        "UPDATE call_attempts SET state = 'final', call_sid = 'CA' || repeat('a', 32), "
        "call_status = 'completed', outcome = 'human', final_at = $2 WHERE id = $1",
        first["attempt_id"], ended)
    quiet = await make_campaign(pool, "quiet", [x], subject="collections",
                                quiet_after_human=7 * DAY, caps=parse_caps("5/24h"))
    other = await make_campaign(pool, "other", [x], subject="billing",
                                quiet_after_human=7 * DAY)
    later = NOW + 2 * DAY
    assert await claim(pool, quiet, now=later) == []
    assert await due(pool, quiet) == ended + 7 * DAY
    assert len(await claim(pool, other, now=later)) == 1
    assert (await record_of(pool, other))["caps"] == ["quiet:7d=0"]
    assert len(await claim(pool, quiet, now=ended + 7 * DAY + dt.timedelta(seconds=1))) == 1


async def test_a_call_under_way_holds_a_quiet_subject_for_a_minute(pool: asyncpg.Pool) -> None:
    x = number()
    live = await make_campaign(pool, "live", [x])
    await claim(pool, live)  # requested: it may become a conversation
    quiet = await make_campaign(pool, "quiet", [x], quiet_after_human=7 * DAY)
    assert await claim(pool, quiet) == []
    assert await due(pool, quiet) == NOW + dt.timedelta(minutes=1)


async def test_settings_caps_and_the_state_caps_of_the_rule_packs(pool: asyncpg.Pool) -> None:
    florida, oklahoma, california = "+13055550100", "+14055550100", number()
    # Three earlier calls to each number, from campaigns of three subjects.
    for i, subject in enumerate(("a", "b", "c")):
        earlier = await make_campaign(pool, f"earlier{i}", [florida, oklahoma, california],
                                      subject=subject)
        assert len(await claim(pool, earlier, now=NOW - dt.timedelta(hours=i + 1))) == 3
    packs = await make_campaign(pool, "packs", [florida, oklahoma, california],
                                subject="a", rule_packs=("us-states",))
    claimed = await claim(pool, packs)
    # Florida: 1 call on subject a (room for 3). Oklahoma: 3 calls to the number, any
    # subject, which is the cap. California: no state cap.
    assert sorted(r["phone"] for r in claimed) == sorted([florida, california])
    records = await pool.fetch(
        "SELECT r.phone, r.caps FROM attempt_compliance r JOIN call_attempts a "
        "ON a.id = r.attempt_id WHERE a.campaign_id = $1", packs)
    assert {r["phone"]: r["caps"] for r in records} == {
        florida: ["us-states/FL-calls:3/24h=1"], california: []}
    waiting = await pool.fetchval(
        "SELECT next_attempt_at FROM contacts WHERE campaign_id = $1 AND phone = $2",
        packs, oklahoma)
    # Free 24 h after the oldest call (12:00 UTC, 07:00 in Oklahoma City), then moved into
    # Oklahoma's hours for automated calls, from 09:00 local.
    assert NOW - dt.timedelta(hours=3) + DAY == dt.datetime(2026, 6, 4, 12, 0, tzinfo=dt.UTC)
    assert waiting == dt.datetime(2026, 6, 4, 14, 0, tzinfo=dt.UTC)
    # DIALER_CAPS applies to every campaign.
    y = number()
    await claim(pool, await make_campaign(pool, "before", [y]))
    settled = await make_campaign(pool, "settled", [y])
    assert await claim(pool, settled, everywhere=parse_caps("1/24h", source="settings")) == []


async def test_a_capped_contact_waits_for_its_calling_window_too(pool: asyncpg.Pool) -> None:
    x = number()
    first = await capped(pool, "first", [x])
    friday = dt.datetime(2026, 6, 5, 20, 0, tzinfo=dt.UTC)  # 13:00 in San Francisco
    await claim(pool, first, now=friday)
    weekdays = await capped(pool, "weekdays", [x], calendar=parse_weekly("mon-fri 09:00-17:00"))
    assert await claim(pool, weekdays, now=friday) == []
    # Free on Saturday 13:00 local, but the calendar opens on Monday 09:00 local.
    assert await due(pool, weekdays) == dt.datetime(2026, 6, 8, 16, 0, tzinfo=dt.UTC)


async def test_editing_the_caps_decides_waiting_contacts_again(
        pool: asyncpg.Pool, dsn: str) -> None:
    x = number()
    first = await capped(pool, "first", [x])
    second = await capped(pool, "second", [x])
    await claim(pool, first, now=dt.datetime.now(dt.UTC))
    assert await claim(pool, second, now=dt.datetime.now(dt.UTC)) == []
    done = await asyncio.to_thread(
        run_cli, "campaign", "edit", "second", "--cap", "2/24h",
        env={"DIALER_DATABASE_URL": dsn})
    assert done.returncode == 0, done.stderr
    assert "1 contacts waiting" in done.stdout
    assert await pool.fetchval("SELECT caps FROM campaigns WHERE id = $1", second) == ["2/24h"]
    assert len(await claim(pool, second, now=dt.datetime.now(dt.UTC))) == 1
