"""The campaign summary (counters kept by triggers, migration 0006) equals what the
tables say, whichever writer changed them, for every campaign state and every kind of
outcome, AMD off and unknown_is_machine included; and "human" is what the policy
decided (dialer.policy.classify), not a guess made again in SQL."""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import itertools
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from phonenumbers.tzdata import TIMEZONE_DATA

from dialer import queries, repository
from dialer.campaigns import Campaign
from dialer.compliance import ClaimDecisions
from dialer.live_buffer import LiveBuffer
from dialer.outcomes import CallEvent, OutcomeRecorder
from dialer.policy import classify
from dialer.testing import make_campaign, recording
from dialer.twilio import CallInfo

NOW = dt.datetime(2026, 3, 2, 15, 0, tzinfo=dt.UTC)
_numbers = itertools.count(1000)


@dataclass(frozen=True)
class Ending:
    """How one claimed attempt ends: a final CallStatus (with AnsweredBy, SIP code,
    duration), or one of the other ways: rejected by Twilio, void after
    reconciliation, released unsent, or left live / requested."""

    kind: str
    call_status: str | None = None
    answered_by: str | None = None
    sip: int | None = None
    duration: int | None = None


FINAL = [
    Ending("final", "completed", "human", duration=42),
    Ending("final", "completed", "human"),  # no Duration reported: not in the average
    Ending("final", "completed", None, duration=17),  # AMD off: nobody knows who
    Ending("final", "completed", "unknown", duration=9),
    Ending("final", "completed", "machine_start", duration=3),
    Ending("final", "completed", "machine_end_beep", duration=25),
    Ending("final", "completed", "fax", duration=4),
    Ending("final", "busy"),
    Ending("final", "no-answer"),
    Ending("final", "failed", sip=486),  # busy by its SIP code
    Ending("final", "failed", sip=503),  # transient
    Ending("final", "failed", sip=404),  # permanent
    Ending("final", "canceled"),
]
OTHER = [Ending("rejected"), Ending("void"), Ending("released"), Ending("live"),
         Ending("requested")]
ENDINGS = FINAL + OTHER

# Campaigns that read the same call differently, in every campaign state.
SPECS: dict[str, dict[str, Any]] = {
    "amd-off": {"state": "running"},
    "unknown-machine": {"state": "running", "amd_mode": "Enable", "unknown_is_machine": True},
    "voicemail": {"state": "running", "amd_mode": "DetectMessageEnd",
                  "machine_policy": "voicemail"},
    "accept": {"state": "running", "amd_mode": "Enable", "machine_policy": "accept"},
}
FINAL_STATES = {"amd-off": "completed", "unknown-machine": "paused", "voicemail": "stopped",
                "accept": "running"}


def phones(count: int) -> list[str]:
    return [f"+14152{next(_numbers):06d}" for _ in range(count)]


async def claim(pool: asyncpg.Pool, campaign_id: int, limit: int) -> list[asyncpg.Record]:
    """Claim as the dispatcher does (the campaign may be called at any time)."""
    row = await pool.fetchrow("SELECT * FROM campaigns WHERE id = $1", campaign_id)
    planner = Campaign.from_row(row).planner
    return await repository.claim_due(
        pool, campaign_id=campaign_id, account_sid="AC" + "a1" * 16, limit=limit,
        max_concurrent=None, account_max_concurrent=None, worker_id="test-worker", now=NOW,
        decide=ClaimDecisions(planner, NOW), rule_packs=planner.policy.pack_tags)


async def play(pool: asyncpg.Pool, recorder: OutcomeRecorder, claimed: Sequence[Any],
               endings: Sequence[Ending]) -> None:
    """End each claimed attempt as told, through the dialer's own writers."""
    live = LiveBuffer(pool)
    sids: dict[int, str] = {}
    for row, ending in zip(claimed, itertools.cycle(endings)):
        attempt = row["attempt_id"]
        if ending.kind == "rejected":
            await repository.reject_attempt(pool, attempt, code=21211, message="invalid To")
        elif ending.kind == "void":
            await repository.mark_unknown(pool, attempt, reason="timeout")
            await repository.void_attempt(pool, attempt, NOW)
        elif ending.kind == "released":
            await repository.release_unsent(pool, [attempt])
        elif ending.kind != "requested":
            sids[attempt] = "CA" + secrets.token_hex(16)
            live.add(attempt, CallInfo(sids[attempt], "queued", "", "", None, None, None,
                                       None, 120), NOW)
    await live.flush()
    events = [
        CallEvent(call_sid=sids[row["attempt_id"]], source="call-progress-events", params={},
                  attempt_hint=row["attempt_id"], sequence_number=3,
                  call_status=ending.call_status, answered_by=ending.answered_by,
                  duration=ending.duration, sip_code=ending.sip)
        for row, ending in zip(claimed, itertools.cycle(endings)) if ending.kind == "final"
    ]
    await asyncio.gather(*(recorder.record(e, now=NOW) for e in events))


