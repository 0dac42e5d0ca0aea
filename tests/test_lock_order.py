"""Writers of many attempts at once lock them in one order, so concurrent batches wait
for each other instead of deadlocking (the demo once answered a callback with a 500
when Postgres chose it as a deadlock victim)."""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets

import asyncpg

from dialer.callback_urls import CallbackTarget
from dialer.callbacks import parse_event
from dialer.live_buffer import LiveBuffer
from dialer.outcomes import OutcomeRecorder, Result
from dialer.testing import make_campaign, recording
from dialer.twilio import CallInfo

NOW = dt.datetime(2026, 3, 2, 15, 0, tzinfo=dt.UTC)


async def requested_attempts(pool: asyncpg.Pool, campaign_id: int, count: int) -> list[int]:
    """Contacts claimed (``dialing``) with an attempt whose answer is not recorded yet."""
    return [r["id"] for r in await pool.fetch(
        """WITH k AS (
               INSERT INTO contacts (campaign_id, phone, state, attempts, claimed_by)
               SELECT $1, '+1415' || lpad((3000000 + i + $3::int)::text, 7, '0'), 'dialing', 1,
                      'test-worker'
               FROM generate_series(1, $2) AS i RETURNING id
           )
           INSERT INTO call_attempts (contact_id, campaign_id, attempt_no, requested_at, state)
           SELECT id, $1, 1, $4, 'requested' FROM k RETURNING id""",
        campaign_id, count, campaign_id * 1000, NOW)]


async def test_answers_and_callbacks_for_the_same_attempts_do_not_deadlock(
    pool: asyncpg.Pool,
) -> None:
    async with recording(OutcomeRecorder(pool)) as recorder:
        await _rounds(pool, recorder)


async def _rounds(pool: asyncpg.Pool, recorder: OutcomeRecorder) -> None:
    for round_no in range(15):
        campaign_id = await make_campaign(pool, f"locks{round_no}", [])
        ids = await requested_attempts(pool, campaign_id, 60)
        sids = {i: "CA" + secrets.token_hex(16) for i in ids}
        # The answers to the creates, written newest first in one statement ...
        live = LiveBuffer(pool)
        for attempt_id in reversed(ids):
            live.add(attempt_id, CallInfo(sids[attempt_id], "queued", "", "", None, None,
                                          None, None, 0), NOW)
        # ... while the calls' first callbacks, which adopt them, are recorded.
        events = [
            parse_event({"CallSid": sids[i], "AccountSid": "AC" + "0" * 32,
                         "CallStatus": "initiated", "SequenceNumber": "0",
                         "CallbackSource": "call-progress-events"},
                        CallbackTarget(i, "status"), idempotency_token=None)
            for i in ids
        ]
        results = await asyncio.gather(
            live.flush(), *(recorder.record(e, now=NOW) for e in events))
        assert {r.result for r in results[1:]} == {Result.STORED}  # type: ignore[union-attr]
        states = await pool.fetch(
            "SELECT state, call_sid FROM call_attempts WHERE campaign_id = $1", campaign_id)
        assert {(r["state"], r["call_sid"]) for r in states} == {
            ("live", sid) for sid in sids.values()}
