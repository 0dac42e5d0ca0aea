"""Turns call events (callbacks, or what reconciliation learned) into recorded results.

Events are recorded in group-commit batches: lock the attempts and their contacts,
store each raw event once (a duplicate stops there), then ``apply_event`` (pure)
says what it does: merged into its attempt without ever moving backwards, a hang-up
when AMD found a machine, and when the call has ended what the policy makes of the
contact. The batch writes what those answers say. Whatever order events arrive in,
the rows end the same.

An event is validated before it joins a batch (dialer.callbacks), so Postgres has no
reason to refuse it. Should it refuse one anyway, the batch is recorded again in
halves until the offender is alone: it alone learns it was not recorded.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import asyncpg
import structlog

from dialer import metrics, repository
from dialer.campaigns import Campaign
from dialer.compliance import Location
from dialer.policy import AmdAction, Done, Fail, Retry, decide, on_answered_by
from dialer.repository import DATABASE_ERRORS
from dialer.twilio_words import FINAL_STATUSES, status_rank

log = structlog.get_logger(__name__)

CAMPAIGN_CACHE_SECONDS = 2.0
DEADLOCK_RETRIES = 3


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
    legacy_url: bool = False
    """Reported to a callback URL of the old form (accepted only for old attempts)."""
    account_sid: str | None = None
    """The account that signed it; an attempt of another account is not its to report."""


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
    if event.call_status is not None and status_rank(event.call_status) > status_rank(status):
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


@dataclass(frozen=True, slots=True)
class ContactDecision:
    """What becomes of a contact whose current attempt has ended (``policy.decide``)."""

    contact_id: int
    state: str
    due_at: dt.datetime | None
    outcome: str
    reason: str | None


@dataclass(frozen=True, slots=True)
class Applied:
    """What one new event does: the attempt's columns after it, whether its contact is
    now in a call (the attempt knew no call yet), whether the call must be hung up now,
    and the contact's decision when the event ended its current attempt."""

    view: AttemptView
    adopted: bool
    hang_up: bool
    decision: ContactDecision | None


def apply_event(
    campaign: Campaign, row: Mapping[str, Any], view: AttemptView, event: CallEvent, *,
    now: dt.datetime, force_decision: bool, rng: random.Random,
) -> Applied:
    """Pure: the attempt ``view`` (its locked ``row`` for the rest: its contact, attempt
    number, location) after a new ``event``. ``force_decision``: decide even while an
    async AMD result is still awaited (reconciliation's grace period is over)."""
    merged = merge(view, event, now)
    hang_up = _hang_up(campaign, merged, event)
    if hang_up:
        merged = replace(merged, hangup_requested_at=now)
    current = row["contact_attempts"] == row["attempt_no"] and row["contact_state"] in (
        "dialing", "in_call")
    decision = None
    # An outcome recorded while the call was live (opted_out, by the Gather action)
    # has decided the contact already: the call's end decides nothing more.
    if (
        merged.state == "final" and merged.outcome is None and current
        and (force_decision or not awaiting_amd(campaign, merged))
    ):
        decision = _decide(campaign, row, merged, now, rng)
        merged = replace(merged, outcome=decision.outcome)
    return Applied(merged, adopted=row["state"] in ("requested", "unknown"),
                   hang_up=hang_up, decision=decision)


def _hang_up(campaign: Campaign, view: AttemptView, event: CallEvent) -> bool:
    """AMD said machine (or fax) and the campaign hangs up on those, unless the call
    has ended or its hang-up was asked for already."""
    if event.answered_by is None or view.hangup_requested_at is not None:
        return False
    if view.call_status in FINAL_STATUSES:
        return False
    return on_answered_by(campaign.policy, event.answered_by) is AmdAction.HANG_UP