async def populate(pool: asyncpg.Pool) -> dict[str, int]:
    """Four campaigns, each with every ending twice over two rounds of claims, plus a
    draft campaign with no contacts; returns {name: id}."""
    ids: dict[str, int] = {}
    async with recording(OutcomeRecorder(pool)) as recorder:
        for name, spec in SPECS.items():
            ids[name] = await make_campaign(pool, name, phones(4 * len(ENDINGS)), **spec)
            await play(pool, recorder, await claim(pool, ids[name], 2 * len(ENDINGS)), ENDINGS)
            # Second round: the retries are due now (an operator's UPDATE) and called again.
            await pool.execute("UPDATE contacts SET next_attempt_at = '-infinity' "
                               "WHERE campaign_id = $1 AND state = 'retry_wait'", ids[name])
            await play(pool, recorder, await claim(pool, ids[name], len(ENDINGS)),
                       list(reversed(FINAL)))
            skipped_phone = await pool.fetchval(
                "SELECT phone FROM contacts WHERE campaign_id = $1 AND state = 'pending' "
                "ORDER BY id LIMIT 1", ids[name])
            await repository.dnc_add(pool, skipped_phone, ids[name], "asked not to be called")
            await pool.execute("UPDATE campaigns SET state = $2 WHERE id = $1", ids[name],
                               FINAL_STATES[name])
        ids["draft"] = await make_campaign(pool, "draft", [], state="draft")
    return ids


async def expected_summary(pool: asyncpg.Pool, campaign_id: int) -> dict[str, Any]:
    """The summary's figures counted straight from the tables; the outcomes both as
    stored and as dialer.policy.classify reads each call under the campaign's rules."""
    contacts = {r["state"]: r["n"] for r in await pool.fetch(
        "SELECT state, count(*) AS n FROM contacts WHERE campaign_id = $1 GROUP BY state",
        campaign_id)}
    attempts = await pool.fetch("SELECT * FROM call_attempts WHERE campaign_id = $1",
                                campaign_id)
    campaign = Campaign.from_row(
        await pool.fetchrow("SELECT * FROM campaigns WHERE id = $1", campaign_id))
    stored = collections.Counter(a["outcome"] for a in attempts if a["state"] == "final")
    for a in attempts:
        if a["state"] == "final" and a["outcome"] is not None:
            decided = classify(campaign.policy, a["call_status"], a["answered_by"],
                               a["sip_response_code"])
            assert decided.value == a["outcome"], dict(a)
    states = collections.Counter(a["state"] for a in attempts)
    completed = [a for a in attempts if a["call_status"] == "completed"]
    talk = [a["duration"] for a in completed if a["duration"] is not None]
    ended = states["final"]
    answered = len(completed)
    total = sum(contacts.values())
    finished = sum(contacts.get(s, 0) for s in ("done", "failed", "skipped"))
    return {
        "contacts": total,
        **{s: contacts.get(s, 0) for s in ("pending", "dialing", "in_call", "retry_wait",
                                            "done", "failed", "skipped")},
        "attempts": len(attempts) - states["void"], "calls_ended": ended,
        "rejected": states["rejected"], "voided": states["void"], "answered": answered,
        "human": stored["human"], "machine": stored["machine"],
        "voicemail_left": stored["voicemail_left"], "fax": stored["fax"],
        "answered_no_amd": stored["completed"], "busy": stored["busy"],
        "no_answer": stored["no-answer"], "failed_transient": stored["failed_transient"],
        "failed_permanent": stored["failed_permanent"],
        "call_failed": stored["failed_transient"] + stored["failed_permanent"],
        "canceled": stored["canceled"], "undecided": stored[None],
        "answer_rate_pct": _pct(answered, ended),
        "completion_pct": _pct(finished, total),
        "avg_talk_seconds": _tenths(Decimal(sum(talk)) / len(talk)) if talk else None,
    }


