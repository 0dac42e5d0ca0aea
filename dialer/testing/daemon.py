"""The real daemon in-process, for integration tests and benchmarks, and the outcome
recorder's flusher for tests that record events without a daemon."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from dialer.config import Settings
from dialer.dispatcher import Clock, utcnow
from dialer.outcomes import OutcomeRecorder
from dialer.service import Daemon
from dialer.testing.factories import SIM_SID, SIM_TOKEN
from dialer.testing.waiting import free_port


def daemon_settings(api_base: str, *, cps: float, account_sid: str | None = SIM_SID,
                    auth_token: str | None = SIM_TOKEN, **extra: Any) -> Settings:
    """Settings of a quick daemon on a free port: short polls, heartbeats and drain.
    ``account_sid`` None: no default account (accounts come from the database)."""
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


@contextlib.asynccontextmanager
async def running_daemon(
    settings: Settings, dsn: str, *, clock: Clock = utcnow, pacing: bool = True
) -> AsyncIterator[Daemon]:
    """``dialer run``'s daemon on this event loop, ready; stopped on the way out (its
    error, if it stopped by itself, is raised)."""
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


@contextlib.asynccontextmanager
async def recording(recorder: OutcomeRecorder) -> AsyncIterator[OutcomeRecorder]:
    """The recorder with its flusher running (the daemon's supervisor runs it there)."""
    task = asyncio.create_task(recorder.run(), name="outcome-recorder")
    try:
        yield recorder
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