def _decide(campaign: Campaign, row: Mapping[str, Any], view: AttemptView,
            now: dt.datetime, rng: random.Random) -> ContactDecision:
    # The retry becomes due when the contact may next be called in every zone it
    # may be in, under every rule; a contact of unknown location (from before
    # migration 0005) is decided at its claim.
    planner = campaign.planner
    location = None if row["zones"] is None or row["states"] is None else Location(
        tuple(row["zones"]), row["zone_source"], tuple(row["states"]),
        tuple(row["state_sources"]))
    assert view.call_status is not None
    decision = decide(
        campaign.policy,
        attempt_no=row["attempt_no"],
        call_status=view.call_status,
        answered_by=view.answered_by or ("unknown" if awaiting_amd(campaign, view) else None),
        sip_code=view.sip_code,
        now=now,
        rng=rng,
        next_opening=lambda t: t if location is None else planner.next_due(location, t),
    )
    if isinstance(decision, Done):
        state, due, reason = "done", None, None
    elif isinstance(decision, Retry):
        state, due, reason = "retry_wait", decision.at, None
    else:
        assert isinstance(decision, Fail)
        state, due, reason = "failed", None, decision.reason
    return ContactDecision(row["contact_id"], state, due, decision.outcome.value, reason)


class Result(enum.Enum):
    STORED = "stored"
    DUPLICATE = "duplicate"
    UNKNOWN_CALL = "unknown_call"
    REFUSED = "refused"
    """Reported to the old URL form for an attempt that was given the new one."""
    FOREIGN = "foreign"
    """Signed by another account than the one whose campaign placed the attempt."""


class NotRecorded(Exception):
    """The recorder stopped before it could record the event (shutdown)."""


@dataclass(frozen=True, slots=True)
class Recorded:
    result: Result
    hang_up: str | None = None  # Call SID to end now (AMD said machine or fax)


@dataclass(slots=True)
class _Pending:
    event: CallEvent
    now: dt.datetime
    force_decision: bool
    done: asyncio.Future[Recorded]


@dataclass(slots=True)
class _Locked:
    """An attempt row locked by a batch, and what the batch makes of it."""

    row: Any
    view: AttemptView
    changed: bool = False


def _key(event: CallEvent) -> tuple[str, str, int | None, str | None]:
    return (event.call_sid, event.source, event.sequence_number, event.idempotency_token)


