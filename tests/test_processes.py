"""Real `dialer run` processes: sharing one account's CPS, and stopping on SIGTERM."""

from __future__ import annotations

import asyncio
import collections
import signal

import asyncpg

from dialer.sim.server import SimServer
from dialer.sim.trace import creates
from dialer.testing import (
    campaign_completed,
    daemon_env,
    daemons,
    humans,
    make_campaign,
    max_in_window,
    sim_config,
    simulator_process,
    wait_until,
    workers_at_least,
)


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
            await wait_until(lambda: workers_at_least(pool, 2), timeout=20, what="two workers")
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
