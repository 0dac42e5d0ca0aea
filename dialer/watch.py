"""Live progress of a campaign, read from Postgres: where its contacts are, how fast it
calls, how many daemons work on it.

Everything comes from the database (the counters of campaign_summary, a few hundred
rows whatever the campaign's size, and the workers' heartbeats), so one watch sees
the work of every daemon on every host, and any number of watches cost the database
next to nothing. On a terminal the table is redrawn in place; otherwise one line is
printed per interval, for logs and pipes.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg
from rich.console import Console
from rich.live import Live
from rich.table import Table

from dialer import repository

# A campaign in one of these states makes no more progress: the watch ends.
FINISHED = frozenset({"completed", "stopped"})
# The calling rate is measured over this many seconds of samples.
RATE_WINDOW_SECONDS = 5.0


class CampaignGone(LookupError):
    """The campaign does not exist (any more)."""


@dataclass(frozen=True)
class Progress:
    """One look at a campaign."""

    name: str
    state: str
    contacts: int
    done: int
    failed: int
    skipped: int
    pending: int
    retry_wait: int
    in_call: int
    attempts: int
    answer_rate_pct: float | None
    calls_per_second: float
    daemons: int
    elapsed: float

    @classmethod
    def of(cls, summary: Mapping[str, Any], *, calls_per_second: float, daemons: int,
           elapsed: float) -> Progress:
        rate = summary["answer_rate_pct"]
        return cls(
            name=summary["name"], state=summary["state"], contacts=summary["contacts"],
            done=summary["done"], failed=summary["failed"], skipped=summary["skipped"],
            pending=summary["pending"], retry_wait=summary["retry_wait"],
            in_call=summary["dialing"] + summary["in_call"], attempts=summary["attempts"],
            answer_rate_pct=None if rate is None else float(rate),
            calls_per_second=calls_per_second, daemons=daemons, elapsed=elapsed,
        )

    @property
    def finished(self) -> int:
        return self.done + self.failed + self.skipped


class Rate:
    """Calls per second over the last few seconds, from samples of the attempt count."""

    def __init__(self, window: float = RATE_WINDOW_SECONDS) -> None:
        self._window = window
        self._samples: deque[tuple[float, int]] = deque()

    def add(self, at: float, attempts: int) -> float:
        self._samples.append((at, attempts))
        while len(self._samples) > 2 and at - self._samples[1][0] >= self._window:
            self._samples.popleft()
        first_at, first = self._samples[0]
        span = at - first_at
        return (attempts - first) / span if span > 0 else 0.0


def _rate(p: Progress) -> str:
    return "-" if p.answer_rate_pct is None else f"{p.answer_rate_pct:.1f}%"


def progress_line(p: Progress, at: dt.datetime) -> str:
    """One line for logs and pipes."""
    return (
        f"{at.strftime('%Y-%m-%dT%H:%M:%SZ')} {p.name} {p.state}: "
        f"{p.finished}/{p.contacts} finished (done {p.done}, failed {p.failed}, "
        f"skipped {p.skipped}), pending {p.pending}, waiting retry {p.retry_wait}, "
        f"in call {p.in_call}; attempts {p.attempts}, answered {_rate(p)}, "
        f"{p.calls_per_second:.1f} calls/s, daemons {p.daemons}"
    )


def progress_table(p: Progress) -> Table:
    """The table redrawn on a terminal."""
    table = Table(title=f"campaign {p.name} ({p.state}): {p.contacts} contacts, "
                        f"{p.elapsed:.0f} s")
    columns = {
        "dialed": p.attempts, "in call": p.in_call, "waiting retry": p.retry_wait,
        "done": p.done, "failed": p.failed, "skipped": p.skipped, "pending": p.pending,
        "answered": _rate(p), "CPS": f"{p.calls_per_second:.1f}", "daemons": p.daemons,
    }
    for column in columns:
        table.add_column(column, justify="right")
    table.add_row(*(str(value) for value in columns.values()))
    return table


async def look(pool: asyncpg.Pool, name: str, rate: Rate, started: float,
               daemon_seconds: float) -> Progress:
    """The campaign now (CampaignGone when there is no such campaign)."""
    summary = await repository.campaign_summary(pool, name)
    if summary is None:
        raise CampaignGone(name)
    daemons = len(await repository.live_workers(pool, daemon_seconds))
    now = time.monotonic()
    return Progress.of(dict(summary), calls_per_second=rate.add(now, summary["attempts"]),
                       daemons=daemons, elapsed=now - started)


async def follow(pool: asyncpg.Pool, name: str, *, console: Console, interval: float = 1.0,
                 daemon_seconds: float = 30.0, timeout: float | None = None) -> Progress:
    """Show the campaign's progress every ``interval`` seconds until it is completed or
    stopped (returns its last look), or ``timeout`` seconds pass (TimeoutError).
    ``daemon_seconds``: a daemon whose heartbeat is older is not counted."""
    started = time.monotonic()
    rate = Rate()
    live = Live(console=console, auto_refresh=False) if console.is_terminal else None
    with contextlib.ExitStack() as stack:
        if live is not None:
            stack.enter_context(live)
        while True:
            progress = await look(pool, name, rate, started, daemon_seconds)
            if live is not None:
                live.update(progress_table(progress), refresh=True)
            else:
                console.print(progress_line(progress, dt.datetime.now(dt.UTC)),
                              markup=False, highlight=False, soft_wrap=True)
            if progress.state in FINISHED:
                return progress
            if timeout is not None and progress.elapsed > timeout:
                raise TimeoutError(f"campaign {name} did not finish in {timeout:.0f} s")
            await asyncio.sleep(interval)