class OutcomeRecorder:
    """Records events in batches: one transaction for every event that arrived while
    the previous one committed (group commit). Each caller waits for the commit of
    its own event, so a 2xx still means "durably recorded", and at high callback
    rates the cost per event falls to a few statements per batch. ``run`` is the
    flusher that writes the batches (a supervised task of the daemon).

    Keeps a short-lived cache of campaign rows (edits apply within seconds)."""

    MAX_BATCH = 500

    def __init__(self, pool: asyncpg.Pool, *, rng: random.Random | None = None) -> None:
        self._pool = pool
        self._rng = rng or random.Random()
        self._campaigns: dict[int, tuple[float, Campaign]] = {}
        self._queue: list[_Pending] = []
        self._arrived = asyncio.Event()

    async def record(
        self, event: CallEvent, *, now: dt.datetime, force_decision: bool = False
    ) -> Recorded:
        done: asyncio.Future[Recorded] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(event, now, force_decision, done))
        self._arrived.set()
        return await done

    async def run(self) -> None:
        """Record what arrives, batch after batch, for as long as the daemon runs.
        Stopped, it tells every caller still waiting that its event was not recorded."""
        batch: list[_Pending] = []
        try:
            while True:
                await self._arrived.wait()
                self._arrived.clear()
                while self._queue:
                    batch = self._queue[: self.MAX_BATCH]
                    self._queue = self._queue[self.MAX_BATCH :]
                    await self._settle(batch)
        finally:
            for pending in (*batch, *self._queue):
                if not pending.done.done():
                    pending.done.set_exception(NotRecorded("the recorder stopped"))
            self._queue = []

    async def _settle(self, batch: list[_Pending]) -> None:
        """Record ``batch`` and tell each waiter. When Postgres refuses a batch of
        several events, each half is recorded on its own, down to the offender."""
        try:
            results = await self._record_batch_retrying(batch)
        except Exception as exc:
            if len(batch) == 1 or isinstance(exc, DATABASE_ERRORS):
                # The offender itself (its caller logs it), or a database that is away
                # for everyone: splitting would only knock on a closed door.
                for pending in batch:
                    if not pending.done.done():
                        pending.done.set_exception(exc)
                return
            log.warning("callback_batch_split", size=len(batch), error=repr(exc))
            half = len(batch) // 2
            await self._settle(batch[:half])
            await self._settle(batch[half:])
            return
        for pending, result in zip(batch, results, strict=True):
            if not pending.done.done():
                pending.done.set_result(result)

    async def _record_batch_retrying(self, batch: list[_Pending]) -> list[Recorded]:
        """Writers lock attempts and contacts in one order, but a deadlock aborts only
        the whole transaction, which can simply run again (nothing outside it has
        happened yet: hang-ups and metrics follow the commit)."""
        attempt = 1
        while True:
            try:
                return await self._record_batch(batch)
            except asyncpg.DeadlockDetectedError:
                if attempt > DEADLOCK_RETRIES:
                    raise
                log.warning("callback_batch_deadlock", attempt=attempt, size=len(batch))
                attempt += 1

    async def _campaign(self, conn: Any, campaign_id: int) -> Campaign:
        cached = self._campaigns.get(campaign_id)
        if cached is not None and time.monotonic() - cached[0] < CAMPAIGN_CACHE_SECONDS:
            return cached[1]
        campaign = Campaign.from_row(await repository.campaign_by_id(conn, campaign_id))
        self._campaigns[campaign_id] = (time.monotonic(), campaign)
        return campaign

    @staticmethod
    def _find(event: CallEvent, by_id: dict[int, _Locked], by_sid: dict[str, _Locked]
              ) -> _Locked | Result:
        """The attempt the callback URL names, unless it belongs to another call (or,
        not knowing its call yet, another attempt has this one), else the attempt with
        this Call SID."""
        owner = by_sid.get(event.call_sid)
        if event.attempt_hint is None:
            return Result.UNKNOWN_CALL if owner is None else OutcomeRecorder._own(event, owner)
        locked = by_id.get(event.attempt_hint)
        if locked is None or locked.row["call_sid"] not in (None, event.call_sid):
            return Result.UNKNOWN_CALL
        if owner is not None and owner is not locked:
            return Result.UNKNOWN_CALL
        if event.legacy_url and not locked.row["legacy_callback_url"]:
            return Result.REFUSED
        return OutcomeRecorder._own(event, locked)

    @staticmethod
    def _own(event: CallEvent, locked: _Locked) -> _Locked | Result:
        """The attempt, unless the event comes from another account than its campaign's:
        each client's token signs only that client's calls' callbacks."""
        if event.account_sid is not None and event.account_sid != locked.row["account_sid"]:
            return Result.FOREIGN
        return locked

    async def _record_batch(self, batch: list[_Pending]) -> list[Recorded]:
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await repository.lock_attempts(
                conn,
                [p.event.attempt_hint for p in batch if p.event.attempt_hint is not None],
                [p.event.call_sid for p in batch],
            )
            by_id = {row["id"]: _Locked(row, _view(row)) for row in rows}
            by_sid = {lk.row["call_sid"]: lk for lk in by_id.values() if lk.row["call_sid"]}
            targets = [self._find(p.event, by_id, by_sid) for p in batch]
            known = [
                (p, lk) for p, lk in zip(batch, targets, strict=True) if isinstance(lk, _Locked)
            ]
            inserted = {
                (r["call_sid"], r["source"], r["sequence_number"], r["idempotency_token"])
                for r in await repository.insert_events(
                    conn, _event_columns([(p.event, lk.row["id"]) for p, lk in known]))
            }
            results: list[Recorded] = []
            adopted: list[int] = []
            decisions: list[ContactDecision] = []
            for pending, locked in zip(batch, targets, strict=True):
                if isinstance(locked, Result):
                    results.append(Recorded(locked))
                    continue
                key = _key(pending.event)
                if key not in inserted:
                    results.append(Recorded(Result.DUPLICATE))
                    continue
                inserted.discard(key)  # a twin later in the batch is a duplicate
                applied = await self._apply(conn, pending, locked)
                if applied is None:
                    results.append(Recorded(Result.STORED))
                    continue
                contact_id = locked.row["contact_id"]
                if applied.adopted and contact_id not in adopted:
                    adopted.append(contact_id)
                if applied.decision is not None:
                    decisions.append(applied.decision)
                locked.view, locked.changed = applied.view, True
                results.append(Recorded(
                    Result.STORED, hang_up=applied.view.call_sid if applied.hang_up else None))
            changed = [lk for lk in by_id.values() if lk.changed]
            if adopted:
                await repository.contacts_in_call(conn, adopted)
            if decisions:
                await repository.update_contact_outcomes(conn, _decision_columns(decisions))
            if changed:
                await repository.update_attempts(conn, _attempt_columns(changed))
        for pending, result in zip(batch, results, strict=True):
            if result.result is Result.STORED:
                event = pending.event
                metrics.CALLBACKS.labels(
                    event.source, event.call_status or event.answered_by or ""
                ).inc()
        return results

    async def _apply(self, conn: Any, pending: _Pending, locked: _Locked) -> Applied | None:
        """``apply_event`` on the attempt's campaign, logged; None for an attempt that
        is closed (void or rejected), whose row the event must not change."""
        event, row = pending.event, locked.row
        if row["state"] in ("void", "rejected"):
            # Reconciliation found no call, yet here is one: keep the evidence and say
            # so loudly; the contact has moved on and must not be rewound.
            log.error("callback_for_closed_attempt", attempt=row["id"],
                      call_sid=event.call_sid, state=row["state"])
            return None
        campaign = await self._campaign(conn, row["campaign_id"])
        before = locked.view
        applied = apply_event(campaign, row, before, event, now=pending.now,
                              force_decision=pending.force_decision, rng=self._rng)
        view = applied.view
        if (view.call_status, view.answered_by) != (before.call_status, before.answered_by):
            log.info("call_state_changed", campaign=campaign.name, contact=row["contact_id"],
                     call_sid=event.call_sid, status=view.call_status,
                     answered_by=view.answered_by, source=event.source)
        if applied.decision is not None:
            log.info("contact_decided", campaign=campaign.name, contact=row["contact_id"],
                     call_sid=view.call_sid, status=view.call_status,
                     outcome=applied.decision.outcome, state=applied.decision.state)
        return applied


