"""Ceiling of one daemon process: sustained call creations per second, pacing off.

    .venv/bin/python bench/ceiling.py [--contacts 20000] [--drop-callbacks] [--cap CAPS]
                                      [--profile FILE] [--max-in-flight N] [--quick]
                                      [--json FILE]

One campaign of ``--contacts`` numbers, each answered by a human in a few milliseconds
(time scale 0.001); the real daemon in this process with ``Daemon(pacing=False)``, so
the only limits are its own work, Postgres and the simulator (a separate process with
an unreachable CPS). Creates per second are taken from the simulator's arrival times
over the steady middle of the run (first and last 10 % of the creates dropped);
callbacks recorded per second from ``call_events.received_at`` within that window. The
CPU time each process spent is read from /proc, so a figure below the goal says who
was busy. ``--cap 3/24h`` gives the campaign a cap (every claim then also counts the
recent calls of its numbers; the number lock is taken either way): the claims' count
and mean duration, read from the daemon's own claim histogram, show what the cap costs
per claim when compared with a run without it. ``--profile FILE`` samples the daemon
with py-spy (collapsed stacks in FILE) and prints where its time went;
``--max-in-flight`` is for trying remedies. The daemon runs on the event loop `dialer
run` uses. Goal (DESIGN.md): >= 1,000 creates/s.
"""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from _common import (
    parser,
    print_table,
    process_cpu_seconds,
    quiet_logs,
    run_on_daemon_loop,
    steady_part,
    steady_rate,
    write_json,
)
from prometheus_client import REGISTRY

from dialer import db
from dialer.caps import parse_caps
from dialer.testing import (
    Cluster,
    daemon_settings,
    humans,
    make_campaign,
    running_daemon,
    simulator,
    throwaway_cluster,
    wait_until,
)

GOAL_CREATES = 1000.0


@dataclass(frozen=True, slots=True)
class Ceiling:
    contacts: int
    creates: int
    numbers_called_twice: int
    run_seconds: float
    """First create to last create."""
    creates_per_s: float
    """Over the whole run."""
    steady_creates_per_s: float
    callbacks_recorded: int
    steady_callbacks_per_s: float
    """Callbacks recorded within the steady window of the creates."""
    contacts_done: int
    """Decided by the time the daemon stopped (it does not wait for every outcome)."""
    daemon_cpu_s: float
    simulator_cpu_s: float
    postgres_cpu_s: float
    daemon_cpu_ms_per_create: float
    cap: str
    """The campaign's caps ("" for none)."""
    claims: int
    """Claim transactions that took contacts or found none, over the whole run."""
    claim_ms: float
    """Their mean duration (the daemon's dialer_claim_seconds histogram)."""

    @property
    def goal_met(self) -> bool:
        return self.steady_creates_per_s >= GOAL_CREATES


