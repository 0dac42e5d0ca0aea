"""Turns call events (callbacks, or what reconciliation learned) into recorded results.

One event is one transaction: lock the attempt and its contact, store the raw event
once (a duplicate stops here), merge it into the attempt without ever moving
backwards, and when the call has ended ask the pure policy what happens to the
contact. Whatever order events arrive in, the rows end the same.
"""

from __future__ import annotations

import datetime as dt
import enum
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import asyncpg
import structlog

from dialer import metrics, queries
from dialer.campaigns import Campaign
from dialer.policy import AmdAction, Done, Fail, Retry, decide, on_answered_by
from dialer.windows import next_opening

log = structlog.get_logger(__name__)

FINAL_STATUSES = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})
_RANK = {"queued": 0, "initiated": 1, "ringing": 2, "in-progress": 3}
CAMPAIGN_CACHE_SECONDS = 2.0


def rank(status: str | None) -> int:
    if status is None:
        return -1
    return 4 if status in FINAL_STATUSES else _RANK[status]


@dataclass(frozen=True, slots=True)
class CallEvent:
    """One status or AMD report about a call, as Twilio sent it (``params`` raw)."""

    call_sid: str
    source: str
    params: Mapping[str, str]
    attempt_hint: int | None = None
    sequence_number: int | None = None
    idempotency_token: str | None = None
    call_status: str | None = None
    answered_by: str | None = None
    duration: int | None = None
    sip_code: int | None = None


@dataclass(frozen=True, slots=True)
class AttemptView:
    """The attempt columns an event can change."""

    state: str
    call_sid: str | None
    call_status: str | None
    statuses: tuple[str, ...]
    answered_by: str | None
    duration: int | None
    sip_code: int | None
    outcome: str | None
    final_at: dt.datetime | None
    hangup_requested_at: dt.datetime | None


def merge(view: AttemptView, event: CallEvent, now: dt.datetime) -> AttemptView:
    """The attempt after the event: status only moves forward, first final status wins."""
    status = view.call_status
    if event.call_status is not None and rank(event.call_status) > rank(status):
        status = event.call_status
    statuses = view.statuses
    if event.call_status is not None and event.call_status not in statuses:
        statuses = (*statuses, event.call_status)
    final = status in FINAL_STATUSES
    return replace(
        view,
        state="final" if final else "live",
        call_sid=event.call_sid,
        call_status=status,
        statuses=statuses,
        answered_by=event.answered_by or view.answered_by,
        duration=event.duration if event.duration is not None else view.duration,
        sip_code=event.sip_code if event.sip_code is not None else view.sip_code,
        final_at=view.final_at or (now if final else None),
    )


def awaiting_amd(campaign: Campaign, view: AttemptView) -> bool:
    """An answered call of an async-AMD campaign ended before its AMD result came:
    the decision waits for that result (or for reconciliation's grace period)."""
    return (
        campaign.spec.amd_async
        and view.call_status == "completed"
        and view.answered_by is None
    )


class Result(enum.Enum):
    STORED = "stored"
    DUPLICATE = "duplicate"
    UNKNOWN_CALL = "unknown_call"


@dataclass(frozen=True, slots=True)
class Recorded:
    result: Result
    hang_up: str | None = None  # Call SID to end now (AMD said machine or fax)


