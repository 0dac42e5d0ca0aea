"""Every long-lived task of the daemon is supervised: one that ends stops the daemon
with one log line naming it and exit code 1 (systemd restarts it), sooner than the
watchdog would notice."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator

import asyncpg
import pytest
import structlog

from dialer import service
from dialer.httpserver import EmbeddedServer
from dialer.sim.server import SimServer
from dialer.tasks import Detached, Supervisor
from dialer.testing import (
    daemon_settings,
    humans,
    make_campaign,
    running_daemon,
    sim_config,
    wait_until,
)


async def _forever() -> None:
    await asyncio.Event().wait()


async def _boom() -> None:
    await asyncio.sleep(0.01)
    raise RuntimeError("boom")


async def _done() -> None:
    await asyncio.sleep(0.01)


@pytest.mark.parametrize(
    ("work", "how", "text"),
    [(_boom, "raised", "task worker raised RuntimeError('boom')"),
     (_done, "returned", "task worker returned")],
)
async def test_the_first_task_to_end_is_the_failure(work: object, how: str, text: str) -> None:
    supervisor = Supervisor()
    other = supervisor.spawn("other", _forever())
    supervisor.spawn("worker", work())  # type: ignore[operator]
    failure = await asyncio.wait_for(supervisor.first_failure(), 5)
    assert (failure.name, failure.how, str(failure)) == ("worker", how, text)
    other.cancel()  # an echo of the first failure, not a second one
    await asyncio.gather(other, return_exceptions=True)
    assert supervisor.failure is failure
    await supervisor.stop(timeout=0)


async def test_a_cancelled_task_is_a_failure_and_a_retired_one_is_not() -> None:
    supervisor = Supervisor()
    retired = supervisor.spawn("account-gone", _forever())
    supervisor.retire(retired)
    retired.cancel()
    await asyncio.gather(retired, return_exceptions=True)
    assert supervisor.failure is None
    killed = supervisor.spawn("listener", _forever())
    killed.cancel()
    failure = await asyncio.wait_for(supervisor.first_failure(), 5)
    assert (failure.name, failure.how) == ("listener", "cancelled")


async def test_stop_ends_the_supervision_then_cancels_what_still_runs() -> None:
    supervisor = Supervisor()
    tasks = [supervisor.spawn(f"t{i}", _forever()) for i in range(3)]
    await supervisor.stop(timeout=0.05)
    assert all(task.cancelled() for task in tasks)
    assert supervisor.failure is None


async def test_short_tasks_end_with_the_wait_for_them_when_it_is_cancelled() -> None:
    """A shutdown whose grace ran out cancels its wait for the sends: the sends end
    with it instead of writing to a pool that is closing."""
    sends = Detached()
    tasks = [sends.spawn(_forever(), name=f"send-{i}") for i in range(3)]
    waiting = asyncio.create_task(sends.wait())
    await asyncio.sleep(0.01)
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    assert all(task.cancelled() for task in tasks) and len(sends) == 0


@pytest.fixture
def notify_socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """systemd's notify socket, with a watchdog of one second for this process."""
    folder = tempfile.mkdtemp(prefix="dialer-notify-")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(os.path.join(folder, "notify"))
    sock.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", sock.getsockname())
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    try:
        yield sock
    finally:
        sock.close()
        shutil.rmtree(folder)


async def _watchdog_pings(sock: socket.socket, n: int) -> None:
    loop = asyncio.get_running_loop()
    seen = 0
    while seen < n:
        data = await asyncio.wait_for(loop.sock_recv(sock, 4096), 5)
        seen += data.decode().splitlines().count("WATCHDOG=1")


async def test_killing_the_callback_server_stops_the_daemon_naming_it(
    dsn: str, pool: asyncpg.Pool, notify_socket: socket.socket
) -> None:
    await make_campaign(pool, "busy", humans(500), cps=20)
    async with SimServer(sim_config(time_scale=0.01)) as sim:
        daemon = service.Daemon(daemon_settings(sim.base_url, cps=20), dsn=dsn)
        running = asyncio.create_task(service.serve(daemon))
        await wait_until(lambda: _ready(daemon), timeout=30, what="the daemon ready")
        await _watchdog_pings(notify_socket, 2)  # fed while everything makes progress
        assert daemon.supervisor is not None
        server = daemon.supervisor.task(EmbeddedServer.TASK_NAME)
        assert server is not None
        with structlog.testing.capture_logs() as logs:
            killed_at = time.monotonic()
            server.cancel()
            code = await asyncio.wait_for(running, 30)
            stopped_in = time.monotonic() - killed_at
    assert code == 1
    failed = [e for e in logs if e["event"] == "task_failed"]
    assert [(e["task"], e["how"]) for e in failed] == [("callback-server", "cancelled")]
    assert failed[0]["log_level"] == "error"
    # Before systemd's watchdog (WatchdogSec=1 s here) would have noticed.
    assert stopped_in < 1.0
    live = await pool.fetchval("SELECT count(*) FROM contacts WHERE state = 'dialing'")
    assert live == 0, "the unsent claims were handed back on the way out"


async def _ready(daemon: service.Daemon) -> bool:
    return daemon.ready.is_set()


def _drain(sock: socket.socket) -> int:
    """WATCHDOG=1 messages waiting on the socket (read without waiting)."""
    pings = 0
    while True:
        try:
            pings += sock.recv(4096).decode().splitlines().count("WATCHDOG=1")
        except BlockingIOError:
            return pings


async def test_the_watchdog_is_fed_only_while_the_dispatch_loop_makes_progress(
    dsn: str, pool: asyncpg.Pool, notify_socket: socket.socket
) -> None:
    """A dispatch loop stuck on the database (a lock held elsewhere) starves the
    watchdog, so that systemd would restart a daemon that no longer dials."""
    await make_campaign(pool, "busy", humans(300), cps=20)
    async with SimServer(sim_config()) as sim, running_daemon(
            daemon_settings(sim.base_url, cps=20), dsn):
        await _watchdog_pings(notify_socket, 2)
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("LOCK TABLE campaigns IN ACCESS EXCLUSIVE MODE")
            await asyncio.sleep(1.0)  # the loop stalls; half a WatchdogSec later, noticed
            _drain(notify_socket)
            await asyncio.sleep(1.0)
            assert _drain(notify_socket) == 0
        await _watchdog_pings(notify_socket, 2)  # progress again: fed again
