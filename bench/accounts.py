"""Many accounts in one daemon: 1, 4 and 16 accounts, each at 50 CPS, against a
simulator whose API answers after 150 ms.

    .venv/bin/python bench/accounts.py [--accounts 1,4,16] [--cps 50] [--latency 0.15]
        [--seconds 30] [--quick] [--json FILE]

For each count: a fresh database, that many accounts (rows with their CPS, tokens in a
credentials file), one campaign each with enough contacts for ``--seconds``, one
simulator process answering as every account (its answers held ``--latency``
seconds), and the real daemon in this process. Per account it prints the achieved
rate and its worst one-second window, from the creates' arrival times in the
simulator; per run, the daemon's CPU per call (this process's CPU time: the daemon is
all that runs in it meanwhile). Then one account's ceiling at the same latency (pacing
off, the null pacer: what its in-flight limit lets through), and the highest total
rate the daemon held with every account within 1 % of its CPS, as a ratio to that
ceiling.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from _common import Pacing, pacing_figures, parser, print_table, quiet_logs, run_on_daemon_loop
from _common import write_json as write_figures

from dialer import db, repository
from dialer.testing import (
    Cluster,
    account_sid,
    account_token,
    daemon_settings,
    humans,
    make_campaign,
    running_daemon,
    simulator,
    throwaway_cluster,
    wait_until,
    write_credentials,
)

GOAL_ERROR_PCT = 1.0


@dataclass(frozen=True, slots=True)
class Run:
    accounts: int
    per_account: list[Pacing]
    cpu_ms_per_call: float
    skipped_slots: int

    @property
    def total_rate(self) -> float:
        return sum(p.achieved for p in self.per_account)

    @property
    def all_within(self) -> bool:
        return all(abs(p.error_pct) < GOAL_ERROR_PCT and p.windows_over == 0
                   for p in self.per_account)

    def to_json(self) -> dict[str, Any]:
        return {"accounts": self.accounts, "total_rate": self.total_rate,
                "all_within_1pct": self.all_within, "cpu_ms_per_call": self.cpu_ms_per_call,
                "skipped_slots": self.skipped_slots,
                "per_account": [asdict(p) for p in self.per_account]}


async def _setup(dsn: str, sids: list[str], cps: float, contacts: int) -> None:
    async with db.open_pool(dsn) as pool:
        for index, sid in enumerate(sids):
            assert await repository.insert_account(
                pool, sid, label=None, cps=cps, max_concurrent_calls=None, max_in_flight=None)
            await make_campaign(pool, f"client{index}", humans(contacts, start=index * contacts),
                                account_sid=sid)


async def run_accounts(pg: Cluster, count: int, cps: float, latency: float, seconds: float,
                       folder: Path, *, pacing: bool = True) -> tuple[Run, float]:
    """One run; also returns the creates per second of every account together."""
    dsn = await pg.new_database(f"accounts_{count}_{int(pacing)}_{time.monotonic_ns()}")
    sids = [account_sid(i) for i in range(count)]
    tokens = write_credentials(folder / f"accounts-{count}", {s: account_token(s) for s in sids})
    needed = math.ceil(cps * seconds) + 1
    await _setup(dsn, sids, cps, needed + math.ceil(cps) + 10 if pacing else 200_000)
    with simulator(cps=1000, time_scale=0.001, accounts_file=tokens,
                   extra=["--response-delay", str(latency)]) as sim:
        settings = daemon_settings(sim.base_url, cps=1, account_sid=None, auth_token=None,
                                   credentials_file=tokens)
        async with running_daemon(settings, dsn, pacing=pacing) as daemon:
            runtimes = list(daemon.accounts or [])
            cpu, sent_before = time.process_time(), sum(rt.dispatcher.sent for rt in runtimes)
            if pacing:
                # A daemon that cannot keep up is a figure (its accounts' rates fall
                # short), not a failure of the bench.
                async def enough() -> bool:
                    return all(rt.dispatcher.sent >= needed for rt in runtimes)

                with contextlib.suppress(AssertionError):  # wait_until's timeout
                    await wait_until(enough, timeout=seconds * 1.5 + 60, interval=0.2,
                                     what=f"{needed} calls on each of {count} accounts")
            else:
                await asyncio.sleep(seconds)
            sent = sum(rt.dispatcher.sent for rt in runtimes) - sent_before
            cpu_ms = (time.process_time() - cpu) * 1000 / max(sent, 1)
            skipped = sum(rt.pacer.skipped_slots for rt in runtimes)
        records = await asyncio.to_thread(sim.create_records)
    figures = []
    for sid in sids:
        times = sorted(r["t"] for r in records if f"/Accounts/{sid}/" in r["path"])
        figures.append(pacing_figures([t for t in times if t <= times[0] + seconds], cps))
    everything = sorted(r["t"] for r in records)
    overall = (len(everything) - 1) / (everything[-1] - everything[0])
    return Run(count, figures, cpu_ms, skipped), overall


async def bench(pg: Cluster, counts: list[int], cps: float, latency: float,
                seconds: float) -> tuple[list[Run], float]:
    runs = []
    with tempfile.TemporaryDirectory(prefix="dialer-bench-accounts-") as folder:
        for count in counts:
            print(f"{count} account(s) at {cps:g} CPS each for {seconds:g} s ...", flush=True)
            runs.append((await run_accounts(pg, count, cps, latency, seconds, Path(folder)))[0])
        print("one account, pacing off (its ceiling) ...", flush=True)
        _, ceiling = await run_accounts(pg, 1, cps, latency, min(seconds, 10), Path(folder),
                                        pacing=False)
    return runs, ceiling


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--accounts", default="1,4,16", help="comma-separated account counts")
    p.add_argument("--cps", type=float, default=50.0, help="each account's CPS")
    p.add_argument("--latency", type=float, default=0.15,
                   help="seconds the simulator holds each create's answer")
    p.add_argument("--seconds", type=float, default=None,
                   help="measured seconds per run (default 30; 5 with --quick)")
    args = p.parse_args()
    seconds = args.seconds or (5.0 if args.quick else 30.0)
    counts = [int(c) for c in args.accounts.split(",")]
    quiet_logs()
    with throwaway_cluster(durable=not args.no_fsync) as pg:
        runs, ceiling = run_on_daemon_loop(bench(pg, counts, args.cps, args.latency, seconds))
    print_table(
        f"Accounts at {args.cps:g} CPS each, API latency {args.latency * 1000:g} ms "
        f"({seconds:g} s per run; goal: every account within {GOAL_ERROR_PCT:g} %, no "
        "window > CPS)",
        ["accounts", "account", "achieved/s", "error %", "max in 1 s", "windows > CPS"],
        [[run.accounts, index, p.achieved, p.error_pct, p.max_in_window, p.windows_over]
         for run in runs for index, p in enumerate(run.per_account)],
    )
    print_table(
        "Per run",
        ["accounts", "total achieved/s", "all within 1 %", "daemon CPU ms/call",
         "skipped slots"],
        [[r.accounts, r.total_rate, r.all_within, r.cpu_ms_per_call, r.skipped_slots]
         for r in runs],
    )
    held = max((r.total_rate for r in runs if r.all_within), default=0.0)
    print(f"one account's ceiling at this latency (pacing off): {ceiling:.0f} creates/s; "
          f"highest total rate held with every account within 1 %: {held:.0f}/s = "
          f"{held / ceiling:.2f} x one account's ceiling")
    write_figures(args.json, "accounts", args, {
        "seconds": seconds, "runs": [r.to_json() for r in runs],
        "one_account_ceiling": ceiling, "highest_total_held": held,
        "ratio_to_one_account_ceiling": held / ceiling})


if __name__ == "__main__":
    main()
