"""Running the real daemon in-process against the simulator, for integration tests."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import asyncpg

from dialer import repository
from dialer.campaigns import CampaignSpec
from dialer.compliance import locate
from dialer.config import Settings
from dialer.dispatcher import Clock, utcnow
from dialer.phone import InvalidNumber, normalize_with_location
from dialer.service import Daemon
from dialer.windows import WeeklyHours

SIM_SID = "AC" + "a1" * 16
SIM_TOKEN = "sim-auth-token"
DAEMON_LOG_TAIL = 100_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def daemon_settings(api_base: str, *, cps: float, account_sid: str = SIM_SID,
                    auth_token: str = SIM_TOKEN, **extra: Any) -> Settings:
    port = free_port()
    values: dict[str, Any] = {
        "twilio_account_sid": account_sid,
        "twilio_auth_token": auth_token,
        "twilio_api_base": api_base,
        "twilio_cps": cps,
        "callback_bind": f"127.0.0.1:{port}",
        "public_base_url": f"http://127.0.0.1:{port}",
        "poll_seconds": 0.2,
        "heartbeat_seconds": 0.5,
        "reconcile_after_seconds": 1.0,
        "drain_seconds": 2.0,
        "shutdown_grace_seconds": 5.0,
    }
    values.update(extra)
    return Settings(**values)


def located(phone: str, timezone: str | None) -> tuple[Any, ...]:
    """(zones, zone source, states, state sources) as an import stores them: the zone
    of a timezone column, else every zone of the number, and the number's US state.
    A number the library cannot place (a simulator test number) gets the column's zone
    alone, or nothing: the claim works it out as for a contact from before migration
    0005."""
    try:
        _, zones, state = normalize_with_location(phone, "ZZ")
    except InvalidNumber:
        return ([timezone], "csv", None, None) if timezone else (None, None, None, None)
    where = locate(csv_zone=timezone, number_zones=zones, csv_state=None, number_state=state)
    return list(where.zones), where.zone_source, list(where.states), list(where.state_sources)


async def make_campaign(
    pool: asyncpg.Pool, name: str, phones: Sequence[str], *, state: str = "running",
    account_sid: str = SIM_SID, cps: float = 10, timezone: str | None = None,
    locate_contacts: bool = True, **spec: Any,
) -> int:
    """A campaign with contacts, straight into the database (the CLI has its own tests),
    callable at any time unless ``spec`` says otherwise. The contacts are located as an
    import would (``timezone`` as if from a CSV column); with ``locate_contacts`` false
    they have no location, as contacts from before migration 0005."""
    values: dict[str, Any] = {
        "name": name, "from_number": "+15005550006", "twiml": "<Response><Say>hi</Say></Response>",
        "calendar": WeeklyHours.ALWAYS,
    }
    values.update(spec)
    row = CampaignSpec(**values).to_row()
    await repository.upsert_account(pool, account_sid, cps, None)
    columns = ", ".join(row)
    placeholders = ", ".join(f"${i}" for i in range(1, len(row) + 2))
    campaign_id: int = await pool.fetchval(
        f"INSERT INTO campaigns ({columns}, account_sid) VALUES ({placeholders}) RETURNING id",
        *row.values(), account_sid,
    )
    await pool.executemany(
        "INSERT INTO contacts (campaign_id, phone, zones, zone_source, states, state_sources)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        [(campaign_id, phone, *(located(phone, timezone) if locate_contacts
                                else (None, None, None, None)))
         for phone in phones],
    )
    await pool.execute("UPDATE campaigns SET state = $2 WHERE id = $1", campaign_id, state)
    return campaign_id


@contextlib.asynccontextmanager
async def running_daemon(
    settings: Settings, dsn: str, *, clock: Clock = utcnow, pacing: bool = True
) -> AsyncIterator[Daemon]:
    daemon = Daemon(settings, dsn=dsn, clock=clock, pacing=pacing)
    task = asyncio.create_task(daemon.run())
    ready = asyncio.create_task(daemon.ready.wait())
    await asyncio.wait([task, ready], return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        ready.cancel()
        await task
    try:
        yield daemon
    finally:
        daemon.stop.set()
        await asyncio.wait_for(task, 30)


async def wait_until(
    predicate: Callable[[], Awaitable[bool]], *, timeout: float, interval: float = 0.1,
    what: str = "condition",
) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


async def campaign_state(pool: asyncpg.Pool, campaign_id: int) -> str:
    state: str = await pool.fetchval("SELECT state FROM campaigns WHERE id = $1", campaign_id)
    return state


async def campaign_completed(pool: asyncpg.Pool, campaign_id: int) -> bool:
    return await campaign_state(pool, campaign_id) == "completed"


def window_counts(times: Sequence[float], window: float = 1.0) -> list[tuple[float, int]]:
    """For each event, how many events fall in the half-open window [t, t + window)
    it starts (the busiest window always starts at an event)."""
    ordered = sorted(times)
    counts = []
    end = 0
    for start, t in enumerate(ordered):
        end = max(end, start)
        while end < len(ordered) and ordered[end] - t < window:
            end += 1
        counts.append((t, end - start))
    return counts


def max_in_window(times: Sequence[float], window: float = 1.0) -> int:
    """The most events in any half-open window of ``window`` seconds."""
    return max((n for _, n in window_counts(times, window)), default=0)


@contextlib.asynccontextmanager
async def daemon_process(
    env: dict[str, str],
) -> AsyncIterator[tuple[subprocess.Popen[bytes], str]]:
    """One `dialer run`; yields it and its callback base URL; killed if still running."""
    port = free_port()
    env = {**env, "DIALER_CALLBACK_BIND": f"127.0.0.1:{port}",
           "DIALER_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}"}
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen([sys.executable, "-m", "dialer.cli", "run"], env=env,
                                stdout=subprocess.DEVNULL, stderr=log)
        try:
            yield proc, f"http://127.0.0.1:{port}"
        except BaseException:
            # The daemon's own account of a failed test, shown by pytest beside it.
            log.seek(0)
            sys.stderr.write(log.read()[-DAEMON_LOG_TAIL:].decode(errors="replace"))
            raise
        finally:
            if proc.poll() is None:
                proc.kill()
                await asyncio.to_thread(proc.wait)
