"""Simulated calls: the Call resource, the CPS queue and each call's life.

A created call waits in its account's queue until its CPS slot (real time; every
account has a queue of its own at its own CPS), then is dialed (``initiated``), rings,
and is answered or not as its fate says; the progress events it asked for go to its
StatusCallback. Ringing and talking take the fate's simulated seconds times
``time_scale``.

Resource conventions (as Twilio's): ``start_time`` is set when the call leaves the
queue, ``end_time`` when it ends; ``duration`` (seconds, a string) is set once it
ended, "0" if nobody answered. Durations are *simulated* seconds, so a scaled-down
20 s call still reports 20; timestamps are the real clock.

A person who answers may press keys (``SimConfig.press_digits``) into the first
``<Gather action>`` of the call's inline TwiML: ``GATHER_SECONDS`` after the answer
(sooner if the call would end first) the simulator requests the action, signed like a
callback, with ``Digits``, and the call ends ``SAY_SECONDS`` after the answer it gets
(the TwiML is kept as the record's ``answer``), as Twilio ends a call whose document
runs out.

Updates: Status=canceled or completed on a queued or ringing call cancels it
(CallStatus canceled); Status=completed on an answered call hangs up (completed, with
the duration so far); Status=canceled on an answered call changes nothing; Url,
Twiml and StatusCallback are recorded on a live call. Any update of an ended call
is refused with 400/21220, as Twilio does.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import email.utils
import functools
import math
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog

from dialer.sim.callbacks import CallbackRecord, CallbackSender
from dialer.sim.config import SimAccountConfig, SimConfig
from dialer.sim.errors import bad_request, concurrent_calls_exceeded
from dialer.sim.params import CreateParams, Form, Method, UpdateParams
from dialer.sim.scenario import GATHER_SECONDS, SAY_SECONDS, Fate
from dialer.sim.twiml import Gather, find_gather, keys_sent
from dialer.twilio_words import API_VERSION, STATUS_SOURCE

log = structlog.get_logger(__name__)

LIVE_STATUSES = frozenset({"queued", "ringing", "in-progress"})
# Twilio lists nine subresources; the simulator lists only the one it serves, so that
# a client following ``subresource_uris`` never meets a 404.
_SUBRESOURCE_PATHS = {"events": "Events"}
_NANP = re.compile(r"^\+1(\d{3})(\d{3})(\d{4})$")
_EVENT_STATUS = {"initiated": "initiated", "ringing": "ringing", "answered": "in-progress"}


@functools.lru_cache(maxsize=4096)
def _rfc2822_second(second: int) -> str:
    return email.utils.format_datetime(dt.datetime.fromtimestamp(second, dt.UTC))


def rfc2822(epoch: float) -> str:
    """Twilio's date format, e.g. ``Tue, 31 Aug 2010 20:36:28 +0000`` (cached per second)."""
    return _rfc2822_second(int(epoch))


def _date(epoch: float | None) -> str | None:
    return None if epoch is None else rfc2822(epoch)


def formatted(number: str) -> str:
    """Twilio's display form: North American numbers as (415) 867-5309, others unchanged."""
    match = _NANP.match(number)
    return f"({match[1]}) {match[2]}-{match[3]}" if match else number