def _pct(part: int, whole: int) -> Decimal | None:
    return _tenths(Decimal(100 * part) / whole) if whole else None


def _tenths(value: Decimal) -> Decimal:
    """``round(numeric, 1)`` as Postgres does it: half away from zero (Python's round of
    a Decimal goes to even: 81.25 would be 81.2, Postgres says 81.3)."""
    return value.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


@pytest.fixture
async def campaigns(pool: asyncpg.Pool) -> dict[str, int]:
    return await populate(pool)


async def test_summary_equals_the_tables_for_every_campaign(
    pool: asyncpg.Pool, campaigns: dict[str, int]
) -> None:
    seen_states = set()
    for name, campaign_id in campaigns.items():
        summary = await repository.campaign_summary(pool, name)
        assert summary is not None
        seen_states.add(summary["state"])
        expected = await expected_summary(pool, campaign_id)
        assert {k: summary[k] for k in expected} == expected, name
    assert seen_states == {"draft", "running", "paused", "stopped", "completed"}


async def test_every_contact_state_and_outcome_is_exercised(
    pool: asyncpg.Pool, campaigns: dict[str, int]
) -> None:
    """The comparison above means something only if the rows hold every case."""
    contact_states = {r[0] for r in await pool.fetch("SELECT DISTINCT state FROM contacts")}
    assert contact_states == {"pending", "dialing", "in_call", "retry_wait", "done",
                              "failed", "skipped"}
    outcomes = {r[0] for r in await pool.fetch("SELECT DISTINCT outcome FROM call_attempts")}
    assert outcomes >= {"human", "machine", "voicemail_left", "fax", "completed", "busy",
                        "no-answer", "failed_transient", "failed_permanent", "canceled",
                        "rejected", "void", None}


async def test_human_is_what_the_policy_decided(
    pool: asyncpg.Pool, campaigns: dict[str, int]
) -> None:
    """0002's view called every answered call without AMD, and every AnsweredBy=unknown,
    a human; the summary counts what dialer.policy.classify decided."""
    for name in ("amd-off", "unknown-machine"):
        campaign_id = campaigns[name]
        summary = await repository.campaign_summary(pool, name)
        assert summary is not None
        campaign = Campaign.from_row(
            await pool.fetchrow("SELECT * FROM campaigns WHERE id = $1", campaign_id))
        ended = await pool.fetch(
            "SELECT call_status, answered_by, sip_response_code FROM call_attempts "
            "WHERE campaign_id = $1 AND state = 'final' AND outcome IS NOT NULL", campaign_id)
        humans = sum(classify(campaign.policy, *row).value == "human" for row in ended)
        old_view = await pool.fetchval(
            "SELECT count(*) FILTER (WHERE call_status = 'completed' AND "
            "coalesce(answered_by, 'human') IN ('human', 'unknown')) FROM call_attempts "
            "WHERE campaign_id = $1", campaign_id)
        assert summary["human"] == humans < old_view, name
    off = await repository.campaign_summary(pool, "amd-off")
    assert off is not None and off["answered_no_amd"] == await pool.fetchval(
        "SELECT count(*) FROM call_attempts WHERE campaign_id = $1 AND outcome IS NOT NULL "
        "AND call_status = 'completed' AND answered_by IS NULL", campaigns["amd-off"]) > 0
    unknown = await repository.campaign_summary(pool, "unknown-machine")
    machines, of_unknown = await pool.fetchrow(
        "SELECT count(*), count(*) FILTER (WHERE answered_by = 'unknown') FROM call_attempts "
        "WHERE campaign_id = $1 AND outcome = 'machine'", campaigns["unknown-machine"])
    assert unknown is not None and unknown["machine"] == machines and of_unknown > 0


async def test_outcomes_and_funnel_equal_the_tables(
    pool: asyncpg.Pool, campaigns: dict[str, int]
) -> None:
    for campaign_id in campaigns.values():
        outcomes = {r["outcome"]: r["attempts"]
                    for r in await repository.campaign_outcomes(pool, campaign_id)}
        assert outcomes == {
            r["outcome"]: r["n"] for r in await pool.fetch(
                """SELECT coalesce(outcome, 'undecided') AS outcome, count(*) AS n
                   FROM call_attempts WHERE campaign_id = $1
                     AND (outcome IS NOT NULL OR state = 'final') GROUP BY 1""", campaign_id)}
        funnel = {(r["attempt_no"], r["ended_in"]): r["attempts"]
                  for r in await repository.retry_funnel(pool, campaign_id)}
        assert funnel == {
            (r["attempt_no"], r["ended_in"]): r["n"] for r in await pool.fetch(
                """SELECT attempt_no, coalesce(outcome, state) AS ended_in, count(*) AS n
                   FROM call_attempts WHERE campaign_id = $1 GROUP BY 1, 2""", campaign_id)}


