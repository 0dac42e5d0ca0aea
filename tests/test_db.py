"""The database module's pool: how it ends."""

from __future__ import annotations

import asyncio
import time

import asyncpg

from dialer import db
from dialer.testing import wait_until


async def test_a_connection_never_given_back_does_not_hold_the_pool_open(
    dsn: str, pool: asyncpg.Pool
) -> None:
    """A pool waits on close for its connections to come back; one that never does (a
    query cancelled by Ctrl-C that the server is slow to cancel) is cut after
    POOL_CLOSE_SECONDS, so the command still exits (without the bound this waits for
    ever)."""
    started = time.monotonic()
    async with asyncio.timeout(db.POOL_CLOSE_SECONDS + 10):
        async with db.open_pool(dsn) as closing:
            pid = (await closing.acquire()).get_server_pid()
    assert time.monotonic() - started < db.POOL_CLOSE_SECONDS + 5

    async def its_session_ended() -> bool:
        return not await pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid)

    await wait_until(its_session_ended, timeout=10, what="the held session to end")