@dataclass(eq=False, slots=True)
class SimCall:
    """One call and everything that happened to it; ``resource()`` is its JSON."""

    sid: str
    account_sid: str
    to: str
    from_: str
    request: CreateParams
    fate: Fate
    queue_time_ms: int
    date_created: float
    date_updated: float
    status_callback: str | None
    status_callback_method: Method
    keys: str | None = None
    """What the person who answers presses into the call's Gather (None: nothing)."""
    status: str = "queued"
    start_time: float | None = None
    end_time: float | None = None
    duration: int | None = None
    answered_by: str | None = None
    sip_response_code: int | None = None
    callbacks: list[CallbackRecord] = field(default_factory=list)
    updates: list[Form] = field(default_factory=list)
    """Every accepted update request, as sent."""
    # Engine state.
    answered_at: float | None = None
    sequence: int = 0
    wakeup: asyncio.Future[bool] | None = None
    delivery: asyncio.Task[None] | None = None
    held: list[CallbackRecord] = field(default_factory=list)

    @property
    def live(self) -> bool:
        return self.status in LIVE_STATUSES

    @property
    def uri(self) -> str:
        return f"/{API_VERSION}/Accounts/{self.account_sid}/Calls/{self.sid}.json"

    @property
    def recording_sid(self) -> str:
        """The recording a ``Record=true`` call made (derived: one per call)."""
        return "RE" + self.sid[2:]

    def events(self) -> list[dict[str, Any]]:
        """The Call Events resource: every webhook request made for the call and the
        answer it got (one per delivery attempt), oldest first."""
        return [
            {
                "request": {
                    "method": record.method,
                    "url": record.url,
                    "parameters": record.params,
                },
                "response": {
                    "response_code": attempt.status,
                    "request_duration": round(attempt.seconds * 1000),
                    "date_created": rfc2822(attempt.wall),
                    "error": attempt.error,
                },
            }
            for record in self.callbacks
            for attempt in record.attempts
        ]

    def resource(self) -> dict[str, Any]:
        base = self.uri[: -len(".json")]
        return {
            "account_sid": self.account_sid,
            "annotation": None,
            "answered_by": self.answered_by,
            "api_version": API_VERSION,
            "caller_name": None,
            "date_created": _date(self.date_created),
            "date_updated": _date(self.date_updated),
            "direction": "outbound-api",
            "duration": None if self.duration is None else str(self.duration),
            "end_time": _date(self.end_time),
            "forwarded_from": None,
            "from": self.from_,
            "from_formatted": formatted(self.from_),
            "group_sid": None,
            "parent_call_sid": None,
            "phone_number_sid": None,
            "price": None,
            "price_unit": "USD",
            "queue_time": str(self.queue_time_ms),
            "sid": self.sid,
            "start_time": _date(self.start_time),
            "status": self.status,
            "subresource_uris": {
                name: f"{base}/{path}.json" for name, path in _SUBRESOURCE_PATHS.items()
            },
            "to": self.to,
            "to_formatted": formatted(self.to),
            "trunk_sid": None,
            "uri": self.uri,
        }


def _resolve(future: asyncio.Future[bool], value: bool) -> None:
    if not future.done():
        future.set_result(value)