async def test_bulk_writes_deletes_and_compaction_keep_the_counts(
    pool: asyncpg.Pool, campaigns: dict[str, int]
) -> None:
    """Statements of many rows (a bulk insert, an UPDATE of one campaign's contacts, a
    DELETE that cascades to attempts), a deleted campaign, and compaction by hand."""
    campaign_id = campaigns["accept"]
    await pool.execute(
        """INSERT INTO contacts (campaign_id, phone, state, reason)
           SELECT $1, '+1212' || lpad(i::text, 7, '0'), 'skipped', 'bulk'
           FROM generate_series(1, 500) AS i""", campaign_id)
    await pool.execute("UPDATE contacts SET state = 'done' WHERE campaign_id = $1 "
                       "AND state = 'retry_wait'", campaign_id)
    await pool.execute("DELETE FROM contacts WHERE campaign_id = $1 AND id % 3 = 0",
                       campaign_id)
    await pool.execute("DELETE FROM campaigns WHERE name = 'voicemail'")
    assert await repository.campaign_summary(pool, "voicemail") is None
    assert await pool.fetchval("SELECT count(*) FROM campaign_counts WHERE campaign_id = $1",
                               campaigns["voicemail"]) == 0
    before = await pool.fetchval("SELECT count(*) FROM campaign_counts WHERE campaign_id = $1",
                                 campaign_id)
    await pool.execute("SELECT compact_campaign_counts($1)", [campaign_id])
    rows = await pool.fetch("SELECT counter FROM campaign_counts WHERE campaign_id = $1",
                            campaign_id)
    assert len(rows) == len({r["counter"] for r in rows}) < before
    summary = await repository.campaign_summary(pool, "accept")
    expected = await expected_summary(pool, campaign_id)
    assert summary is not None and {k: summary[k] for k in expected} == expected


async def test_counts_agree_under_concurrent_writers_and_compactions(
    pool: asyncpg.Pool,
) -> None:
    """Claims, callbacks and compactions of two campaigns at once, on several
    connections: the sums come out right."""
    ids = [await make_campaign(pool, f"busy{i}", phones(120)) for i in range(2)]

    async def work(campaign_id: int) -> None:
        for _ in range(4):
            await play(pool, recorder, await claim(pool, campaign_id, 30), FINAL)

    async def compact() -> None:
        for _ in range(20):
            await pool.execute("SELECT compact_campaign_counts($1)", ids)
            await asyncio.sleep(0)

    async with recording(OutcomeRecorder(pool)) as recorder:
        await asyncio.gather(*(work(i) for i in ids), compact(), compact())
    for campaign_id, name in zip(ids, ("busy0", "busy1"), strict=True):
        summary = await repository.campaign_summary(pool, name)
        expected = await expected_summary(pool, campaign_id)
        assert summary is not None and {k: summary[k] for k in expected} == expected
        assert summary["attempts"] == 120


async def test_views_filtered_by_campaign_equal_the_named_queries(
    pool: asyncpg.Pool, campaigns: dict[str, int]
) -> None:
    """Other reporting tools read the views; filtered by one campaign they say what the
    report's named queries say, and attempt_detail holds that campaign's attempts, one
    row each."""
    breakdowns = {"outcomes_by_local_hour": repository.outcomes_by_local_hour,
                  "outcomes_by_zone": repository.outcomes_by_zone,
                  "outcomes_by_country": repository.outcomes_by_country}
    seen = 0
    for name, campaign_id in campaigns.items():
        summary = await repository.campaign_summary(pool, name)
        by_id = await pool.fetchrow("SELECT * FROM campaign_summary WHERE campaign_id = $1",
                                    campaign_id)
        assert summary is not None and by_id is not None
        assert dict(by_id) == {k: v for k, v in summary.items() if k != "pause_reason"}
        for view, query in breakdowns.items():
            rows = await pool.fetch(f"SELECT * FROM {view} WHERE campaign_id = $1",
                                    campaign_id)
            named = [dict(r) for r in await query(pool, campaign_id)]
            got = [{k: v for k, v in r.items() if k != "campaign_id"} for r in rows]
            assert sorted(got, key=repr) == sorted(named, key=repr), (view, name)
            seen += len(named)
        detail = await pool.fetch("SELECT * FROM attempt_detail WHERE campaign = $1", name)
        attempts = await pool.fetch(
            "SELECT a.id, a.attempt_no, a.call_status, k.phone FROM call_attempts a "
            "JOIN contacts k ON k.id = a.contact_id WHERE a.campaign_id = $1", campaign_id)
        assert sorted((r["attempt_id"], r["attempt_no"], r["call_status"], r["phone"])
                      for r in detail) == sorted(tuple(a) for a in attempts), name
        assert {r["campaign_id"] for r in detail} <= {campaign_id}
    assert seen > 0