def _view(row: Any) -> AttemptView:
    return AttemptView(
        row["state"], row["call_sid"], row["call_status"], tuple(row["statuses"]),
        row["answered_by"], row["duration"], row["sip_response_code"], row["outcome"],
        row["final_at"], row["hangup_requested_at"],
    )


def _event_columns(events: list[tuple[CallEvent, int]]) -> list[list[Any]]:
    columns: list[list[Any]] = [[] for _ in range(8)]
    for event, attempt_id in events:
        for column, value in zip(columns, (
            event.call_sid, attempt_id, event.source, event.sequence_number,
            event.idempotency_token, event.call_status, event.answered_by, dict(event.params),
        ), strict=True):
            column.append(value)
    return columns


def _decision_columns(decisions: list[ContactDecision]) -> list[list[Any]]:
    return [[d.contact_id for d in decisions], [d.state for d in decisions],
            [d.due_at for d in decisions], [d.outcome for d in decisions],
            [d.reason for d in decisions]]


def _attempt_columns(changed: list[_Locked]) -> list[list[Any]]:
    return [list(column) for column in zip(*(
        (lk.row["id"], lk.view.state, lk.view.call_sid, lk.view.call_status,
         ",".join(lk.view.statuses), lk.view.answered_by, lk.view.duration, lk.view.sip_code,
         lk.view.outcome, lk.view.final_at, lk.view.hangup_requested_at)
        for lk in changed
    ), strict=True)]