class CallEngine:
    """Creates calls, runs each through its fate, and applies updates. ``calls`` holds
    every account's calls (SIDs are unique); queues and live counts are per account."""

    def __init__(self, config: SimConfig, sender: CallbackSender) -> None:
        self.calls: dict[str, SimCall] = {}
        self.live_calls: collections.Counter[str] = collections.Counter()
        """Queued or live calls, by account SID."""
        self._config = config
        self._sender = sender
        self._scenario = config.make_scenario()
        self._dialed: collections.Counter[str] = collections.Counter()
        self._next_start: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def create(self, request: CreateParams, account: SimAccountConfig) -> SimCall:
        sid = account.account_sid
        limit = account.max_concurrent_calls
        if limit is not None and self.live_calls[sid] >= limit:
            raise concurrent_calls_exceeded(limit)
        now, wall = time.monotonic(), time.time()
        start_at = max(now, self._next_start.get(sid, 0.0))
        self._next_start[sid] = start_at + 1 / account.cps
        previous = self._dialed[request.to]
        fate = self._scenario.fate(
            request.to, previous, request.machine_detection, request.timeout
        )
        self._dialed[request.to] += 1
        call = SimCall(
            sid="CA" + uuid.uuid4().hex,
            account_sid=sid,
            to=request.to,
            from_=request.from_,
            request=request,
            fate=fate,
            queue_time_ms=round((start_at - now) * 1000),
            date_created=wall,
            date_updated=wall,
            status_callback=request.status_callback,
            status_callback_method=request.status_callback_method,
            keys=self._config.keys_for(request.to, previous) if fate.human else None,
        )
        self.calls[call.sid] = call
        self.live_calls[sid] += 1
        task = asyncio.create_task(self._run(call, start_at - now))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return call

    def update(self, call: SimCall, update: UpdateParams, form: Form) -> None:
        """Apply an update request; ending a call takes effect before this returns."""
        if not call.live:
            raise bad_request(21220, "Unable to update record: Call is not in-progress")
        call.updates.append(form)
        if update.status_callback is not None:
            call.status_callback = update.status_callback
        if update.status_callback_method is not None:
            call.status_callback_method = update.status_callback_method
        if update.status == "completed" and call.answered_at is not None:
            self._end(call, "completed", 200, self._talked_so_far(call.answered_at))
        elif update.status is not None and call.status in ("queued", "ringing"):
            self._end(call, "canceled", 487, 0)
        call.date_updated = time.time()
        if not call.live and call.wakeup is not None:
            _resolve(call.wakeup, False)

    def delete(self, call: SimCall) -> None:
        """Forget an ended call's record (and its events), as Twilio's DELETE does."""
        if call.live:
            raise bad_request(20001, f"Call {call.sid} is not over: end it before deleting it")
        del self.calls[call.sid]

    async def _run(self, call: SimCall, queue_delay: float) -> None:
        try:
            await self._progress(call, queue_delay)
            self._fire(call, "completed")
        except Exception:  # a bug here must show, not vanish with the task
            log.exception("sim_call_crashed", call_sid=call.sid)

    async def _progress(self, call: SimCall, queue_delay: float) -> None:
        """Run the call until it ends by its fate or is ended by an update."""
        fate, scale = call.fate, self._config.time_scale
        if not await self._pause(call, queue_delay):
            return
        call.start_time = call.date_updated = time.time()
        self._fire(call, "initiated")
        if fate.status != "failed":
            call.status = "ringing"
            self._fire(call, "ringing")
        if not await self._pause(call, fate.ring_seconds * scale):
            return
        if not fate.answered:
            self._end(call, fate.status, fate.sip_response_code, 0)
            return
        call.status, call.answered_at = "in-progress", time.monotonic()
        call.date_updated = time.time()
        asynchronous = call.request.async_amd
        if not asynchronous:
            call.answered_by = fate.answered_by
        self._fire(call, "answered")
        talk = fate.talk_seconds * scale
        if asynchronous and fate.answered_by is not None:
            verdict_after = min(fate.amd_seconds, fate.talk_seconds) * scale
            if not await self._pause(call, verdict_after):
                return
            call.answered_by = fate.answered_by
            self._send_amd_result(call)
            talk -= verdict_after
        gather = find_gather(call.request.twiml) if call.keys else None
        if gather is not None:
            await self._gather(call, gather, scale)
        elif await self._pause(call, talk):
            self._end(call, "completed", 200, round(fate.talk_seconds))

    async def _gather(self, call: SimCall, gather: Gather, scale: float) -> None:
        """The person presses the call's keys into ``gather``; the call ends after the
        action's answer has played."""
        assert call.keys is not None
        pressed_after = min(GATHER_SECONDS, call.fate.talk_seconds)
        if not await self._pause(call, pressed_after * scale):
            return
        digits, finished_on = keys_sent(gather, call.keys)
        params = {
            "AccountSid": call.account_sid, "ApiVersion": API_VERSION, "CallSid": call.sid,
            "CallStatus": "in-progress", "Called": call.to, "Caller": call.from_,
            "Digits": digits, "Direction": "outbound-api", "FinishedOnKey": finished_on,
            "From": call.from_, "To": call.to, "msg": "Gather End",
        }
        record = CallbackRecord("gather", "gather", gather.action, gather.method, params)
        call.callbacks.append(record)
        await self._sender.exchange(record)
        if await self._pause(call, SAY_SECONDS * scale):
            self._end(call, "completed", 200, round(pressed_after + SAY_SECONDS))

    async def _pause(self, call: SimCall, seconds: float) -> bool:
        """Wait ``seconds``; False if the call was ended (by an update) meanwhile."""
        if not call.live:
            return False
        if seconds <= 0:
            return True
        loop = asyncio.get_running_loop()
        call.wakeup = loop.create_future()
        timer = loop.call_later(seconds, _resolve, call.wakeup, True)
        try:
            return await call.wakeup
        finally:
            timer.cancel()
            call.wakeup = None

    def _end(self, call: SimCall, status: str, sip_response_code: int, duration: int) -> None:
        call.status, call.sip_response_code, call.duration = status, sip_response_code, duration
        call.end_time = call.date_updated = time.time()
        self.live_calls[call.account_sid] -= 1

    def _talked_so_far(self, answered_at: float) -> int:
        """Simulated seconds since the answer (real elapsed time unscaled)."""
        scale = self._config.time_scale
        return round((time.monotonic() - answered_at) / scale) if scale else 0

    def _send(self, call: SimCall, record: CallbackRecord) -> None:
        call.delivery = self._sender.schedule(record, after=call.delivery)

    def _fire(self, call: SimCall, event: Literal["initiated", "ringing", "answered", "completed"]
              ) -> None:
        """Send a progress event if the call asked for it (completed by default)."""
        if call.status_callback is None or event not in call.request.status_callback_events:
            return
        params = {
            "CallSid": call.sid,
            "AccountSid": call.account_sid,
            "From": call.from_,
            "To": call.to,
            "Caller": call.from_,
            "Called": call.to,
            "CallStatus": _EVENT_STATUS.get(event, call.status),
            "Direction": "outbound-api",
            "ApiVersion": API_VERSION,
            "Timestamp": rfc2822(time.time()),
            "CallbackSource": STATUS_SOURCE,
            "SequenceNumber": str(call.sequence),
        }
        call.sequence += 1
        if call.answered_by is not None and not call.request.async_amd:
            params["AnsweredBy"] = call.answered_by
        if event == "completed":
            seconds = call.duration or 0
            params["CallDuration"] = str(seconds)
            params["Duration"] = str(math.ceil(seconds / 60))
            params["SipResponseCode"] = str(call.sip_response_code)
            if call.request.record and call.answered_at is not None:
                # Only the completed event carries the recording (Call resource docs).
                params["RecordingSid"] = call.recording_sid
                params["RecordingUrl"] = (
                    f"https://api.twilio.com/{API_VERSION}/Accounts/{call.account_sid}"
                    f"/Recordings/{call.recording_sid}"
                )
                params["RecordingDuration"] = str(seconds)
        record = CallbackRecord("status", event, call.status_callback,
                                call.status_callback_method, params)
        call.callbacks.append(record)
        if self._config.out_of_order_callbacks and event != "completed":
            call.held.append(record)
            return
        self._send(call, record)
        if event == "completed":
            for held in reversed(call.held):
                self._send(call, held)
            call.held.clear()

    def _send_amd_result(self, call: SimCall) -> None:
        url = call.request.async_amd_status_callback
        if url is None or call.answered_by is None:
            return
        params = {
            "CallSid": call.sid,
            "AccountSid": call.account_sid,
            "AnsweredBy": call.answered_by,
            "MachineDetectionDuration": str(round(call.fate.amd_seconds * 1000)),
        }
        record = CallbackRecord(
            "amd", "amd", url, call.request.async_amd_status_callback_method, params
        )
        call.callbacks.append(record)
        self._send(call, record)

    async def aclose(self) -> None:
        """Stop every call where it is (no further callbacks)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