class OutcomeRecorder:
    """Records events; keeps a short-lived cache of campaign rows (edits apply within
    seconds, and every event does not pay for re-reading its campaign)."""

    def __init__(self, pool: asyncpg.Pool, *, rng: random.Random | None = None) -> None:
        self._pool = pool
        self._rng = rng or random.Random()
        self._campaigns: dict[int, tuple[float, Campaign]] = {}

    async def _campaign(self, conn: Any, campaign_id: int) -> Campaign:
        cached = self._campaigns.get(campaign_id)
        if cached is not None and time.monotonic() - cached[0] < CAMPAIGN_CACHE_SECONDS:
            return cached[1]
        row = await conn.fetchrow(queries.get("campaign_by_id"), campaign_id)
        campaign = Campaign.from_row(row)
        self._campaigns[campaign_id] = (time.monotonic(), campaign)
        return campaign

    async def record(
        self, event: CallEvent, *, now: dt.datetime, force_decision: bool = False
    ) -> Recorded:
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                queries.get("lock_attempt"), event.attempt_hint, event.call_sid
            )
            if row is None:
                return Recorded(Result.UNKNOWN_CALL)
            inserted = await conn.fetchval(
                queries.get("insert_event"), event.call_sid, row["id"], event.source,
                event.sequence_number, event.idempotency_token, event.call_status,
                event.answered_by, dict(event.params),
            )
            if inserted is None:
                return Recorded(Result.DUPLICATE)
            if row["state"] in ("void", "rejected"):
                # Reconciliation found no call, yet here is one: keep the evidence and
                # say so loudly; the contact has moved on and must not be rewound.
                log.error("callback_for_closed_attempt", attempt=row["id"],
                          call_sid=event.call_sid, state=row["state"])
                return Recorded(Result.STORED)
            campaign = await self._campaign(conn, row["campaign_id"])
            view = merge(
                AttemptView(
                    row["state"], row["call_sid"], row["call_status"], tuple(row["statuses"]),
                    row["answered_by"], row["duration"], row["sip_response_code"],
                    row["outcome"], row["final_at"], row["hangup_requested_at"],
                ),
                event, now,
            )
            hang_up = self._hang_up(campaign, view, event)
            if hang_up:
                view = replace(view, hangup_requested_at=now)
            if row["state"] in ("requested", "unknown"):
                await conn.execute(queries.get("contact_in_call"), row["contact_id"])
            current = row["contact_attempts"] == row["attempt_no"] and row["contact_state"] in (
                "dialing", "in_call")
            if (
                view.state == "final" and view.outcome is None and current
                and (force_decision or not awaiting_amd(campaign, view))
            ):
                view = await self._decide(conn, campaign, row, view, now)
            await conn.execute(
                queries.get("update_attempt"), row["id"], view.state, view.call_sid,
                view.call_status, list(view.statuses), view.answered_by, view.duration,
                view.sip_code, view.outcome, view.final_at, view.hangup_requested_at,
            )
        metrics.CALLBACKS.labels(event.source, event.call_status or event.answered_by or "").inc()
        return Recorded(Result.STORED, hang_up=view.call_sid if hang_up else None)

    @staticmethod
    def _hang_up(campaign: Campaign, view: AttemptView, event: CallEvent) -> bool:
        if event.answered_by is None or view.hangup_requested_at is not None:
            return False
        if view.call_status in FINAL_STATUSES:
            return False
        return on_answered_by(campaign.policy, event.answered_by) is AmdAction.HANG_UP

    async def _decide(
        self, conn: Any, campaign: Campaign, row: Any, view: AttemptView, now: dt.datetime
    ) -> AttemptView:
        zone = campaign.zone(row["timezone"])
        window = campaign.spec.window()
        assert view.call_status is not None
        decision = decide(
            campaign.policy,
            attempt_no=row["attempt_no"],
            call_status=view.call_status,
            answered_by=view.answered_by or ("unknown" if awaiting_amd(campaign, view) else None),
            sip_code=view.sip_code,
            now=now,
            rng=self._rng,
            next_opening=lambda t: next_opening(window, zone, t),
        )
        if isinstance(decision, Done):
            state, due, reason = "done", None, None
        elif isinstance(decision, Retry):
            state, due, reason = "retry_wait", decision.at, None
        else:
            assert isinstance(decision, Fail)
            state, due, reason = "failed", None, decision.reason
        await conn.execute(
            queries.get("update_contact_outcome"), row["contact_id"], state, due,
            decision.outcome.value, reason,
        )
        log.info(
            "contact_decided", campaign=campaign.name, contact=row["contact_id"],
            call_sid=view.call_sid, status=view.call_status, outcome=decision.outcome.value,
            state=state,
        )
        return replace(view, outcome=decision.outcome.value)
