"""One `dialer run` process after another on the same callback port, each killed with
SIGKILL at a moment chosen by a seeded random generator.

The port stays the same across restarts because the calls a killed process placed
keep reporting to the URL it gave Twilio: the next process must be the one that
hears those callbacks. Every wait on a process happens in a thread, since the
simulator serving the daemon shares the test's event loop.
"""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

import asyncpg
import httpx

from dialer.sim.server import SimServer

Phase = Literal["delay", "after_create"]


@dataclass(frozen=True, slots=True)
class Kill:
    """One SIGKILL: when it came and what the dead process left unanswered."""

    phase: Phase
    delay: float
    """Seconds between the process being ready and the kill (before waiting for a create)."""
    worker_id: str
    orphaned: tuple[int, ...]
    """Its attempts still ``requested`` (claimed and maybe sent, answer not recorded)."""


class DaemonRunner:
    """Starts, kills and stops real daemon processes, one at a time."""

    def __init__(self, env: dict[str, str], port: int, log_path: Path) -> None:
        self._env = env
        self._port = port
        self._log_path = log_path
        self._log: IO[bytes] | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> DaemonRunner:
        self._log = self._log_path.open("ab")
        return self

    def __exit__(self, *exc: object) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        if self._log is not None:
            self._log.close()

    async def start(self, pool: asyncpg.Pool, *, timeout: float = 30) -> str:
        """Start a process and wait until it dials (healthy); returns its worker id."""
        assert self.proc is None or self.proc.poll() is not None, "one process at a time"
        self.proc = proc = subprocess.Popen(
            [sys.executable, "-m", "dialer.cli", "run"], env=self._env,
            stdout=subprocess.DEVNULL, stderr=self._log,
        )
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=1.0) as http:
            while True:
                if proc.poll() is not None:
                    raise AssertionError(
                        f"daemon exited with {proc.returncode} at start; see {self._log_path}")
                if time.monotonic() > deadline:
                    raise AssertionError(f"daemon not healthy after {timeout}s")
                try:
                    health = await http.get(f"http://127.0.0.1:{self._port}/healthz")
                    if health.status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.02)
        worker_id = await pool.fetchval("SELECT id FROM workers WHERE pid = $1", proc.pid)
        assert worker_id is not None, "a healthy daemon has registered itself"
        return str(worker_id)

    async def kill(self) -> None:
        proc = self.proc
        assert proc is not None
        proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(proc.wait, 10)

    async def stop(self, timeout: float = 30) -> int:
        """SIGTERM, as systemd stops it; returns the exit code."""
        proc = self.proc
        assert proc is not None
        proc.send_signal(signal.SIGTERM)
        return await asyncio.to_thread(proc.wait, timeout)


async def _next_create(sim: SimServer, timeout: float) -> None:
    """Return as soon as the simulator has received a Create Call request after now."""
    seen = len(sim.trace)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(r.is_create for r in sim.trace[seen:]):
            return
        seen = len(sim.trace)
        await asyncio.sleep(0.001)


async def kill_at_random(
    runner: DaemonRunner, pool: asyncpg.Pool, sim: SimServer, rng: random.Random
) -> Kill:
    """Start a process, let it work for 50-600 ms, and kill it.

    Half the kills then wait for the next Create Call to reach the simulator and
    kill at once, while the answer is on its way or not yet recorded; the others
    land wherever the delay ends (claiming, waiting for a slot, recording answers
    or callbacks)."""
    worker_id = await runner.start(pool)
    phase: Phase = rng.choice(("delay", "after_create"))
    delay = rng.uniform(0.05, 0.6)
    await asyncio.sleep(delay)
    if phase == "after_create":
        await _next_create(sim, timeout=1.0)
    await runner.kill()
    orphaned = await pool.fetch(
        "SELECT id FROM call_attempts WHERE worker_id = $1 AND state = 'requested'", worker_id)
    return Kill(phase, delay, worker_id, tuple(r["id"] for r in orphaned))
