"""Pacing of call creations: never more than the account's CPS, evenly spread.

Two layers, each doing one thing:

* The account's *schedule* lives in Postgres (``accounts.next_slot``). A process
  reserves a few consecutive send slots with one UPDATE ... RETURNING that moves
  ``next_slot`` on by 1/rate per slot, so any number of processes together send on
  one evenly spaced schedule and never above the CPS. Reserving only a short
  horizon ahead (about 100 ms) keeps processes fair and wastes little when work
  dries up.
* The task that sends waits for the exact slot where its request's first byte is
  written (``dialer.transport.first_byte_between``), so nothing else the event loop
  does can come between the slot and the request; a request held up past the slot's
  deadline on its way to the socket is not sent (the slot is ``missed``).
* A local gate per account caps this process's own rate: each turn is at least
  1/rate after the previous one. It never binds in normal running (its rate sits
  above the schedule's), but after a 429 the rate is cut multiplicatively and
  recovers additively (AIMD). The gate keeps its place when the rate changes; a
  limiter rebuilt on every change would start empty and let the next send through
  at once, so a storm of 429s answered quickly would never slow the sends down.

Pacing at ``cps / (1 + margin(cps))`` is what guarantees no one-second window ever
holds more than ``cps`` calls, whichever processes send them: cps+1 consecutive slots
span (1 + margin) seconds of the database's clock, so it is enough that no send goes
before its slot and none more than ``send_tolerance(cps)`` < margin after it. Each
process only knows the database's clock to within the round trip of the sample it
maps it with (``ClockMapping``), so it places a slot at the *latest* local moment the
slot can be (never early, whatever the error) and sends for it only until
``send_tolerance`` less that error after it: a wide sample (a loaded machine, a slow
reply) narrows what a late wake-up may cost, down to skipping the slot, and never
makes a send early or late. What the margin keeps beyond ``send_tolerance`` (at
least ``ARRIVAL_SLACK``; 2.5 ms from 2 CPS up) is for the requests' way to the server,
a process descheduled between the check and the write included: with 5 ms tolerance and
1 ms left, one window of a 10 CPS bench run held 11 (bench/pacing.py, 2 cores
shared with the simulator and Postgres). The margin costs rate,
and at low rates it shows in every gap (at 1 CPS each gap *is* the window), so it is at
most GAP_SLACK per gap and at most MAX_MARGIN of the rate.

``Unpaced`` is the null pacer: every turn at once, for the ceiling benchmark only
(``Daemon(pacing=False)``), so that the dispatcher has one code path.
"""

from __future__ import annotations

import asyncio
import collections
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import structlog

log = structlog.get_logger(__name__)

GAP_SLACK = 0.0035  # seconds added to each gap at most (goal: gaps within 5 ms of 1/r)
MAX_MARGIN = 0.006  # of the rate at most (goal: rate within 1 %, skipped slots included)
SEND_TOLERANCE = 0.0035  # seconds after its slot a send may go at most
ARRIVAL_SLACK = 0.001  # seconds of the margin kept at least for the way to the server
DRIFT = 15e-6  # how fast two clocks may drift apart, s/s (RFC 5905's PHI, as NTP assumes)
HORIZON = 0.1  # seconds of slots reserved at once
LEAD = 0.02  # how long before its slot a send is handed to its task
MIN_FACTOR = 0.05
RECOVERY_STEP = 0.1  # of the full rate, per second without a 429


def margin(cps: float) -> float:
    """Seconds of slack per one-second window; see the module's docstring."""
    return min(MAX_MARGIN, GAP_SLACK * max(cps, 1.0))


def send_tolerance(cps: float) -> float:
    """How late after its slot (on the database's clock) a send may go, at most: what
    a late wake-up and the clock mapping's error may cost together."""
    return min(SEND_TOLERANCE, margin(cps) - ARRIVAL_SLACK)


def slot_spacing(cps: float) -> float:
    """Seconds between two consecutive sends of one account."""
    return (1 + margin(cps)) / cps


def batch_size(cps: float) -> int:
    return max(1, math.ceil(cps * HORIZON))


def backed_off(factor: float) -> float:
    """Multiplicative decrease after a 429."""
    return max(MIN_FACTOR, factor / 2)


def recovered(factor: float, quiet_seconds: float) -> float:
    """Additive increase for each quiet second since the last 429."""
    return min(1.0, factor + RECOVERY_STEP * quiet_seconds)


@dataclass(frozen=True, slots=True)
class Slot:
    """One send slot of the shared schedule, on this process's monotonic clock."""

    at: float
    """The latest moment the slot can be: a send is never before it."""
    deadline: float
    """The latest moment a send for it keeps every window within the CPS; before ``at``
    when the clock mapping is too uncertain for the slot to be used at all."""


class ClockMapping:
    """Maps the database clock onto this process's monotonic clock, with its error.

    Each reservation is a sample: the database read its clock somewhere between our
    send and our receive, so each sample bounds the local moment of a database time to
    an interval as wide as its round trip, widened by what the two clocks may have
    drifted apart since (NTP's dispersion). The moment lies in every sample's interval,
    so in their intersection: a busy event loop that reads a reply late widens only
    that sample, which costs nothing beside a quicker one. Recent samples only, so a
    drift beyond DRIFT, or a step of the database's clock, is forgotten in time; samples
    that disagree (a step) leave only the newest.
    """

    def __init__(self, window: int = 64) -> None:
        self._samples: collections.deque[tuple[float, float, float]] = collections.deque(
            maxlen=window)

    def add(self, sent: float, received: float, db_now: float) -> None:
        self._samples.append((sent, received, db_now))

    def to_local(self, db_time: float) -> tuple[float, float]:
        """(the latest local moment ``db_time`` can be, how much earlier it may be)."""
        earliest, latest = -math.inf, math.inf
        for sent, received, db_now in self._samples:
            drift = abs(db_time - db_now) * DRIFT
            earliest = max(earliest, db_time - db_now + sent - drift)
            latest = min(latest, db_time - db_now + received + drift)
        if earliest > latest:
            log.warning("database_clock_stepped", samples=len(self._samples))
            newest = self._samples[-1]
            self._samples.clear()
            self._samples.append(newest)
            return self.to_local(db_time)
        return latest, latest - earliest


