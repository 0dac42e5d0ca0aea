"""Batches the recording of Create Call answers: flush on size or every 20 ms.

One per account runtime; ``run`` is the flusher (a supervised task), which writes a
last batch when told to stop. Losing the buffer in a crash is safe: the attempts stay
``requested``, become ``unknown`` when the process is found dead, and are adopted by
their callbacks (which carry the attempt id) or by listing calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt

import asyncpg
import structlog

from dialer import metrics, repository
from dialer.repository import DATABASE_ERRORS
from dialer.twilio import CallInfo

log = structlog.get_logger(__name__)


class LiveBuffer:
    def __init__(self, pool: asyncpg.Pool, *, max_items: int = 200, interval: float = 0.02):
        self._pool = pool
        self._max_items = max_items
        self._interval = interval
        self._items: list[tuple[int, str, int | None, dt.datetime]] = []
        self._unwritten: set[int] = set()  # buffered or being written
        self._full = asyncio.Event()

    @property
    def unwritten(self) -> frozenset[int]:
        """Attempts whose call exists but whose row still says ``requested``."""
        return frozenset(self._unwritten)

    def add(self, attempt_id: int, info: CallInfo, sent_at: dt.datetime) -> None:
        self._items.append((attempt_id, info.sid, info.queue_time_ms, sent_at))
        self._unwritten.add(attempt_id)
        if len(self._items) >= self._max_items:
            self._full.set()

    async def flush(self) -> None:
        """Write what is buffered; on a database error keep it for the next try."""
        items, self._items = self._items, []
        self._full.clear()
        if not items:
            return
        ids, sids, queue_times, sent = (list(column) for column in zip(*items, strict=True))
        try:
            await repository.mark_live(self._pool, ids, sids, queue_times, sent)
        except DATABASE_ERRORS:
            self._items[:0] = items
            raise
        self._unwritten.difference_update(ids)

    async def run(self, stop: asyncio.Event) -> None:
        """Flush until ``stop`` is set, then once more for what came meanwhile."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._full.wait(), self._interval)
            try:
                await self.flush()
            except DATABASE_ERRORS as exc:
                metrics.DATABASE_ERRORS.labels("answers").inc()
                log.warning("live_flush_failed", pending=len(self._items), error=repr(exc))
                await asyncio.sleep(1)
        try:
            await self.flush()
        except DATABASE_ERRORS as exc:
            log.warning("answers_not_recorded", count=len(self._unwritten), error=repr(exc),
                        action="reconciled as a dead worker's")
