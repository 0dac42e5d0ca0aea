"""Real processes for tests and benchmarks: the ``dialer`` CLI as an operator runs it,
``dialer run`` daemons, and the credentials file they read."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

from dialer.testing.factories import SIM_SID, SIM_TOKEN
from dialer.testing.waiting import free_port

DAEMON_LOG_TAIL = 100_000


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without any DIALER_* setting of the caller's, plus
    ``extra``: a child process sees only the settings it is given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIALER_")}
    env.update(extra or {})
    return env


def run_cli(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run the real ``dialer`` CLI in a subprocess, as an operator would."""
    return subprocess.run(
        [sys.executable, "-m", "dialer.cli", *args],
        env=clean_env(env), capture_output=True, text=True, timeout=timeout, check=False,
    )


def write_credentials(path: Path, tokens: Mapping[str, str], *, mode: int = 0o600) -> Path:
    """A credentials file (``SID=token`` lines) as ``dialer run`` reads it."""
    path.write_text("".join(f"{sid}={token}\n" for sid, token in tokens.items()))
    path.chmod(mode)
    return path


def daemon_env(dsn: str, api_base: str, cps: float, **extra: str) -> dict[str, str]:
    """The environment of a `dialer run` dialing for SIM_SID at ``cps``."""
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


def _with_own_port(env: Mapping[str, str]) -> tuple[dict[str, str], str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    return {**env, "DIALER_CALLBACK_BIND": f"127.0.0.1:{port}",
            "DIALER_PUBLIC_BASE_URL": base}, base


@contextlib.asynccontextmanager
async def daemon_process(
    env: Mapping[str, str],
) -> AsyncIterator[tuple[subprocess.Popen[bytes], str]]:
    """One `dialer run`; yields it and its callback base URL; killed if still running.
    When the test fails, the daemon's log is shown beside it."""
    own, base_url = _with_own_port(env)
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen([sys.executable, "-m", "dialer.cli", "run"], env=own,
                                stdout=subprocess.DEVNULL, stderr=log)
        try:
            yield proc, base_url
        except BaseException:
            log.seek(0)
            sys.stderr.write(log.read()[-DAEMON_LOG_TAIL:].decode(errors="replace"))
            raise
        finally:
            if proc.poll() is None:
                proc.kill()
                await asyncio.to_thread(proc.wait)


@contextlib.asynccontextmanager
async def daemons(count: int, env: Mapping[str, str]) -> AsyncIterator[
        list[subprocess.Popen[bytes]]]:
    """``count`` real daemons, each with its own callback port; SIGTERM on the way out,
    waited for in threads because a simulator may share the caller's event loop."""
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(count):
            own, _ = _with_own_port(env)
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
