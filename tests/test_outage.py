"""The database going away under a running `dialer run`: Postgres stopped and started
again (the test owns that server), and the daemon's sessions ended by the server in the
middle of its work. The daemon stays up, answers callbacks 503 while the database is
away so that Twilio retries them, and the campaign completes with every outcome
recorded once."""

from __future__ import annotations

import asyncio
import collections
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from dialer import db
from dialer.sim.server import SimServer
from dialer.testing import (
    assert_recorded_as_placed,
    called_numbers,
    campaign_completed,
    contact_states,
    daemon_env,
    daemon_process,
    humans,
    make_campaign,
    sim_config,
    wait_until,
)

OUTAGE_SECONDS = 4.0
KILLS = 20


class OwnServer:
    """A pgserver cluster of this test alone, which it may stop and start."""

    def __init__(self) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver

            self._server: Any = pgserver.get_server(
                Path(tempfile.mkdtemp(prefix="dialer-outage-pg-")), cleanup_mode="delete")
        self.dsn = str(self._server.get_uri())

    def stop(self) -> None:
        from pgserver._commands import pg_ctl

        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self._server.pgdata,
               user=self._server.system_user)

    def start(self) -> None:
        self._server.ensure_postgres_running()

    def cleanup(self) -> None:
        self._server.cleanup()


@pytest.fixture
def own_server() -> Iterator[OwnServer]:
    server = OwnServer()
    try:
        yield server
    finally:
        server.cleanup()


async def test_postgres_outage_mid_campaign(own_server: OwnServer) -> None:
    conn = await db.connect(own_server.dsn)
    await db.migrate(conn)
    await conn.close()
    phones = humans(300)
    async with SimServer(sim_config(time_scale=0.02)) as sim:
        async with db.open_pool(own_server.dsn) as pool:
            campaign_id = await make_campaign(pool, "outage", phones, cps=25)
        env = daemon_env(own_server.dsn, sim.base_url, cps=25,
                         DIALER_STALE_CALL_SECONDS="2", DIALER_RECONCILE_AFTER_SECONDS="0.5",
                         DIALER_LOG_LEVEL="info")
        async with daemon_process(env) as (proc, _):
            await wait_until(lambda: _calls(sim, 60), timeout=30, what="60 calls")
            await asyncio.to_thread(own_server.stop)
            calls_at_stop = len(sim.calls)
            await asyncio.sleep(OUTAGE_SECONDS)
            assert proc.poll() is None, "the daemon must ride out the outage"
            calls_during = len(sim.calls) - calls_at_stop
            await asyncio.to_thread(own_server.start)
            async with db.open_pool(own_server.dsn) as pool:
                await _wait_for_completion(pool, campaign_id, sim, timeout=90,
                                           what="completion after the outage")
                assert proc.poll() is None
                await assert_recorded_as_placed(pool, campaign_id, sim)
                assert await contact_states(pool, campaign_id) == {"done": len(phones)}
            proc.terminate()
            assert await asyncio.to_thread(proc.wait, 30) == 0
    # It stopped claiming: only calls already claimed went out while the database was
    # away (at most half a second's worth), and each number was called once.
    assert calls_during <= 25
    assert called_numbers(sim) == collections.Counter(phones)
    # Callbacks that came during the outage were refused with 503 (Twilio retries those).
    answers = collections.Counter(
        a.status for call in sim.calls.values() for cb in call.callbacks for a in cb.attempts)
    assert answers[503] > 0, answers


async def test_sessions_ended_mid_operation(dsn: str, pool: asyncpg.Pool) -> None:
    """pg_terminate_backend on every session of the daemon, 20 times while it dials (a
    failover or an administrator does this): claims, slot reservations, callback
    batches and flushes are cut in the middle, and asyncpg answers with errors of
    several kinds, some of them internal ("cannot switch to state ...")."""
    phones = humans(300)
    campaign_id = await make_campaign(pool, "cut", phones, cps=50)
    async with SimServer(sim_config(time_scale=0.02)) as sim:
        env = daemon_env(dsn, sim.base_url, cps=50,
                         DIALER_STALE_CALL_SECONDS="2", DIALER_RECONCILE_AFTER_SECONDS="0.5")
        async with daemon_process(env) as (proc, _):
            await wait_until(lambda: _calls(sim, 30), timeout=30, what="30 calls")
            killer = await db.connect(dsn)
            try:
                for _ in range(KILLS):
                    await killer.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND pid <> pg_backend_pid()")
                    await asyncio.sleep(0.15)
            finally:
                await killer.close()
            assert proc.poll() is None, "the daemon must ride out its sessions' ends"
            await _wait_for_completion(pool, campaign_id, sim, timeout=60,
                                       what="completion after the sessions were cut")
            await assert_recorded_as_placed(pool, campaign_id, sim)
            assert await contact_states(pool, campaign_id) == {"done": len(phones)}
            assert proc.poll() is None
    assert called_numbers(sim) == collections.Counter(phones)


async def _calls(sim: SimServer, n: int) -> bool:
    return len(sim.calls) >= n


async def _wait_for_completion(
    pool: asyncpg.Pool, campaign_id: int, sim: SimServer, *, timeout: float, what: str,
) -> None:
    """Wait; on a timeout, say which contacts are stuck, how, and whether they were called."""
    try:
        await wait_until(lambda: campaign_completed(pool, campaign_id), timeout=timeout,
                         what=what)
    except AssertionError as e:
        unfinished = await _unfinished(pool, campaign_id)
        called = called_numbers(sim)
        for row in unfinished:
            row["sent_to_sim"] = row["phone"] in called
        raise AssertionError(f"{e}; unfinished: {unfinished}") from None


async def _unfinished(pool: asyncpg.Pool, campaign_id: int) -> list[dict[str, Any]]:
    return [dict(r) for r in await pool.fetch(
        "SELECT c.id, c.phone, c.state, c.attempts, c.next_attempt_at, a.attempt_no,"
        " a.state AS a_state, a.call_sid, a.call_status, a.worker_id, a.requested_at,"
        " a.sent_at FROM contacts c"
        " LEFT JOIN call_attempts a ON a.contact_id = c.id"
        " WHERE c.campaign_id = $1 AND c.state <> 'done' ORDER BY c.id LIMIT 20",
        campaign_id)]
