"""``dialer demo``: a whole campaign, end to end, on this machine alone.

It starts what a real deployment has (Postgres, Twilio, the daemon) with local
stand-ins: the embedded Postgres, the simulator in a process of its own (it must not
share the daemon's CPU), and the real daemon in this process. A generated CSV of
contacts in several countries and time zones is imported through the real importer,
the forecast of the campaign is printed, the campaign runs to completion at the stated
CPS on the simulator's weighted mix of outcomes, and the real report is printed, with
how long the run took against the forecast.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import ctypes
import datetime as dt
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import phonenumbers
from pydantic import SecretStr
from rich.console import Console

from dialer import db, forecast, importer, report, repository, watch
from dialer.campaigns import Campaign, CampaignSpec
from dialer.config import Settings
from dialer.policy import AmdMode, MachinePolicy, RetryPolicy
from dialer.service import Daemon
from dialer.windows import WeeklyHours

DEMO_ACCOUNT = "AC" + "de" * 16
DEMO_DATABASE = "dialer_demo"
# Sample numbers by country: (prefix, local digits to fill, time zone column or "").
# An empty zone lets the importer derive it from the number, as for real lists.
REGIONS = (
    ("+1212", 7, ""), ("+1312", 7, ""), ("+1303", 7, ""), ("+1213", 7, ""),
    ("+1808", 7, "Pacific/Honolulu"), ("+44207", 7, ""), ("+4930", 8, ""),
    ("+33142", 6, "Europe/Paris"), ("+61298", 6, ""), ("+81352", 6, "Asia/Tokyo"),
)
# The simulator's calls take this fraction of real time, so the demo ends in a minute.
TIME_SCALE = 0.002
# How long the simulator's calls last (dialer.sim.scenario: answered after 2-8 s, talk
# 10-30 s, busy after 1 s, a failure after 0.5 s, no answer after the demo's ring
# timeout of 20 s), at the demo's time scale: what the demo's forecast assumes.
DEMO_CALL_TIMES = forecast.CallTimes(answer=5.0, talk=20.0, ring=20.0, busy=1.0,
                                     failed=0.5).scaled(TIME_SCALE)
FIRST_NAMES = ("Ada", "Grace", "Alan", "Linus", "Margaret", "Dennis", "Barbara", "Ken")


def generate_csv(path: Path, count: int, *, seed: int = 7) -> int:
    """Write ``count`` valid, distinct contacts; returns how many were written."""
    rng = random.Random(seed)
    seen: set[str] = set()
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["phone", "first_name", "timezone"])
        while len(seen) < count:
            prefix, digits, zone = REGIONS[len(seen) % len(REGIONS)]
            number = prefix + "".join(rng.choice("0123456789") for _ in range(digits))
            if number in seen or not phonenumbers.is_valid_number(phonenumbers.parse(number)):
                continue
            seen.add(number)
            writer.writerow([number, rng.choice(FIRST_NAMES), zone])
    return len(seen)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """In the child: end with the demo, even when the demo is killed (Linux)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@contextlib.contextmanager
def simulator(
    port: int, token: str, cps: float, time_scale: float, log_path: Path
) -> Iterator[str]:
    """The simulator as a child process; yields its base URL once it answers."""
    env = {**os.environ, "DIALER_SIM_AUTH_TOKEN": token, "DIALER_LOG_LEVEL": "warning"}
    log_file = log_path.open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "dialer.cli", "sim", "--port", str(port), "--cps", str(cps),
         "--account-sid", DEMO_ACCOUNT, "--time-scale", str(time_scale),
         "--scenario", "weighted"],
        env=env, stdout=subprocess.DEVNULL, stderr=log_file, preexec_fn=_die_with_parent,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{base}/sim/trace", timeout=1)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the simulator did not start") from None
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log_file.close()


@contextlib.asynccontextmanager
async def demo_database(settings: Settings) -> AsyncIterator[str]:
    """A fresh database for the demo: its own on the embedded server, so that the
    operator's data is never touched; with DIALER_DATABASE_URL, that database."""
    if settings.database_url is not None:
        dsn = settings.database_url.get_secret_value()
    else:
        server = db.embedded_dsn(settings.data_dir)
        admin = await asyncpg.connect(server)
        await admin.execute(f"DROP DATABASE IF EXISTS {DEMO_DATABASE} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {DEMO_DATABASE}")
        await admin.close()
        dsn = server.replace("/postgres?", f"/{DEMO_DATABASE}?", 1)
    conn = await db.connect(dsn)
    try:
        await db.migrate(conn)
    finally:
        await conn.close()
    yield dsn


