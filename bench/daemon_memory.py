"""Resident memory of a `dialer run` process dialing a 1,000,000-contact campaign.

    .venv/bin/python bench/daemon_memory.py [--contacts 1000000] [--seconds 30] [--cps 200]
                                            [--quick] [--json FILE]

The contacts go straight into a fresh database (INSERT ... SELECT from
generate_series: this measures the daemon, not the importer); every number is
answered by a human in milliseconds (time scale 0.001). A real `dialer run` process
dials at ``--cps`` for ``--seconds`` while its VmRSS is sampled every 100 ms; then it
is stopped with SIGTERM and must exit 0. Goal (DESIGN.md): under 150 MB. The claim
query takes a few contacts at a time, so the campaign's size should not show.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

from _common import (
    parser,
    print_table,
    quiet_logs,
    status_kb,
    write_json,
)

from dialer import db
from dialer.testing import (
    Cluster,
    daemon_env,
    free_port,
    make_campaign,
    simulator,
    stop_process,
    throwaway_cluster,
)

GOAL_MB = 150.0


@dataclass(frozen=True, slots=True)
class Memory:
    contacts: int
    seconds: float
    calls: int
    rss_ready_mb: float
    """Once the process answered its first call (start-up done)."""
    rss_peak_mb: float
    rss_end_mb: float
    exit_code: int

    @property
    def goal_met(self) -> bool:
        return self.rss_peak_mb < GOAL_MB and self.exit_code == 0


async def load(pg: Cluster, contacts: int, cps: float) -> tuple[str, int]:
    dsn = await pg.new_database("memory")
    async with db.open_pool(dsn) as pool:
        campaign_id = await make_campaign(pool, "memory", [], cps=cps, state="paused")
        # Distinct numbers whose last digit (0-2) the scenario answers as a human, in
        # California's 415 and 510, located as an import locates them.
        await pool.execute(
            """INSERT INTO contacts (campaign_id, phone, zones, zone_source, states,
                                     state_sources)
               SELECT $1, '+1' || (415 + i / 700000 * 95)::text
                          || lpad((2000000 + i % 700000 * 10 + i % 3)::text, 7, '0'),
                      '{America/Los_Angeles}', 'number', '{CA}', '{number}'
               FROM generate_series(0, $2 - 1) AS i""", campaign_id, contacts)
        await pool.execute("VACUUM ANALYZE contacts")
    return dsn, campaign_id


async def calls_made(dsn: str, campaign_id: int) -> int:
    async with db.open_pool(dsn) as pool:
        return int(await pool.fetchval(
            "SELECT count(*) FROM call_attempts WHERE campaign_id = $1", campaign_id))


async def start_campaign(dsn: str, campaign_id: int) -> None:
    async with db.open_pool(dsn) as pool:
        await pool.execute("UPDATE campaigns SET state = 'running' WHERE id = $1", campaign_id)


def measure(pg: Cluster, contacts: int, seconds: float, cps: float) -> Memory:
    dsn, campaign_id = asyncio.run(load(pg, contacts, cps))
    with simulator(cps=100_000, time_scale=0.001, loop="uvloop") as sim:
        port = free_port()
        env = daemon_env(dsn, sim.base_url, cps=cps,
                         DIALER_CALLBACK_BIND=f"127.0.0.1:{port}",
                         DIALER_PUBLIC_BASE_URL=f"http://127.0.0.1:{port}")
        process = subprocess.Popen([sys.executable, "-m", "dialer.cli", "run"], env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(2)  # start-up: migrations checked, pool and endpoint up
            asyncio.run(start_campaign(dsn, campaign_id))
            ready = status_kb(process.pid, "VmRSS")
            peak = ready
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline and process.poll() is None:
                peak = max(peak, status_kb(process.pid, "VmRSS"))
                time.sleep(0.1)
            end = status_kb(process.pid, "VmRSS")
        finally:
            code = stop_process(process)
    return Memory(contacts, seconds, asyncio.run(calls_made(dsn, campaign_id)),
                  ready / 1024, max(peak, end) / 1024, end / 1024, code)


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--contacts", type=int, default=1_000_000)
    p.add_argument("--seconds", type=float, default=None,
                   help="seconds of dialing (default 30; 10 with --quick)")
    p.add_argument("--cps", type=float, default=200)
    args = p.parse_args()
    seconds = args.seconds or (10.0 if args.quick else 30.0)
    quiet_logs()
    with throwaway_cluster(durable=not args.no_fsync) as pg:
        result = measure(pg, args.contacts, seconds, args.cps)
    r = result
    print_table(
        f"`dialer run` memory on a {r.contacts:,}-contact campaign at {args.cps:g} CPS "
        f"(goal: RSS < {GOAL_MB:g} MB)",
        ["contacts", "seconds", "calls", "RSS at start MB", "peak RSS MB", "RSS at end MB",
         "exit code", "goal met"],
        [[r.contacts, r.seconds, r.calls, r.rss_ready_mb, r.rss_peak_mb, r.rss_end_mb,
          r.exit_code, r.goal_met]],
    )
    write_json(args.json, "daemon_memory", args, {**asdict(result), "goal_met": r.goal_met})


if __name__ == "__main__":
    main()
