"""`dialer run` as systemd runs it: the notify protocol on a real datagram socket,
/healthz and /metrics over HTTP, and the unit file checked by systemd-analyze."""

from __future__ import annotations

import asyncio
import collections
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from dialer.sim.server import SimServer
from dialer.sim.trace import creates
from dialer.testing import (
    QUICK_RETRY,
    campaign_completed,
    daemon_env,
    daemon_process,
    humans,
    make_campaign,
    mixed,
    sim_config,
    wait_until,
)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def notify_socket() -> Iterator[socket.socket]:
    """A datagram socket where systemd would listen (a short path: sun_path is small)."""
    folder = tempfile.mkdtemp(prefix="dialer-notify-")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(os.path.join(folder, "notify"))
    sock.setblocking(False)
    try:
        yield sock
    finally:
        sock.close()
        shutil.rmtree(folder)


async def next_message(sock: socket.socket, timeout: float = 20) -> list[str]:
    data = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(sock, 4096), timeout)
    return data.decode().splitlines()


async def test_ready_watchdog_reloading_and_stopping_reach_the_notify_socket(
    dsn: str, notify_socket: socket.socket
) -> None:
    async with SimServer(sim_config()) as sim:
        env = daemon_env(dsn, sim.base_url, cps=10, NOTIFY_SOCKET=notify_socket.getsockname(),
                         WATCHDOG_USEC="400000")
        async with daemon_process(env) as (proc, base_url):
            seen: list[str] = []
            while "READY=1" not in seen:
                seen += await next_message(notify_socket)
            # READY comes once the endpoint listens and the database answers.
            async with httpx.AsyncClient(timeout=5) as http:
                health = await http.get(f"{base_url}/healthz")
            assert health.status_code == 200
            assert health.json()["ok"] is True and health.json()["database"] is True
            assert any(line.startswith("STATUS=") for line in seen)
            # WATCHDOG=1 at least every 200 ms (half of WatchdogSec).
            pings = 0
            started = asyncio.get_running_loop().time()
            while pings < 5:
                pings += (await next_message(notify_socket, timeout=0.5)).count("WATCHDOG=1")
            assert asyncio.get_running_loop().time() - started < 2.0
            # SIGHUP (systemctl reload) re-reads campaigns; it does not stop the daemon.
            proc.send_signal(signal.SIGHUP)
            reload: list[str] = []
            while "READY=1" not in reload:
                reload += await next_message(notify_socket)
            assert "RELOADING=1" in reload
            assert any(line.startswith("MONOTONIC_USEC=") for line in reload)
            assert proc.poll() is None
            proc.send_signal(signal.SIGTERM)
            while "STOPPING=1" not in seen:
                seen += await next_message(notify_socket)
            assert await asyncio.to_thread(proc.wait, 30) == 0


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text page, by name and sorted labels."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_metrics_parse_and_match_the_database(dsn: str, pool: asyncpg.Pool) -> None:
    phones = [*mixed(4), *humans(10)]
    campaign_id = await make_campaign(pool, "metered", phones, cps=50, retry=QUICK_RETRY)
    async with SimServer(sim_config()) as sim:
        env = daemon_env(dsn, sim.base_url, cps=50)
        async with daemon_process(env) as (proc, base_url):
            await wait_until(lambda: campaign_completed(pool, campaign_id), timeout=60,
                             what="campaign completion")
            await asyncio.sleep(1.0)  # a housekeeping pass after the last call ended
            async with httpx.AsyncClient(timeout=5) as http:
                page = await http.get(f"{base_url}/metrics")
            assert page.status_code == 200
            got = samples(page.text)
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(proc.wait, 30) == 0

    created = await pool.fetchval(
        "SELECT count(*) FROM call_attempts WHERE campaign_id = $1 AND call_sid IS NOT NULL",
        campaign_id)
    assert created == len(creates(sim.trace)) > len(phones)  # some numbers were retried
    account = (("account", sim.account_sid),)
    label = (*account, ("campaign", "metered"), ("result", "created"))
    assert got[("dialer_calls_created_total", label)] == created
    assert got[("dialer_twilio_request_seconds_count", account)] == created
    assert got[("dialer_bucket_wait_seconds_count", account)] == created
    assert got[("dialer_claim_seconds_count", account)] > 0
    assert got[("dialer_account_cps", account)] == 50
    assert got[("dialer_calls_in_flight", account)] == 0

    stored = collections.Counter({
        (r["source"], r["status"]): r["n"] for r in await pool.fetch(
            """SELECT source, coalesce(call_status, answered_by, '') AS status,
                      count(*) AS n
               FROM call_events GROUP BY 1, 2""")})
    counted = collections.Counter({
        (dict(labels)["source"], dict(labels)["status"]): value
        for (name, labels), value in got.items() if name == "dialer_callbacks_total"})
    assert counted == stored
    finals = ("completed", "busy", "no-answer", "failed", "canceled")
    assert sum(stored[("call-progress-events", status)] for status in finals) == created


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed")
def test_the_unit_file_verifies(tmp_path: Path) -> None:
    """systemd-analyze checks that the commands exist, so the unit is verified with
    the install path replaced by this checkout's virtualenv."""
    unit = (ROOT / "systemd" / "dialer.service").read_text()
    installed = "/opt/dialer/.venv/bin/dialer"
    assert installed in unit
    here = tmp_path / "dialer.service"
    here.write_text(unit.replace(installed, str(Path(sys.executable).with_name("dialer"))))
    done = subprocess.run(["systemd-analyze", "verify", str(here)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "dialer.service" not in done.stderr, done.stderr
