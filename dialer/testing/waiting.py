"""Waiting for a condition, finding a free port, and counting events in windows."""

from __future__ import annotations

import asyncio
import inspect
import socket
import time
from collections.abc import Awaitable, Callable, Sequence


async def wait_until(
    predicate: Callable[[], bool | Awaitable[bool]], *, timeout: float = 5.0,
    interval: float = 0.1, what: str = "condition",
) -> None:
    """Poll ``predicate`` (plain or async) every ``interval`` s until it is true;
    AssertionError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        answer = predicate()
        if inspect.isawaitable(answer):
            answer = await answer
        if answer:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def window_counts(times: Sequence[float], window: float = 1.0) -> list[tuple[float, int]]:
    """For each event, how many events fall in the half-open window [t, t + window)
    it starts (the busiest window always starts at an event)."""
    ordered = sorted(times)
    counts = []
    end = 0
    for start, t in enumerate(ordered):
        end = max(end, start)
        while end < len(ordered) and ordered[end] - t < window:
            end += 1
        counts.append((t, end - start))
    return counts


def max_in_window(times: Sequence[float], window: float = 1.0) -> int:
    """The most events in any half-open window of ``window`` seconds."""
    return max((n for _, n in window_counts(times, window)), default=0)
