"""Finding out what really happened, when our own records cannot say.

* An attempt whose request may have created a call (timeout, reset, 5xx, or a
  process that died mid-request) is matched against Twilio's list of calls To/From
  the contact created since the attempt; a match is adopted, and only when none
  exists is the attempt void and the contact due again. Nothing is ever re-sent
  blindly. Twilio's StartTime filter is a date, so the list is filtered by exact
  time here.
* A call with no final callback for a long time is fetched, and its final status
  recorded as if the callback had come.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg
import structlog

from dialer import repository
from dialer.outcomes import CallEvent, OutcomeRecorder
from dialer.repository import DATABASE_ERRORS
from dialer.twilio import CallInfo, NotFound, TwilioClient, TwilioError
from dialer.twilio_words import FINAL_STATUSES, RECONCILE_SOURCE, status_rank

log = structlog.get_logger(__name__)

# Twilio's date_created and our requested_at come from different clocks.
CLOCK_SKEW = dt.timedelta(seconds=5)


@dataclass(slots=True)
class Stats:
    adopted: int = 0
    voided: int = 0
    fetched: int = 0
    finished: int = 0


def pick_match(calls: list[CallInfo], requested_at: dt.datetime) -> CallInfo | None:
    """The earliest call created at or after the request (give or take clock skew)."""
    candidates = [
        c for c in calls if c.date_created is None or c.date_created >= requested_at - CLOCK_SKEW
    ]
    candidates.sort(key=lambda c: c.date_created or requested_at)
    return candidates[0] if candidates else None


def event_from_call(info: CallInfo, attempt_id: int) -> CallEvent:
    """What a fetched Call resource tells, as an event (one per status reached)."""
    return CallEvent(
        call_sid=info.sid,
        source=RECONCILE_SOURCE,
        params={"CallSid": info.sid, "CallStatus": info.status},
        attempt_hint=attempt_id,
        sequence_number=status_rank(info.status),
        call_status=info.status,
        answered_by=info.answered_by,
        duration=info.duration,
    )


class Reconciler:
    """Reconciliation for the attempts of one account (its client lists and fetches)."""

    def __init__(
        self, *, pool: asyncpg.Pool, client: TwilioClient, recorder: OutcomeRecorder,
        reconcile_after: float, stale_after: float, clock: Callable[[], dt.datetime],
    ) -> None:
        self._pool = pool
        self._client = client
        self._recorder = recorder
        self._reconcile_after = dt.timedelta(seconds=reconcile_after)
        self._stale_after = dt.timedelta(seconds=stale_after)
        self._clock = clock

    async def run(self, every: float) -> None:
        """Reconcile every ``every`` seconds: a supervised task of the account's runtime,
        which rides out database outages (Twilio's refusals are logged per attempt)."""
        while True:
            try:
                await self.run_once()
            except DATABASE_ERRORS as exc:
                log.warning("reconcile_database_unavailable", account=self._client.account_sid,
                            error=repr(exc))
            await asyncio.sleep(every)

    async def run_once(self) -> Stats:
        stats = Stats()
        await self._unknown(stats)
        await self._stale(stats)
        return stats

    async def _unknown(self, stats: Stats) -> None:
        now = self._clock()
        rows = await repository.unknown_attempts(
            self._pool, self._client.account_sid, now - self._reconcile_after
        )
        for row in rows:
            try:
                calls = await self._client.list_calls(to=row["phone"], from_=row["from_number"])
            except TwilioError as exc:
                log.warning("reconcile_list_failed", attempt=row["id"], error=exc.message)
                continue
            untaken = [c for c in calls if not await repository.sid_taken(self._pool, c.sid)]
            match = pick_match(untaken, row["requested_at"])
            if match is None:
                await repository.void_attempt(self._pool, row["id"], self._clock())
                stats.voided += 1
                log.info("attempt_voided", attempt=row["id"], contact=row["contact_id"])
                continue
            await self._recorder.record(event_from_call(match, row["id"]), now=self._clock())
            stats.adopted += 1
            log.info("attempt_adopted", attempt=row["id"], call_sid=match.sid,
                     status=match.status)

    async def _stale(self, stats: Stats) -> None:
        now = self._clock()
        rows = await repository.stale_live_attempts(
            self._pool, self._client.account_sid, now, now - self._stale_after
        )
        for row in rows:
            try:
                info = await self._client.fetch_call(row["call_sid"])
            except NotFound:
                log.error("reconcile_call_missing", attempt=row["id"], call_sid=row["call_sid"])
                continue
            except TwilioError as exc:
                log.warning("reconcile_fetch_failed", attempt=row["id"], error=exc.message)
                continue
            stats.fetched += 1
            if info.status not in FINAL_STATUSES:
                continue
            # A final attempt still here was waiting for an AMD result: decide without it.
            await self._recorder.record(
                event_from_call(info, row["id"]), now=self._clock(),
                force_decision=row["state"] == "final",
            )
            stats.finished += 1