def demo_spec(name: str) -> CampaignSpec:
    """Open all day (the demo runs whenever it is started), AMD leaving voicemails,
    and retries seconds apart instead of minutes so the demo ends in a minute."""
    quick = dt.timedelta(seconds=2)
    return CampaignSpec(
        name=name, from_number="+15005550006",
        twiml="<Response><Say>Hello ${first_name}, this is a reminder.</Say></Response>",
        amd_mode=AmdMode.DETECT_MESSAGE_END, machine_policy=MachinePolicy.VOICEMAIL,
        retry=RetryPolicy(max_attempts=3, busy_delay=quick, no_answer_delay=quick,
                          failed_delay=quick, machine_delay=quick, backoff=1.5, jitter=0.2),
        ring_timeout=20, calendar=WeeklyHours.ALWAYS,
    )


@dataclass(frozen=True)
class DemoRun:
    """The campaign's summary row, its forecast made before the start, and the seconds
    from its first call to the end of its last (None: no call)."""

    summary: dict[str, Any]
    forecast: forecast.Forecast
    seconds: float | None


async def run_demo(settings: Settings, *, contacts: int, cps: float, console: Console,
                   workdir: Path, timeout: float = 600) -> DemoRun:
    """Run the demo; returns its summary, forecast and duration."""
    token = secrets.token_urlsafe(24)
    csv_path = workdir / "demo-contacts.csv"
    generate_csv(csv_path, contacts)
    console.print(f"generated {contacts} contacts in {csv_path}")
    name = "demo-" + dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    async with demo_database(settings) as dsn:
        sim_log = settings.data_dir / "demo-simulator.log"
        with simulator(_free_port(), token, cps, TIME_SCALE, sim_log) as api_base:
            port = _free_port()
            daemon_settings = settings.model_copy(update={
                "twilio_account_sid": DEMO_ACCOUNT, "twilio_auth_token": SecretStr(token),
                "twilio_api_base": api_base,
                "twilio_cps": cps, "callback_bind": f"127.0.0.1:{port}",
                "public_base_url": f"http://127.0.0.1:{port}",
                "reconcile_after_seconds": 2.0, "stale_call_seconds": 30.0,
            })
            async with db.open_pool(dsn) as pool:
                await repository.upsert_account(pool, DEMO_ACCOUNT, cps, None)
                campaign_id = await repository.insert_campaign(
                    pool, demo_spec(name).to_row(), DEMO_ACCOUNT)
                assert campaign_id is not None
                result = await importer.import_contacts(pool, campaign_id, csv_path,
                                                        errors_path=workdir / "errors.csv")
                console.print(f"imported {result.loaded} contacts "
                              f"({result.rows_per_second:,.0f} rows/s), "
                              f"{result.rejected} rejected")
                row = await repository.campaign_by_name(pool, name)
                predicted = await forecast.for_campaign(
                    pool, Campaign.from_row(row), cps=cps, start=dt.datetime.now(dt.UTC),
                    mix=forecast.Mix(), times=DEMO_CALL_TIMES,
                    poll_seconds=daemon_settings.poll_seconds)
                console.print(f"forecast: {predicted.attempts} calls, the last ending "
                              f"{predicted.seconds or 0:.1f} s after the first")
                await repository.set_campaign_state(pool, campaign_id, "running", ("draft",))
                daemon = Daemon(daemon_settings, dsn=dsn)
                task = asyncio.create_task(daemon.run())
                try:
                    await watch.follow(pool, name, console=console, interval=0.5,
                                       timeout=timeout)
                finally:
                    daemon.stop.set()
                    await task
                summary = await repository.campaign_summary(pool, name)
                first, _, last = await repository.attempt_span(pool, campaign_id)
    assert summary is not None
    console.print(report.summary_table(name, dict(summary)))
    took = (last - first).total_seconds() if first and last else None
    if took is not None:
        console.print(f"the run: {summary['attempts']} calls, the last ending {took:.1f} s "
                      f"after the first (forecast: {predicted.seconds or 0:.1f} s)")
    return DemoRun(dict(summary), predicted, took)