class Profiler:
    """py-spy sampling this process (no pauses: --nonblocking), raw collapsed stacks."""

    def __init__(self, output: Path) -> None:
        self.output = output
        self._process = subprocess.Popen(
            [str(Path(sys.executable).with_name("py-spy")), "record", "--pid",
             str(os.getpid()), "--rate", "200", "--format", "raw", "--nonblocking",
             "--output", str(output)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        time.sleep(1.0)  # attach before the work starts
        if self._process.poll() is not None:
            raise RuntimeError(f"py-spy did not start: {self._process.stderr.read()}")  # type: ignore[union-attr]

    def stop(self) -> None:
        self._process.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        self._process.wait(60)


def summarise_profile(path: Path, top: int = 20) -> list[tuple[str, float, float]]:
    """(function, self %, inclusive %) of the busiest functions in a py-spy raw file
    (``frame;frame;... count`` per line, idle samples excluded by py-spy)."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_function(frame) for frame in stack.split(";")]
        total += count
        own[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count
    if not total:
        return []
    names = [name for name, _ in own.most_common(top)]
    names += [n for n, _ in inclusive.most_common(top * 3) if n not in names and "dialer" in n]
    return [(n, own[n] * 100 / total, inclusive[n] * 100 / total) for n in names[: top * 2]]


def _function(frame: str) -> str:
    """``name (path/file.py:123)`` -> ``name (path/file.py)``: lines merged per function."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit(':', 1)[0]})" if where else name


def _claims_so_far() -> tuple[float, float]:
    """(claims, seconds) recorded by this process's claim histogram, summed over its
    accounts (the histogram is labelled per account)."""
    totals = {"dialer_claim_seconds_count": 0.0, "dialer_claim_seconds_sum": 0.0}
    for metric in REGISTRY.collect():
        for sample in metric.samples:
            if sample.name in totals:
                totals[sample.name] += sample.value
    return totals["dialer_claim_seconds_count"], totals["dialer_claim_seconds_sum"]


async def bench(pg: Cluster, contacts: int, drop_callbacks: bool, cap: str,
                profile: Path | None, max_in_flight: int | None) -> Ceiling:
    dsn = await pg.new_database("ceiling")
    async with db.open_pool(dsn) as pool:
        campaign_id = await make_campaign(pool, "ceiling", humans(contacts), cps=1000,
                                          caps=parse_caps(cap))

        async def count(sql: str) -> int:
            return int(await pool.fetchval(sql, campaign_id))

        async def all_sent() -> bool:
            return not await count("SELECT count(*) FROM contacts WHERE campaign_id = $1 "
                                   "AND state IN ('pending', 'dialing')")

        extra = ["--drop-callbacks"] if drop_callbacks else []
        with simulator(cps=100_000, time_scale=0.001, loop="uvloop", extra=extra) as sim:
            tuning: dict[str, Any] = {}
            if max_in_flight is not None:
                tuning["twilio_max_in_flight"] = max_in_flight
            settings = daemon_settings(sim.base_url, cps=1000, **tuning)
            profiler = Profiler(profile) if profile else None
            cpu = _cpu_now(pg, sim.process.pid)
            claims_before = _claims_so_far()
            try:
                async with running_daemon(settings, dsn, pacing=False):
                    await wait_until(all_sent, timeout=contacts / 20 + 60, interval=0.5,
                                     what="every contact called")
                    used = [b - a for a, b in zip(cpu, _cpu_now(pg, sim.process.pid),
                                                  strict=True)]
                    claims, claim_seconds = (b - a for a, b in zip(
                        claims_before, _claims_so_far(), strict=True))
                    if profiler is not None:
                        profiler.stop()  # before the shutdown, which is not the hot path
                        profiler = None
            finally:
                if profiler is not None:
                    profiler.stop()
            records = await asyncio.to_thread(sim.create_records)
        received = [r[0] for r in await pool.fetch(
            "SELECT extract(epoch FROM received_at)::float8 FROM call_events")]
        done = await count("SELECT count(*) FROM contacts WHERE campaign_id = $1 "
                           "AND state = 'done'")
    times = sorted(r["t"] for r in records)
    numbers = [r["params"]["To"][0] for r in records]
    span = times[-1] - times[0]
    steady, _, _ = steady_rate(times)
    # Callbacks recorded in the same steady window: the trace's monotonic times are
    # turned into wall-clock time, the clock of received_at (one machine, one clock).
    middle = steady_part(times)
    to_wall = time.time() - time.monotonic()
    start, end = middle[0] + to_wall, middle[-1] + to_wall
    in_window = sum(start <= t <= end for t in received)
    return Ceiling(
        contacts=contacts, creates=len(times),
        numbers_called_twice=len(numbers) - len(set(numbers)),
        run_seconds=span, creates_per_s=(len(times) - 1) / span, steady_creates_per_s=steady,
        callbacks_recorded=len(received), steady_callbacks_per_s=in_window / (end - start),
        contacts_done=done, daemon_cpu_s=used[0], simulator_cpu_s=used[1],
        postgres_cpu_s=used[2], daemon_cpu_ms_per_create=used[0] * 1000 / max(1, len(times)),
        cap=cap, claims=int(claims), claim_ms=claim_seconds * 1000 / max(1.0, claims),
    )


def _cpu_now(pg: Cluster, simulator_pid: int) -> tuple[float, float, float]:
    """CPU seconds so far of this process (the daemon), the simulator, and Postgres."""
    return (process_cpu_seconds(os.getpid()), process_cpu_seconds(simulator_pid),
            process_cpu_seconds(pg.pid, children=True))


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--contacts", type=int, default=None,
                   help="contacts to call (default 20,000; 3,000 with --quick)")
    p.add_argument("--drop-callbacks", action="store_true",
                   help="the simulator sends no callbacks: creates alone")
    p.add_argument("--cap", default="", metavar="CAPS",
                   help="caps of the campaign, e.g. 3/24h (default: none)")
    p.add_argument("--max-in-flight", type=int, default=None,
                   help="DIALER_TWILIO_MAX_IN_FLIGHT for the daemon (default: its own)")
    p.add_argument("--profile", type=Path, default=None, metavar="FILE",
                   help="sample the daemon with py-spy into FILE and print a summary")
    args = p.parse_args()
    contacts = args.contacts or (3000 if args.quick else 20_000)
    quiet_logs()
    with throwaway_cluster(durable=not args.no_fsync) as pg:
        run = bench(pg, contacts, args.drop_callbacks, args.cap, args.profile,
                    args.max_in_flight)
        r = run_on_daemon_loop(run)
    caps = f"cap {r.cap}" if r.cap else "no cap"
    print_table(
        f"Daemon ceiling, pacing off ({'no callbacks' if args.drop_callbacks else 'with callbacks'}"
        f", {caps}; goal >= {GOAL_CREATES:,.0f} creates/s)",
        ["contacts", "creates", "called twice", "run s", "creates/s", "steady creates/s",
         "callbacks", "steady callbacks/s", "done", "goal met"],
        [[r.contacts, r.creates, r.numbers_called_twice, r.run_seconds, r.creates_per_s,
          r.steady_creates_per_s, r.callbacks_recorded, r.steady_callbacks_per_s,
          r.contacts_done, r.goal_met]],
    )
    print_table(
        "CPU seconds while the calls were being created (2 cores shared by all three)",
        ["daemon", "simulator", "postgres", "daemon ms/create"],
        [[r.daemon_cpu_s, r.simulator_cpu_s, r.postgres_cpu_s, r.daemon_cpu_ms_per_create]],
    )
    print_table(
        f"Claims ({caps}; the number lock is taken with or without one)",
        ["claims", "mean claim ms", "contacts per claim"],
        [[r.claims, r.claim_ms, r.creates / max(1, r.claims)]],
    )
    if args.profile is not None:
        print_table(f"Where the daemon's time went (py-spy, {args.profile})",
                    ["function", "self %", "inclusive %"], summarise_profile(args.profile))
    write_json(args.json, "ceiling", args,
               {**asdict(r), "goal_met": r.goal_met,
                "callbacks": not args.drop_callbacks})


if __name__ == "__main__":
    main()
