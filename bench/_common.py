"""What the benchmarks share: a throwaway Postgres, campaigns, the pacing figures
computed from the simulator's trace, tables and JSON.

The simulator always runs in its own process (``dialer.testing.simulator``) so that
it never shares the daemon's event loop or CPU time slice: what a benchmark measures
is the daemon, and the arrival times in the simulator's trace are taken by a process
that is not the one being measured.

Every script that imports this module is run as ``.venv/bin/python bench/X.py``; what
the tests and benchmarks share (campaign rows, numbers, the throwaway Postgres, the
in-process daemon, the simulator process) comes from ``dialer.testing``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO, TypeVar

from dialer import logs
from dialer.runtime import event_loop_factory
from dialer.testing import clean_env, max_in_window, window_counts

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")


# ---- the command line ---------------------------------------------------------------


def parser(description: str, *, database: bool = True) -> argparse.ArgumentParser:
    """The options every benchmark script has: --quick, --json, and (with a database)
    --no-fsync."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="a short smoke run")
    p.add_argument("--json", type=Path, default=None, metavar="FILE",
                   help="also write the figures to FILE as JSON (for run_all.py)")
    if database:
        p.add_argument("--no-fsync", action="store_true",
                       help="run Postgres with fsync and synchronous_commit off, as the "
                            "tests do (default: durable settings)")
    return p


def run_on_daemon_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run on the event loop `dialer run` uses (uvloop when installed)."""
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        return runner.run(main)


def quiet_logs() -> None:
    """Warnings only: an in-process daemon logging every call would measure the logger."""
    logs.configure(log_format="json", level="warning")


def machine() -> dict[str, Any]:
    load = os.getloadavg()
    return {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": [round(x, 2) for x in load],
    }


def write_json(path: Path | None, name: str, args: argparse.Namespace, figures: Any) -> None:
    if path is None:
        return
    options = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    payload = {"benchmark": name, "options": options, "machine": machine(),
               "figures": figures}
    path.write_text(json.dumps(payload, indent=2) + "\n")


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]],
                out: TextIO = sys.stdout) -> None:
    """A plain aligned table: numbers right-aligned, everything else left."""
    cells = [[fmt(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h)
              for i, h in enumerate(headers)]
    numeric = [all(isinstance(row[i], (int, float)) or row[i] is None for row in rows)
               for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if n else v.ljust(w)
                         for v, w, n in zip(values, widths, numeric, strict=True)).rstrip()

    print(f"\n{title}", file=out)
    print(line(list(headers)), file=out)
    print(line(["-" * w for w in widths]), file=out)
    for row in cells:
        print(line(row), file=out)
    out.flush()


def fmt(value: Any) -> str:
    """A figure as text: thousands separators, three decimals below 10, "-" for none."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


# ---- numbers and figures ------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def windows_over(times: Sequence[float], limit: float, window: float = 1.0) -> list[float]:
    """The calls that start a half-open window [t, t + window) holding more than
    ``limit`` calls (the busiest window always starts at a call, so none here means no
    window anywhere is over)."""
    return [t for t, n in window_counts(times, window) if n > limit + 1e-9]


@dataclass(frozen=True, slots=True)
class Pacing:
    """How evenly a run of creates kept to a target rate (times from the simulator)."""

    target: float
    calls: int
    seconds: float
    achieved: float
    error_pct: float
    max_in_window: int
    windows_over: int
    first_over_at_s: float | None
    """Seconds from the first call to the first over-full window (None: there is none);
    tells a start-up burst from one in the steady state."""
    gap_p50_dev_ms: float
    gap_p99_dev_ms: float
    gap_max_dev_ms: float
    jitter_p99_ms: float
    """p99 deviation of the gap from the run's own mean gap: the spread without the
    systematic offset of a deliberately slower schedule."""


def pacing_figures(times: Sequence[float], target: float) -> Pacing:
    ordered = sorted(times)
    span = ordered[-1] - ordered[0] if len(ordered) > 1 else math.nan
    achieved = (len(ordered) - 1) / span if len(ordered) > 1 else math.nan
    gaps = [b - a for a, b in itertools.pairwise(ordered)]
    ideal = 1 / target
    deviation = [abs(g - ideal) * 1000 for g in gaps]
    mean_gap = sum(gaps) / len(gaps) if gaps else math.nan
    jitter = [abs(g - mean_gap) * 1000 for g in gaps]
    over = windows_over(ordered, target)
    return Pacing(
        target=target, calls=len(ordered), seconds=span, achieved=achieved,
        error_pct=(achieved - target) / target * 100,
        max_in_window=max_in_window(ordered), windows_over=len(over),
        first_over_at_s=over[0] - ordered[0] if over else None,
        gap_p50_dev_ms=percentile(deviation, 50), gap_p99_dev_ms=percentile(deviation, 99),
        gap_max_dev_ms=max(deviation, default=math.nan),
        jitter_p99_ms=percentile(jitter, 99),
    )


def pacing_row(p: Pacing) -> list[Any]:
    return [p.target, p.calls, p.seconds, p.achieved, p.error_pct, p.max_in_window,
            p.windows_over, p.first_over_at_s, p.gap_p50_dev_ms, p.gap_p99_dev_ms,
            p.gap_max_dev_ms, p.jitter_p99_ms]


PACING_HEADERS = ["CPS", "calls", "span s", "achieved/s", "error %", "max in 1 s",
                  "windows > CPS", "first over at s", "gap dev p50 ms", "gap dev p99 ms",
                  "gap dev max ms", "jitter p99 ms"]


def steady_part(times: Sequence[float], trim: float = 0.1) -> list[float]:
    """The middle of a run: the first and last ``trim`` of the events dropped (start-up
    and the tail are not the sustained rate)."""
    ordered = sorted(times)
    cut = int(len(ordered) * trim)
    return ordered[cut:len(ordered) - cut] if len(ordered) - 2 * cut > 1 else ordered


def steady_rate(times: Sequence[float], trim: float = 0.1) -> tuple[float, int, float]:
    """Events per second over the middle of a run. Returns (rate, events counted, seconds)."""
    middle = steady_part(times, trim)
    if len(middle) < 2:
        return math.nan, len(middle), math.nan
    span = middle[-1] - middle[0]
    return (len(middle) - 1) / span, len(middle), span


def process_cpu_seconds(pid: int, *, children: bool = False) -> float:
    """User + system CPU seconds of a process from /proc; with ``children``, plus its
    live descendants and the children it has reaped (Postgres backends come and go)."""
    tick = os.sysconf("SC_CLK_TCK")
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    total = (utime + stime + (cutime + cstime if children else 0)) / tick
    if children:
        for child in _children(pid):
            total += process_cpu_seconds(child, children=True)
    return total


def status_kb(pid: int, key: str) -> int:
    """A /proc/PID/status figure in kB (VmRSS, VmHWM); 0 once the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found.extend(int(c) for c in f.read().split())
    return found


# ---- the simulator ------------------------------------------------------------------


def bench_env(**extra: str) -> dict[str, str]:
    """The environment for a child process: no DIALER_* of the caller, no env file."""
    env: dict[str, str] = clean_env({"DIALER_ENV_FILE": os.devnull, "DIALER_LOG_LEVEL": "warning",
                                     "DIALER_LOG_FORMAT": "json", **extra})
    return env


def wait_for(predicate: Callable[[], bool], *, timeout: float, what: str,
             interval: float = 0.1) -> None:
    """Blocking poll (for code that has no event loop of its own)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
