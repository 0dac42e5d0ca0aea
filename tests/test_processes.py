"""Real `dialer run` processes: sharing one account's CPS, and stopping on SIGTERM."""

from __future__ import annotations

import asyncio
import collections
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from dialer.sim.server import SimServer
from dialer.sim.trace import creates
from tests.harness import (
    SIM_SID,
    SIM_TOKEN,
    campaign_completed,
    free_port,
    make_campaign,
    max_in_window,
    wait_until,
)
from tests.helpers import clean_env
from tests.sim_process import simulator_process
from tests.test_dispatcher import humans, sim_config


def daemon_env(dsn: str, api_base: str, cps: float, **extra: str) -> dict[str, str]:
    return clean_env({
        "DIALER_DATABASE_URL": dsn,
        "DIALER_TWILIO_ACCOUNT_SID": SIM_SID,
        "DIALER_TWILIO_AUTH_TOKEN": SIM_TOKEN,
        "DIALER_TWILIO_API_BASE": api_base,
        "DIALER_TWILIO_CPS": str(cps),
        "DIALER_LOG_FORMAT": "json",
        "DIALER_LOG_LEVEL": "warning",
        "DIALER_POLL_SECONDS": "0.2",
        "DIALER_HEARTBEAT_SECONDS": "0.5",
        **extra,
    })


@asynccontextmanager
async def daemons(count: int, env: dict[str, str]) -> AsyncIterator[
        list[subprocess.Popen[bytes]]]:
    """``count`` real daemons, each with its own callback port; SIGTERM on the way out,
    waited for in threads because the simulator shares this event loop."""
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(count):
            own = dict(env)
            port = free_port()
            own["DIALER_CALLBACK_BIND"] = f"127.0.0.1:{port}"
            own["DIALER_PUBLIC_BASE_URL"] = f"http://127.0.0.1:{port}"
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "dialer.cli", "run"], env=own,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ))
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                await asyncio.to_thread(proc.wait, 30)
            except subprocess.TimeoutExpired:
                proc.kill()
                await asyncio.to_thread(proc.wait)


async def test_two_processes_share_the_cps(dsn: str, pool: asyncpg.Pool) -> None:
    """Counted in exact one-second windows: the simulator runs in a process of its own
    (as Twilio would), so its arrival stamps are not delayed by this test's loop."""
    phones = humans(150)
    campaign_id = await make_campaign(pool, "shared", phones, cps=10, state="paused")
    async with simulator_process() as sim:
        env = daemon_env(dsn, sim.base_url, cps=10)
        async with daemons(2, env) as procs:
            # Start dialing once both are up: a process starting takes a core for a
            # second, which on a 2-core machine delays the simulator's own clock.
            await wait_until(lambda: _workers(pool, 2), timeout=20, what="two workers")
            await pool.execute(
                "UPDATE campaigns SET state = 'running' WHERE id = $1", campaign_id)
            await wait_until(lambda: campaign_completed(pool, campaign_id), timeout=60,
                             what="completion")
            assert all(p.poll() is None for p in procs)
        assert [p.returncode for p in procs] == [0, 0]
        created = await asyncio.to_thread(sim.create_records)
    counts = collections.Counter(r["params"]["To"][0] for r in created)
    assert counts == collections.Counter(phones)
    assert max_in_window([r["t"] for r in created]) <= 10
    by_worker = await pool.fetch(
        "SELECT worker_id, count(*) FROM call_attempts WHERE campaign_id = $1 GROUP BY 1",
        campaign_id)
    assert len(by_worker) == 2, "both processes should have dialed"


async def _workers(pool: asyncpg.Pool, n: int) -> bool:
    return int(await pool.fetchval("SELECT count(*) FROM workers")) >= n


async def test_sigterm_hands_back_claims_and_drains_callbacks(
    dsn: str, pool: asyncpg.Pool
) -> None:
    phones = humans(200)
    campaign_id = await make_campaign(pool, "sigterm", phones, cps=20)
    # Calls talk for 1.5 s: some are live when SIGTERM comes, and their completed
    # callbacks arrive during the drain period.
    async with SimServer(sim_config(time_scale=0.075)) as sim:
        env = daemon_env(dsn, sim.base_url, cps=20, DIALER_DRAIN_SECONDS="10")
        async with daemons(1, env) as (proc,):
            await wait_until(lambda: _some_created(sim, 40), timeout=20, what="40 calls")
            proc.send_signal(signal.SIGTERM)
            # Waited for in a thread: the simulator shares this event loop.
            assert await asyncio.to_thread(proc.wait, 30) == 0
    dialing = await pool.fetchval(
        "SELECT count(*) FROM contacts WHERE campaign_id = $1 AND state = 'dialing'",
        campaign_id)
    assert dialing == 0
    placed = {r.call_sid for r in creates(sim.trace)}
    final = await pool.fetch(
        "SELECT call_sid, state FROM call_attempts WHERE campaign_id = $1", campaign_id)
    assert {r["call_sid"] for r in final} == placed
    live = [r["call_sid"] for r in final if r["state"] != "final"]
    assert not live, "live calls' outcomes should have been recorded while draining"
    pending = await pool.fetchval(
        "SELECT count(*) FROM contacts WHERE campaign_id = $1 AND state = 'pending'",
        campaign_id)
    assert pending == 200 - len(placed)


async def _some_created(sim: SimServer, n: int) -> bool:
    return len(creates(sim.trace)) >= n
