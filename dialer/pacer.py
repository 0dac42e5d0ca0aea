"""Pacing of call creations: never more than the account's CPS, evenly spread.

Two layers, each doing one thing:

* The account's *schedule* lives in Postgres (``accounts.next_slot``). A process
  reserves a few consecutive send slots with one UPDATE ... RETURNING that moves
  ``next_slot`` on by 1/rate per slot, so any number of processes together send on
  one evenly spaced schedule and never above the CPS. Reserving only a short
  horizon ahead (about 100 ms) keeps processes fair and wastes little when work
  dries up.
* A local ``aiolimiter`` bucket per account caps this process's own rate. It never
  binds in normal running (its rate sits above the schedule's), but after a 429 the
  rate is cut multiplicatively and recovers additively (AIMD).

Pacing at ``cps / (1 + MARGIN)`` with a slot that is skipped when the loop wakes
more than ``LATE_TOLERANCE`` after it is what guarantees no one-second window ever
holds more than ``cps`` calls: cps+1 consecutive slots span (1 + MARGIN) seconds,
and no send strays more than LATE_TOLERANCE < MARGIN seconds from its slot.
"""

from __future__ import annotations

import asyncio
import collections
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog
from aiolimiter import AsyncLimiter

log = structlog.get_logger(__name__)

MARGIN = 0.007
LATE_TOLERANCE = 0.002
HORIZON = 0.1  # seconds of slots reserved at once
MIN_FACTOR = 0.05
RECOVERY_STEP = 0.1  # of the full rate, per second without a 429


def slot_spacing(cps: float) -> float:
    """Seconds between two consecutive sends of one account."""
    return (1 + MARGIN) / cps


def batch_size(cps: float) -> int:
    return max(1, math.ceil(cps * HORIZON))


def backed_off(factor: float) -> float:
    """Multiplicative decrease after a 429."""
    return max(MIN_FACTOR, factor / 2)


def recovered(factor: float, quiet_seconds: float) -> float:
    """Additive increase for each quiet second since the last 429."""
    return min(1.0, factor + RECOVERY_STEP * quiet_seconds)


@dataclass(frozen=True, slots=True)
class Reservation:
    """Slots as returned by the database: first slot relative to the database clock."""

    first_slot_in: float  # seconds from the database's now to the first slot
    count: int
    spacing: float


# (account_sid, count, spacing_seconds) -> Reservation
ReserveSlots = Callable[[str, int, float], Awaitable[Reservation]]


class AccountPacer:
    """Hands out send turns for one account: ``await pacer.wait_turn()`` before a POST."""

    def __init__(
        self, *, account_sid: str, cps: float, reserve: ReserveSlots,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.account_sid = account_sid
        self.cps = cps
        self._reserve = reserve
        self._clock = clock
        self._slots: collections.deque[float] = collections.deque()
        self._refill: asyncio.Task[None] | None = None
        self._factor = 1.0
        self._last_backoff = 0.0
        self._limiter = self._make_limiter()
        self.skipped_slots = 0
        self.wait_seconds = 0.0

    @property
    def current_rate(self) -> float:
        return self.cps * self._factor

    def _make_limiter(self) -> AsyncLimiter:
        # Capacity of one call plus the tolerance: a smooth bucket, never a burst.
        rate = self.cps * self._factor * (1 + 4 * MARGIN)
        capacity = 1 + LATE_TOLERANCE * rate
        return AsyncLimiter(capacity, capacity / rate)

    def on_rate_limited(self) -> None:
        self._factor = backed_off(self._factor)
        self._last_backoff = self._clock()
        self._limiter = self._make_limiter()
        log.warning("pacing_backoff", account=self.account_sid, rate=self.current_rate)

    def _maybe_recover(self) -> None:
        if self._factor >= 1.0:
            return
        factor = recovered(self._factor, self._clock() - self._last_backoff)
        if factor != self._factor:
            self._factor = factor
            self._last_backoff = self._clock()
            self._limiter = self._make_limiter()

    async def _take_slots(self) -> None:
        started = self._clock()
        reservation = await self._reserve(
            self.account_sid, batch_size(self.cps), slot_spacing(self.cps)
        )
        # The database's "now" is taken about halfway through the round trip.
        db_now = (started + self._clock()) / 2
        first = db_now + reservation.first_slot_in
        self._slots.extend(first + i * reservation.spacing for i in range(reservation.count))

    def _refill_ahead(self) -> None:
        """Reserve the next slots before these run out, so the schedule has no gaps."""
        if self._refill is not None and not self._refill.done():
            return
        if self._slots and self._slots[-1] - self._clock() > HORIZON / 2:
            return
        self._refill = asyncio.create_task(self._take_slots())

    async def wait_turn(self) -> None:
        started = self._clock()
        self._maybe_recover()
        await self._limiter.acquire()
        while True:
            if not self._slots:
                if self._refill is not None and not self._refill.done():
                    await self._refill
                else:
                    await self._take_slots()
                continue
            slot = self._slots.popleft()
            now = self._clock()
            if now > slot + LATE_TOLERANCE:
                self.skipped_slots += 1
                continue
            self._refill_ahead()
            if slot > now:
                await asyncio.sleep(slot - now)
            if self._clock() > slot + LATE_TOLERANCE:
                self.skipped_slots += 1
                continue
            self.wait_seconds += self._clock() - started
            return

    async def aclose(self) -> None:
        if self._refill is not None:
            self._refill.cancel()
            await asyncio.gather(self._refill, return_exceptions=True)
