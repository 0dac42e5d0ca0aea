"""Claims due contacts and places their calls, paced, for the campaigns of one account
(one dispatcher per account and process: see ``dialer.account_runtime``).

The order of events for one call is what makes a crash harmless:
1. claim: in one transaction the contact becomes ``dialing`` and an attempt row is
   written (``requested``) with the record of why the call is legal now
   (``dialer.compliance``: contacts outside their calling window are deferred or
   skipped instead); the transaction commits *before* the request goes out;
2. wait for a send slot (``pacer``), then POST, unless the slot comes later than the
   window allows (its end less the last-call margin): then the contact goes back;
3. record the answer: Call SID (``live``), a refusal of the number (``rejected``:
   the contact fails), a refusal of the campaign's settings or of the account
   (``void``: the attempt is given back and the campaign, or every campaign of the
   account, pauses with the reason; see ``dialer.twilio_errors``), or ``unknown``
   when the request may or may not have created a call (reconciliation decides).
A process that dies between 1 and 3 leaves ``requested`` attempts behind; they are
treated as ``unknown`` and reconciled, never re-sent blindly.

Campaigns of the account share its send slots by weight with stride scheduling: each
turn goes to the campaign with the lowest "pass", which advances by 1/weight.

The account's REST requests in flight are capped by one semaphore, the client's
``in_flight``: a permit is taken before waiting for the send slot (so that the request
goes the moment its slot comes) and given back when the send task is done.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import asyncpg
import structlog

from dialer import metrics, personalise, repository
from dialer.accounts import Account
from dialer.callback_urls import callback_url
from dialer.campaigns import Campaign
from dialer.compliance import ClaimCaps, ClaimDecisions
from dialer.config import Settings
from dialer.dnc import DncBarrier
from dialer.live_buffer import LiveBuffer
from dialer.pacer import Pacer, Slot
from dialer.policy import AmdMode
from dialer.safetext import without_controls
from dialer.tasks import Detached
from dialer.transport import LateSend
from dialer.twilio import (
    AmbiguousError,
    AuthError,
    CampaignError,
    PermanentError,
    RateLimited,
    RetryLater,
    TwilioClient,
    TwilioError,
)
from dialer.twilio_words import STATUS_CALLBACK_EVENTS

log = structlog.get_logger(__name__)

Clock = Callable[[], dt.datetime]
# How long claimed contacts may wait in memory for a slot before they go stale.
CLAIM_AHEAD_SECONDS = 0.5
MAX_CLAIM = 200
RETRY_LATER_DELAY = dt.timedelta(seconds=30)
PAUSE_REASON_CHARS = 1000  # campaigns.pause_reason holds at most this much


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(slots=True)
class Claimed:
    """A contact claimed for one attempt, ready to be sent."""

    attempt_id: int
    contact_id: int
    attempt_no: int
    phone: str
    attributes: dict[str, Any]
    campaign_id: int
    # The request must go out before this instant (the calling window's end minus the
    # campaign's last-call margin); a send that would be later hands the contact back.
    send_by: dt.datetime
    # time.monotonic() when its claim began: a number listed later is not sent to
    # (dialer.dnc.DncBarrier).
    claimed_since: float


@dataclass(slots=True)
class CampaignQueue:
    campaign: Campaign
    ready: collections.deque[Claimed] = field(default_factory=collections.deque)
    pass_value: float = 0.0
    claiming: asyncio.Task[None] | None = None
    idle_until: float = 0.0  # monotonic: nothing was due at the last claim

    @property
    def running(self) -> bool:
        return self.campaign.state == "running"


def pause_reason(exc: TwilioError | ValueError, *, account: str | None = None) -> str:
    """What ``campaign show`` and the report say about a pause, one bounded line."""
    if isinstance(exc, TwilioError):
        what = f"Twilio error {exc.code or exc.status}"
        text = f"{what} ({exc.title}): {exc.message}" if exc.title else f"{what}: {exc.message}"
    else:
        text = str(exc)
    if account is not None:
        text = f"the account {account} was refused: {text}"
    return without_controls(text)[:PAUSE_REASON_CHARS]


def call_params(
    campaign: Campaign, item: Claimed, *, public_base_url: str, callback_retries: int
) -> list[tuple[str, str]]:
    """The Create Call form. Callback URLs carry the attempt id so that a callback can
    be matched to its attempt even when the POST's answer was lost. Raises
    ``personalise.TemplateError`` for a TwiML URL that must not be filled."""
    spec = campaign.spec
    params = [("To", item.phone), ("From", spec.from_number)]
    opt_out_url = "" if spec.opt_out_digit is None else callback_url(
        public_base_url, item.attempt_id, "gather", retries=callback_retries)
    values = personalise.contact_fields(
        item.attributes, phone=item.phone, contact_id=item.contact_id,
        attempt=item.attempt_no, campaign=campaign.name, opt_out_url=opt_out_url,
    )
    if spec.twiml_url is not None:
        params.append(("Url", personalise.fill_url(spec.twiml_url, values)))
    else:
        assert spec.twiml is not None
        params.append(("Twiml", personalise.fill_twiml(spec.twiml, values)))
    params += [
        ("StatusCallback",
         callback_url(public_base_url, item.attempt_id, "status", retries=callback_retries)),
        ("StatusCallbackMethod", "POST"),
        *(("StatusCallbackEvent", event) for event in STATUS_CALLBACK_EVENTS),
        ("Timeout", str(spec.ring_timeout)),
    ]
    if spec.amd_mode is not AmdMode.OFF:
        params.append(("MachineDetection", spec.amd_mode.value))
        if spec.amd_async:
            params += [
                ("AsyncAmd", "true"),
                ("AsyncAmdStatusCallback",
                 callback_url(public_base_url, item.attempt_id, "amd", retries=callback_retries)),
                ("AsyncAmdStatusCallbackMethod", "POST"),
            ]
    return params


class Dispatcher:
    """One per process and account. ``run`` returns when ``stop`` is set and in-flight
    requests are answered; claimed but unsent contacts are handed back. ``account``
    may be replaced while it runs (``dialer account edit``); the answers to creates go
    to ``live``, whose flusher the account's runtime runs."""

    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        client: TwilioClient,
        pacer: Pacer,
        account: Account,
        settings: Settings,
        worker_id: str,
        live: LiveBuffer,
        clock: Clock = utcnow,
        dnc: DncBarrier | None = None,
    ) -> None:
        self._pool = pool
        self._client = client
        self._pacer = pacer
        self.account = account
        self._settings = settings
        self._worker_id = worker_id
        self.wake = asyncio.Event()
        """Set to re-read the campaigns now (a NOTIFY, SIGHUP, a pause of our own)."""
        self._clock = clock
        self._sends = Detached()
        self._queues: dict[int, CampaignQueue] = {}
        self._caps = settings.cap_rules
        self.dnc = dnc or DncBarrier()
        """Fed by NOTIFY dialer_dnc (``dialer.listener``, through the account runtimes)."""
        self._in_flight = client.in_flight
        self._live = live
        self._refreshed_at = 0.0
        self._claimed = asyncio.Event()
        self._sending: dict[int, Claimed] = {}  # handed to a send task, not yet done
        # A claim failed (it may have committed anyway) or the database went away:
        # look for claims in no queue (see _release_orphans).
        self._orphans_possible = False
        self.last_progress = time.monotonic()
        self.sent = 0

    @property
    def account_sid(self) -> str:
        return self.account.sid

    # ---- campaigns -------------------------------------------------------------------

    async def refresh_campaigns(self) -> None:
        """Reload campaign rows; paused or stopped campaigns hand their claims back."""
        rows = await repository.campaigns_for_account(self._pool, self.account_sid)
        seen: set[int] = set()
        floor = min((q.pass_value for q in self._queues.values() if q.running), default=0.0)
        for row in rows:
            try:
                campaign = Campaign.from_row(row)
            except ValueError as exc:  # stored settings this version refuses
                await self._pause_unusable(row["id"], row["name"], exc)
                continue
            seen.add(campaign.id)
            queue = self._queues.get(campaign.id)
            if queue is None:
                self._queues[campaign.id] = CampaignQueue(campaign, pass_value=floor)
            else:
                queue.campaign = campaign
        for campaign_id, queue in list(self._queues.items()):
            if campaign_id not in seen or not queue.running:
                await self._release(queue)
                if campaign_id not in seen:
                    del self._queues[campaign_id]
        self._refreshed_at = time.monotonic()

    async def _pause_unusable(self, campaign_id: int, name: str, exc: ValueError) -> None:
        """A running campaign whose stored settings do not pass validation (written by
        hand, or by an older version with looser rules) is paused, not dialed."""
        reason = pause_reason(ValueError(f"its stored settings are refused: {exc}"))
        if await repository.pause_campaign(self._pool, campaign_id, reason):
            metrics.CAMPAIGNS_PAUSED.labels(self.account_sid, name, "campaign", "").inc()
            log.error("campaign_paused", campaign=name, concern="campaign", reason=reason,
                      action=f"fix it with `dialer campaign edit {name}`, then resume it")

    async def _release(self, queue: CampaignQueue) -> None:
        if queue.claiming is not None:
            await asyncio.gather(queue.claiming, return_exceptions=True)
        if not queue.ready:
            return
        ids = {item.attempt_id for item in queue.ready}
        await repository.release_unsent(self._pool, list(ids))
        # Only once they are written: a failed write leaves them queued, not forgotten.
        # Sends may have put items back meanwhile; those stay.
        queue.ready = collections.deque(i for i in queue.ready if i.attempt_id not in ids)
        log.info("claims_released", campaign=queue.campaign.name, count=len(ids))

    # ---- claiming --------------------------------------------------------------------

    def _claim_size(self, queue: CampaignQueue) -> int:
        """What the campaign's share of the rate sends in CLAIM_AHEAD_SECONDS (claimed
        contacts must not wait long in memory), plus one."""
        total_weight = sum(q.campaign.spec.weight for q in self._queues.values() if q.running)
        share = self._pacer.current_rate * queue.campaign.spec.weight / max(total_weight, 1)
        return max(1, round(min(MAX_CLAIM - 1, share * CLAIM_AHEAD_SECONDS)) + 1)

    def _top_up(self, queue: CampaignQueue) -> None:
        claiming = queue.claiming
        if claiming is not None:
            if not claiming.done():
                return
            queue.claiming = None
            failure = None if claiming.cancelled() else claiming.exception()
            if failure is not None:
                # Most likely the database is away: try again a little later.
                log.warning("claim_failed", campaign=queue.campaign.name, error=repr(failure))
                queue.idle_until = time.monotonic() + 1.0
                self._orphans_possible = True
        if not queue.running:
            return
        size = self._claim_size(queue)
        if len(queue.ready) >= max(1, size // 2) or time.monotonic() < queue.idle_until:
            return
        queue.claiming = asyncio.create_task(self._claim(queue, size - len(queue.ready)))

    async def _claim(self, queue: CampaignQueue, size: int) -> None:
        started = time.monotonic()
        now = self._clock()
        campaign = queue.campaign
        planner = campaign.planner
        decide = ClaimDecisions(planner, now)
        caps = ClaimCaps(campaign.caps(self._caps), planner, now)
        claimed = await repository.claim_due(
            self._pool,
            campaign_id=campaign.id,
            account_sid=self.account_sid,
            limit=size,
            max_concurrent=campaign.spec.max_concurrent,
            account_max_concurrent=self.account.max_concurrent_calls,
            worker_id=self._worker_id,
            now=now,
            decide=decide,
            caps=caps,
            rule_packs=planner.policy.pack_tags,
        )
        metrics.CLAIM_SECONDS.labels(self.account_sid).observe(time.monotonic() - started)
        if caps.capped:
            metrics.CONTACTS_CAPPED.labels(campaign.name).inc(caps.capped)
            log.info("contacts_capped", campaign=campaign.name, count=caps.capped)
        if not claimed:
            queue.idle_until = time.monotonic() + self._settings.poll_seconds
        queue.ready.extend(
            Claimed(r["attempt_id"], r["contact_id"], r["attempt_no"], r["phone"],
                    r["attributes"], campaign.id, decide.send_by[r["contact_id"]], started)
            for r in claimed
        )
        self._claimed.set()

    def _pick(self) -> CampaignQueue | None:
        ready = [q for q in self._queues.values() if q.running and q.ready]
        if not ready:
            return None
        queue = min(ready, key=lambda q: (q.pass_value, q.campaign.id))
        queue.pass_value += 1.0 / queue.campaign.spec.weight
        return queue

    # ---- the loop --------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await self.refresh_campaigns()
        except repository.DATABASE_ERRORS as exc:
            log.warning("dispatcher_database_unavailable", error=repr(exc))
        try:
            while not stop.is_set():
                self.last_progress = time.monotonic()
                try:
                    await self._step(stop)
                except repository.DATABASE_ERRORS as exc:
                    # Stop claiming until the database is back; nothing is queued
                    # that could not be recorded.
                    metrics.DATABASE_ERRORS.labels("dispatch").inc()
                    log.warning("dispatcher_database_unavailable", error=repr(exc))
                    self._orphans_possible = True
                    await asyncio.sleep(1)
        finally:
            await self._shutdown()

    async def _release_orphans(self) -> None:
        """A claim whose connection died with its answer may still have committed: its
        contacts are ``dialing`` under this process's name but in none of its queues.
        Nothing was sent for them, so they go back like any unsent claim. Also run after
        any database error in the loop: one query proves nothing claimed was forgotten.
        Run only while no claim is under way, so that every claim that succeeded is in
        a queue; attempts being sent, or sent but not yet written ``live``, are held too."""
        held = (self._sending.keys() | self._live.unwritten
                | {i.attempt_id for q in self._queues.values() for i in q.ready})
        mine = await repository.requested_attempts_of_worker(self._pool, self._worker_id)
        orphans = [attempt_id for attempt_id in mine if attempt_id not in held]
        if orphans:
            await repository.release_unsent(self._pool, orphans)
            log.warning("orphan_claims_released", count=len(orphans))
        self._orphans_possible = False

    async def _step(self, stop: asyncio.Event) -> None:
        claiming = any(q.claiming is not None and not q.claiming.done()
                       for q in self._queues.values())
        if self._orphans_possible and not claiming:
            await self._release_orphans()
        stale = time.monotonic() - self._refreshed_at > self._settings.poll_seconds
        if self.wake.is_set() or stale:
            self.wake.clear()
            await self.refresh_campaigns()
            if self.dnc.check_due or stale:
                await self._stop_listed()
        for queue in self._queues.values():
            self._top_up(queue)
        picked = self._pick()
        if picked is None:
            await self._idle(stop)
            return
        await self._send_next(picked, stop)

    async def _stop_listed(self) -> None:
        """Claims whose number was put on a do-not-call list after they were claimed: those
        still queued are handed back as skipped, those a send task holds are barred (the
        task checks the barrier just before the request goes out)."""
        self.dnc.check_due = False
        queued = {i.attempt_id: (q, i) for q in self._queues.values() for i in q.ready}
        if not queued and not self._sending:
            return
        listed = await repository.held_on_dnc(self._pool, [*queued, *self._sending])
        drop: list[int] = []
        for row in listed:
            found = queued.get(row["id"])
            item = found[1] if found is not None else self._sending.get(row["id"])
            if item is None:
                continue
            self.dnc.bar(row["phone"], item.campaign_id)
            if found is not None:
                drop.append(item.attempt_id)
        if not drop:
            return
        await repository.release_unsent(self._pool, drop, skip_reason="dnc")
        gone = set(drop)
        for queue in self._queues.values():
            before = len(queue.ready)
            queue.ready = collections.deque(i for i in queue.ready if i.attempt_id not in gone)
            if len(queue.ready) != before:
                metrics.CLAIMS_LISTED.labels(queue.campaign.name).inc(before - len(queue.ready))
        log.info("listed_claims_skipped", count=len(drop))

    async def _idle(self, stop: asyncio.Event) -> None:
        self._claimed.clear()
        waiters = [
            asyncio.ensure_future(event.wait()) for event in (stop, self.wake, self._claimed)
        ]
        try:
            await asyncio.wait(
                waiters, timeout=self._settings.poll_seconds, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def _send_next(self, queue: CampaignQueue, stop: asyncio.Event) -> None:
        """Wait for a permit and a send slot, then hand the next contact to a send task
        of its own, which owns the permit from then on (given back when it is done)."""
        await self._in_flight.acquire()
        handed_over = False
        try:
            waiting_since = time.monotonic()
            slot = await self._pacer.next_slot()
            if stop.is_set() or not queue.running or not queue.ready:
                return
            item = queue.ready.popleft()
            self._top_up(queue)
            self._sending[item.attempt_id] = item
            task = self._sends.spawn(self._send(queue, item, slot, waiting_since, stop),
                                     name=f"send-{item.attempt_id}")
            task.add_done_callback(self._sent)
            handed_over = True
        finally:
            if not handed_over:
                self._in_flight.release()

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._in_flight.release()

    async def _send(
        self, queue: CampaignQueue, item: Claimed, slot: Slot, waiting_since: float,
        stop: asyncio.Event,
    ) -> None:
        try:
            await self._send_paced(queue, item, slot, waiting_since, stop)
        finally:
            self._sending.pop(item.attempt_id, None)

    async def _send_paced(
        self, queue: CampaignQueue, item: Claimed, slot: Slot, waiting_since: float,
        stop: asyncio.Event,
    ) -> None:
        campaign = queue.campaign
        account = self.account_sid
        bound = log.bind(campaign=campaign.name, contact=item.contact_id, attempt=item.attempt_id)
        try:
            params = call_params(
                campaign, item, public_base_url=self._settings.public_base_url,
                callback_retries=self._settings.callback_retries,
            )
        except personalise.TemplateError as exc:
            await self._refused(queue, item, exc)
            return
        late = self._clock() >= item.send_by
        if late:
            bound.warning("call_not_sent_window_closing", send_by=item.send_by.isoformat())
        listed = self.dnc.bars(item.phone, campaign.id, claimed_since=item.claimed_since)
        if listed:
            bound.info("call_not_sent_number_listed", state="skipped")
            metrics.CLAIMS_LISTED.labels(campaign.name).inc()
        if stop.is_set() or not queue.running or late or listed:
            await repository.persist(
                lambda: repository.release_unsent(
                    self._pool, [item.attempt_id], skip_reason="dnc" if listed else None),
                what="unsent attempt",
            )
            return
        started = time.monotonic()
        waited = started - waiting_since
        reached_twilio = True
        try:
            # The wait for the slot itself happens at the socket (dialer.transport).
            info = await self._client.create_call(params, not_before=slot.at,
                                                  not_after=slot.deadline)
        except LateSend:
            # Held up past the slot's deadline before the socket: sent now, it would
            # crowd the next slots' window. Not sent, so the attempt goes on a later slot,
            # and there is no request to time.
            reached_twilio = False
            self._pacer.missed(slot)
            queue.ready.appendleft(item)
            return
        except RateLimited as exc:
            metrics.CALLS_CREATED.labels(account, campaign.name, "rate_limited").inc()
            metrics.TWILIO_ERRORS.labels(account, str(exc.code)).inc()
            self._pacer.on_rate_limited()
            bound.info("call_rate_limited", code=exc.code)
            queue.ready.appendleft(item)  # the same attempt goes again; it does not count
            return
        except PermanentError as exc:
            await repository.persist(
                partial(repository.reject_attempt, self._pool, item.attempt_id,
                        code=exc.code, message=exc.message),
                what="rejected attempt",
            )
            metrics.CALLS_CREATED.labels(account, campaign.name, "permanent_error").inc()
            metrics.TWILIO_ERRORS.labels(account, str(exc.code)).inc()
            bound.info("call_rejected", code=exc.code, reason=exc.message, state="failed")
            return
        except (CampaignError, AuthError) as exc:
            metrics.CALLS_CREATED.labels(account, campaign.name, "refused").inc()
            metrics.TWILIO_ERRORS.labels(account, str(exc.code)).inc()
            await self._refused(queue, item, exc)
            return
        except RetryLater as exc:
            due_at = self._clock() + RETRY_LATER_DELAY
            await repository.persist(
                lambda: repository.release_unsent(self._pool, [item.attempt_id], due_at=due_at),
                what="refused attempt",
            )
            metrics.TWILIO_ERRORS.labels(account, str(exc.code)).inc()
            bound.warning("call_refused_retry_later", code=exc.code, reason=exc.message)
            return
        except AmbiguousError as exc:
            await repository.persist(
                partial(repository.mark_unknown, self._pool, item.attempt_id, reason=exc.message),
                what="ambiguous attempt",
            )
            metrics.CALLS_CREATED.labels(account, campaign.name, "ambiguous").inc()
            bound.warning("call_outcome_ambiguous", reason=exc.message, state="unknown")
            return
        finally:
            if reached_twilio:  # both count the requests Twilio got, once each
                metrics.BUCKET_WAIT.labels(account).observe(waited)
                metrics.TWILIO_LATENCY.labels(account).observe(time.monotonic() - started)
        self.sent += 1
        metrics.CALLS_CREATED.labels(account, campaign.name, "created").inc()
        self._live.add(item.attempt_id, info, self._clock())
        bound.info("call_created", call_sid=info.sid, state="in_call")

    async def _refused(
        self, queue: CampaignQueue, item: Claimed,
        exc: CampaignError | AuthError | personalise.TemplateError,
    ) -> None:
        """Twilio refused the campaign's settings (or the URL template cannot be
        filled) or the account: every other contact would be refused alike, so the
        campaign, or every campaign of the account, pauses with the reason stored, and
        this contact's attempt is given back. One loud line for each pause."""
        account = self.account_sid if isinstance(exc, AuthError) else None
        code = exc.code if isinstance(exc, TwilioError) else None
        reason = pause_reason(exc, account=account)
        paused: list[str] = []

        async def write() -> None:
            if account is not None:
                paused[:] = await repository.refuse_and_pause_account(
                    self._pool, item.attempt_id, account_sid=account, code=code,
                    message=str(exc), reason=reason,
                )
            elif await repository.refuse_and_pause_campaign(
                self._pool, item.attempt_id, campaign_id=queue.campaign.id, code=code,
                message=str(exc), reason=reason,
            ):
                paused[:] = [queue.campaign.name]

        await repository.persist(write, what="campaign pause")
        # Stop sending from this process at once; the NOTIFY tells the others.
        for other in self._queues.values():
            if other is queue or account is not None:
                other.campaign = dataclasses.replace(other.campaign, state="paused")
        self.wake.set()
        concern = "account" if account is not None else "campaign"
        for name in paused:
            metrics.CAMPAIGNS_PAUSED.labels(self.account_sid, name, concern,
                                            str(code or "")).inc()
        if paused:
            log.error("campaign_paused", campaigns=paused, concern=concern, code=code,
                      reason=reason, attempt=item.attempt_id,
                      action="fix the cause, then `dialer campaign resume NAME`")
        else:
            log.info("call_refused_while_paused", campaign=queue.campaign.name, code=code,
                     attempt=item.attempt_id)

    async def _shutdown(self) -> None:
        """Stop claiming, hand back what was never sent, let in-flight POSTs answer
        (their answers are then the flusher's to write, see ``dialer.live_buffer``).

        With the database away, what cannot be written stays ``requested`` under this
        worker's name; once the worker is deregistered or found dead those attempts
        become ``unknown`` and reconciliation settles them, so shutdown does not wait."""
        await self._release_all()
        await self._sends.wait()  # every POST has been answered
        await self._release_all()  # what sends put back meanwhile (429s, ...)
        await self._pacer.aclose()

    async def _release_all(self) -> None:
        for queue in self._queues.values():
            try:
                await self._release(queue)
            except repository.DATABASE_ERRORS as exc:
                log.warning("claims_not_released", campaign=queue.campaign.name,
                            count=len(queue.ready), error=repr(exc),
                            action="reconciled as a dead worker's")