def relations_read(plan: Any) -> set[str]:
    """The tables an EXPLAIN (FORMAT JSON) plan scans."""
    found = set()
    stack = [plan[0]["Plan"]]
    while stack:
        node = stack.pop()
        if "Relation Name" in node:
            found.add(node["Relation Name"])
        stack.extend(node.get("Plans", []))
    return found


async def test_summary_reads_the_counters_not_the_rows(
    pool: asyncpg.Pool, campaigns: dict[str, int]
) -> None:
    """The summary's cost does not grow with the campaign: by name (the named query) or
    by campaign_id (the view), its plan reads campaigns and campaign_counts only."""
    for statement, value in ((queries.get("campaign_summary"), "accept"),
                             ("SELECT * FROM campaign_summary WHERE campaign_id = $1",
                              campaigns["accept"])):
        plan = await pool.fetchval(f"EXPLAIN (FORMAT JSON) {statement}", value)
        assert relations_read(plan) == {"campaigns", "campaign_counts"}, statement


async def test_a_campaign_keeps_a_few_hundred_counter_rows(pool: asyncpg.Pool) -> None:
    """Every statement appends its deltas; compaction keeps a campaign's rows bounded
    however many statements changed it (what lets the summary read only those)."""
    campaign_id = await make_campaign(pool, "churn", phones(20))
    ids = [r["id"] for r in await pool.fetch(
        "SELECT id FROM contacts WHERE campaign_id = $1", campaign_id)]
    async with pool.acquire() as conn:
        for i in range(400):
            await conn.execute("UPDATE contacts SET state = $2 WHERE id = $1",
                               ids[i % len(ids)], ("done", "pending")[i // len(ids) % 2])
    rows = await pool.fetchval("SELECT count(*) FROM campaign_counts WHERE campaign_id = $1",
                               campaign_id)
    assert rows < 300  # 800 deltas were written
    summary = await repository.campaign_summary(pool, "churn")
    assert summary is not None and (summary["contacts"], summary["pending"]) == (20, 20)


# Every counter of every campaign as the rows give it (rebuild_campaign_counts' sums).
RECOUNT = """
SELECT campaign_id, 'contact:' || state AS counter, count(*)::bigint AS n
FROM contacts GROUP BY 1, 2
UNION ALL
SELECT a.campaign_id, c.counter, sum(c.n)::bigint
FROM call_attempts a,
     attempt_counters(a.state, a.call_status, a.outcome, a.attempt_no, a.duration) c
GROUP BY 1, 2"""


async def counters(pool: asyncpg.Pool) -> dict[tuple[int, str], int]:
    rows = await pool.fetch("SELECT campaign_id, counter, sum(n)::bigint AS n "
                            "FROM campaign_counts GROUP BY 1, 2 HAVING sum(n) <> 0")
    return {(r["campaign_id"], r["counter"]): r["n"] for r in rows}


async def test_updates_count_only_what_changed_and_every_change(
    pool: asyncpg.Pool, campaigns: dict[str, int]
) -> None:
    """The UPDATE path and the attempts' INSERT path (migration 0009 groups the rows
    before working out counters):
    statements over several campaigns that change no counted column, that give
    completed calls durations (some equal, some not, one taken away), that move states,
    statuses, outcomes and attempt numbers back and forth, and contacts' states, and an
    INSERT of attempts of every kind: every counter equals the recount from the rows
    after each statement."""
    seen = {}

    async def check() -> None:
        recount = {(r["campaign_id"], r["counter"]): r["n"]
                   for r in await pool.fetch(RECOUNT) if r["n"]}
        assert await counters(pool) == recount
        seen.update(recount)

    await check()
    statements = [
        "UPDATE call_attempts SET statuses = statuses || '{x}', sent_at = sent_at",
        "UPDATE call_attempts SET duration = 30 WHERE call_status = 'completed' AND id % 2 = 0",
        "UPDATE call_attempts SET duration = id % 7 WHERE call_status = 'completed'",
        "UPDATE call_attempts SET duration = NULL WHERE call_status = 'completed' AND id % 5 = 0",
        "UPDATE call_attempts SET call_status = 'completed', duration = 12 "
        "WHERE call_status = 'busy'",
        "UPDATE call_attempts SET outcome = NULL WHERE state = 'final' AND id % 3 = 0",
        "UPDATE call_attempts SET attempt_no = attempt_no + 10 WHERE id % 4 = 1",
        "UPDATE call_attempts SET outcome = 'human', attempt_no = attempt_no - 10 "
        "WHERE attempt_no > 10",
        # the INSERT path of attempts (0009 groups it too): copies, void, of every row
        "INSERT INTO call_attempts (contact_id, campaign_id, attempt_no, state, requested_at,"
        " call_status, duration, outcome) SELECT contact_id, campaign_id, attempt_no, 'void',"
        " requested_at, call_status, duration, outcome FROM call_attempts",
        "UPDATE contacts SET state = state",
        "UPDATE contacts SET state = CASE state WHEN 'done' THEN 'failed' ELSE state END, "
        "reason = coalesce(reason, 'test')",
    ]
    for statement in statements:
        await pool.execute(statement)
        await check()
    assert len({campaign for campaign, _ in seen}) >= 2
    assert any(counter == "talk_seconds" for _, counter in seen)


async def test_rebuild_recounts_what_the_triggers_did_not_see(pool: asyncpg.Pool) -> None:
    """A load made with the triggers off (bench/reports.py does this) is counted by
    rebuild_campaign_counts()."""
    campaign_id = await make_campaign(pool, "loaded", [])
    async with pool.acquire() as conn:
        await conn.execute("ALTER TABLE contacts DISABLE TRIGGER USER")
        await conn.execute(
            """INSERT INTO contacts (campaign_id, phone)
               SELECT $1, '+1303' || lpad(i::text, 7, '0') FROM generate_series(1, 50) AS i""",
            campaign_id)
        await conn.execute("ALTER TABLE contacts ENABLE TRIGGER USER")
    summary = await repository.campaign_summary(pool, "loaded")
    assert summary is not None and summary["contacts"] == 0
    await pool.execute("SELECT rebuild_campaign_counts()")
    summary = await repository.campaign_summary(pool, "loaded")
    assert summary is not None and summary["contacts"] == summary["pending"] == 50


PLACES = {  # number prefix: (zones the number gives, their country, local hour at NOW)
    "+1212555": (["America/New_York"], "US", 10),
    "+1312555": (["America/Chicago"], "US", 9),
    "+44207946": (["Europe/London"], "GB", 15),
    "+1613555": (["America/Toronto"], "CA", 10),
    "+6141234": (None, "AU", None),  # eight zones, hours 23:00 to 02:30: no one hour
}


async def test_outcomes_by_local_hour_zone_and_country_equal_the_tables(
    pool: asyncpg.Pool,
) -> None:
    """Calls claimed as the dispatcher claims them (their compliance records hold the
    local time in every zone) and ended by callbacks, grouped three ways; each group
    equals what the attempts and records say, counted here."""
    numbers = [prefix + f"{150 + i:04d}" for prefix in PLACES for i in range(12)]
    campaign_id = await make_campaign(pool, "places", numbers, amd_mode="Enable")
    async with recording(OutcomeRecorder(pool)) as recorder:
        await play(pool, recorder, await claim(pool, campaign_id, len(numbers)), FINAL)
    ended = await pool.fetch(
        """SELECT a.outcome, a.call_status, r.zones, r.local_times
           FROM call_attempts a JOIN attempt_compliance r ON r.attempt_id = a.id
           WHERE a.campaign_id = $1 AND a.state = 'final'""", campaign_id)
    assert len(ended) == len(numbers)

    def hour(local_times: list[str]) -> int | None:
        hours = {dt.datetime.fromisoformat(t).hour for t in local_times}
        return hours.pop() if len(hours) == 1 else None

    def country(zones: list[str]) -> str | None:
        for known, name, _ in PLACES.values():
            if (known is None and len(zones) > 1) or known == zones:
                return name
        raise AssertionError(zones)

    keys = {
        repository.outcomes_by_local_hour: ("local_hour", lambda r: hour(r["local_times"])),
        repository.outcomes_by_zone: ("zones", lambda r: " ".join(r["zones"])),
        repository.outcomes_by_country: ("country", lambda r: country(r["zones"])),
    }
    for query, (column, key_of) in keys.items():
        got = {r[column]: dict(r) for r in await query(pool, campaign_id)}
        groups = collections.defaultdict(list)
        for row in ended:
            groups[key_of(row)].append(row)
        assert set(got) == set(groups), column
        for key, rows in groups.items():
            outcomes = collections.Counter(r["outcome"] for r in rows)
            answered = sum(r["call_status"] == "completed" for r in rows)
            assert got[key]["calls"] == len(rows)
            assert got[key]["answered"] == answered
            assert got[key]["answer_rate_pct"] == _pct(answered, len(rows))
            assert (got[key]["human"], got[key]["machine"], got[key]["fax"],
                    got[key]["busy"], got[key]["no_answer"], got[key]["canceled"]) == (
                outcomes["human"], outcomes["machine"], outcomes["fax"], outcomes["busy"],
                outcomes["no-answer"], outcomes["canceled"]), (column, key)
            assert got[key]["failed"] == (outcomes["failed_transient"]
                                          + outcomes["failed_permanent"])
    hours = {r["local_hour"] for r in await repository.outcomes_by_local_hour(pool, campaign_id)}
    assert hours == {local for _, _, local in PLACES.values()}
    countries = {r["country"] for r in await repository.outcomes_by_country(pool, campaign_id)}
    assert countries == {name for _, name, _ in PLACES.values()}


def system_zone_countries() -> dict[str, str]:
    """{zone: country} from this machine's tzdata zone.tab (empty without one)."""
    tab = Path("/usr/share/zoneinfo/zone.tab")
    if not tab.exists():
        return {}
    rows = [line.split("\t") for line in tab.read_text().splitlines()
            if line and not line.startswith("#")]
    return {zone: country for country, _, zone, *_ in rows}


async def test_every_zone_a_number_gives_has_its_country(pool: asyncpg.Pool) -> None:
    """time_zone_countries knows every zone phonenumbers can give for a number, and says
    what this machine's tzdata says about the zones both know."""
    known = {r["zone"]: r["country"]
             for r in await pool.fetch("SELECT zone, country FROM time_zone_countries")}
    given = {zone for zones in TIMEZONE_DATA.values() for zone in zones} - {"Etc/Unknown"}
    assert given <= set(known), sorted(given - set(known))
    system = system_zone_countries()
    both = set(system) & set(known)
    assert {z: known[z] for z in both} == {z: system[z] for z in both}


@pytest.mark.parametrize(("local_times", "hour"), [
    (["2026-03-02T10:59:59-05:00"], 10),
    (["2026-03-02T10:00:00-05:00", "2026-03-02T10:00:00-05:00"], 10),  # NY and Toronto
    (["2026-03-02T10:00:00-05:00", "2026-03-02T09:00:00-06:00"], None),
    (["2026-03-03T02:15:00+11:00", "2026-03-03T02:45:00+11:30"], 2),  # Sydney, Lord Howe
    (["2026-03-03T02:45:00+11:00", "2026-03-03T03:15:00+11:30"], None),
])
async def test_local_hour(pool: asyncpg.Pool, local_times: list[str], hour: int | None) -> None:
    assert await pool.fetchval("SELECT local_hour($1)", local_times) == hour


@pytest.mark.parametrize(("zones", "country"), [
    (["Europe/London"], "GB"),
    (["Asia/Calcutta"], "IN"),  # an old name phonenumbers still gives
    (["Australia/Sydney", "Australia/Perth", "Indian/Cocos"], "AU"),
    (["Australia/Sydney", "Indian/Christmas"], None),  # as many zones in AU as in CX
    (["US/Eastern"], None),  # a link: not in the table
    (["US/Eastern", "America/Chicago"], "US"),
])
async def test_zones_country(pool: asyncpg.Pool, zones: list[str], country: str | None) -> None:
    assert await pool.fetchval("SELECT zones_country($1)", zones) == country