@dataclass(frozen=True, slots=True)
class Reservation:
    """Slots as the database gave them, with the clock sample they carry: the database
    read its clock (``db_now``; it and ``first_slot`` are its epoch seconds) between
    ``sent`` and ``received`` on this process's monotonic clock. Those are taken around
    the statement alone: a wait for a pool's connection would only widen the sample."""

    first_slot: float
    db_now: float
    sent: float
    received: float


# (account_sid, count, spacing_seconds) -> the reservation
ReserveSlots = Callable[[str, int, float], Awaitable[Reservation]]


class Pacer(Protocol):
    """What the dispatcher asks of pacing: the next slot, and word of a slot it missed."""

    @property
    def current_rate(self) -> float: ...

    skipped_slots: int

    def retune(self, cps: float) -> None: ...

    def on_rate_limited(self) -> None: ...

    async def next_slot(self) -> Slot: ...

    def missed(self, slot: Slot) -> None:
        """The send for ``slot`` could not start by its deadline (``LateSend``)."""

    async def aclose(self) -> None: ...


class Unpaced:
    """The null pacer: no schedule, no waiting (see the module docstring)."""

    current_rate = math.inf
    skipped_slots = 0

    def retune(self, cps: float) -> None:
        pass

    def on_rate_limited(self) -> None:
        pass

    async def next_slot(self) -> Slot:
        return Slot(time.monotonic(), math.inf)

    def missed(self, slot: Slot) -> None:
        pass

    async def aclose(self) -> None:
        pass


class AccountPacer:
    """Hands out send slots for one account: ``await pacer.next_slot()``, then the request
    goes between the slot's two moments (``dialer.transport.first_byte_between``)."""

    def __init__(
        self, *, account_sid: str, cps: float, reserve: ReserveSlots,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.account_sid = account_sid
        self.cps = cps
        self._reserve = reserve
        self._clock = clock
        self._slots: collections.deque[Slot] = collections.deque()
        self._clocks = ClockMapping()
        self._refill: asyncio.Task[None] | None = None
        self._factor = 1.0
        self._last_backoff = 0.0
        self._next_turn = 0.0  # the gate: earliest start of this process's next turn
        self.skipped_slots = 0

    @property
    def current_rate(self) -> float:
        return self.cps * self._factor

    def retune(self, cps: float) -> None:
        """The account's CPS changed (``dialer account edit``): slots reserved from now
        on are spaced for it; those already reserved are spent as they were."""
        if cps != self.cps:
            log.info("pacing_retuned", account=self.account_sid, cps=cps, was=self.cps)
            self.cps = cps

    def on_rate_limited(self) -> None:
        self._factor = backed_off(self._factor)
        self._last_backoff = self._clock()
        log.warning("pacing_backoff", account=self.account_sid, rate=self.current_rate)

    def _maybe_recover(self) -> None:
        if self._factor >= 1.0:
            return
        factor = recovered(self._factor, self._clock() - self._last_backoff)
        if factor != self._factor:
            self._factor = factor
            self._last_backoff = self._clock()

    async def _take_slots(self) -> None:
        count, spacing = batch_size(self.cps), slot_spacing(self.cps)
        tolerance = send_tolerance(self.cps)
        got = await self._reserve(self.account_sid, count, spacing)
        self._clocks.add(got.sent, got.received, got.db_now)
        for i in range(count):
            at, error = self._clocks.to_local(got.first_slot + i * spacing)
            self._slots.append(Slot(at, at + tolerance - error))

    def _refill_ahead(self) -> None:
        """Reserve the next slots before these run out, so the schedule has no gaps."""
        if self._refill is not None and not self._refill.done():
            return
        if self._slots and self._slots[-1].at - self._clock() > HORIZON / 2:
            return
        self._refill = asyncio.create_task(self._take_slots())

    async def next_slot(self) -> Slot:
        """Reserve this process's next send slot and return shortly before it, so the
        caller can hand it to the task that will send."""
        started = self._clock()
        self._maybe_recover()
        # Take the gate's turn before sleeping: sends that missed their slot ask again
        # concurrently, and each must get a turn of its own.
        turn = max(started, self._next_turn)
        self._next_turn = turn + 1 / (self.current_rate * (1 + 4 * margin(self.cps)))
        if turn > started:
            await asyncio.sleep(turn - started)
        while True:
            if not self._slots:
                if self._refill is not None and not self._refill.done():
                    await self._refill
                else:
                    await self._take_slots()
                continue
            slot = self._slots.popleft()
            if max(self._clock(), slot.at) > slot.deadline:  # too late, or never usable
                self.skipped_slots += 1
                continue
            self._refill_ahead()
            lead = slot.at - LEAD - self._clock()
            if lead > 0:
                await asyncio.sleep(lead)
            return slot

    def missed(self, slot: Slot) -> None:
        self.skipped_slots += 1

    async def aclose(self) -> None:
        if self._refill is not None:
            self._refill.cancel()
            await asyncio.gather(self._refill, return_exceptions=True)
