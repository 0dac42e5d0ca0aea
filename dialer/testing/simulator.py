"""The simulator for tests and benchmarks: its configuration, what it was asked, and
the simulator in a process of its own (``python -m dialer.cli sim``).

A process of its own matters when pacing is measured: its arrival stamps are then
taken by a process that is neither the one being measured nor a busy test's event
loop. Starting and stopping it block (about a second).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

from dialer.sim.config import SimAccountConfig, SimConfig
from dialer.sim.server import SimServer
from dialer.sim.trace import account_in_path, creates
from dialer.testing.factories import SIM_SID, SIM_TOKEN, account_token
from dialer.testing.processes import clean_env

SIMULATOR_NICE = -10


def sim_config(*, more_accounts: Sequence[str | SimAccountConfig] = (), **extra: Any
               ) -> SimConfig:
    """A fast simulator for SIM_SID (1000 CPS, calls a thousand times faster), and for
    ``more_accounts`` (SIDs, each with ``account_token(sid)``, or configs)."""
    values: dict[str, Any] = {
        "account_sid": SIM_SID, "auth_token": SIM_TOKEN, "cps": 1000, "time_scale": 0.001,
    }
    values.update(extra)
    values["more_accounts"] = tuple(
        account if isinstance(account, SimAccountConfig)
        else SimAccountConfig(account_sid=account, auth_token=account_token(account),
                              cps=values["cps"])
        for account in more_accounts)
    return SimConfig(**values)


def called_numbers(sim: SimServer, account_sid: str | None = None) -> collections.Counter[str]:
    """How many times each number was called (calls made), of every account or one."""
    return collections.Counter(r.params["To"][0]
                               for r in creates(sim.trace, account_sid=account_sid))


class Simulator:
    """A running ``dialer sim`` process: SIM_SID/SIM_TOKEN, and the accounts of its
    ``--accounts-file`` if it was given one."""

    def __init__(self, process: subprocess.Popen[str], base_url: str) -> None:
        self.process = process
        self.base_url = base_url
        self.account_sid = SIM_SID
        self.auth_token = SIM_TOKEN

    def trace(self) -> list[dict[str, Any]]:
        """Every API request so far (GET /sim/trace). Blocking: from async code run it
        in a thread."""
        with urllib.request.urlopen(f"{self.base_url}/sim/trace", timeout=120) as answer:
            records: list[dict[str, Any]] = json.load(answer)
        return records

    def create_records(self, account_sid: str | None = None) -> list[dict[str, Any]]:
        """Accepted creates (a call was made), in arrival order, of every account or one."""
        return [r for r in self.trace() if r["method"] == "POST"
                and r["path"].endswith("/Calls.json") and r["call_sid"] is not None
                and (account_sid is None or account_in_path(r["path"]) == account_sid)]


@contextlib.contextmanager
def simulator(*, cps: float = 1000, time_scale: float = 0.001, accounts_file: Path | None = None,
              loop: str = "asyncio", extra: Sequence[str] = ()) -> Iterator[Simulator]:
    """``dialer sim`` on a free port; ``loop="uvloop"`` for benches of throughput, whose
    arrival stamps need not be the kernel's (see ``dialer sim --loop``)."""
    log = Path(tempfile.mkstemp(prefix="dialer-sim-", suffix=".log")[1])
    command = [sys.executable, "-m", "dialer.cli", "sim", "--port", "0", "--cps", str(cps),
               "--time-scale", str(time_scale), "--account-sid", SIM_SID, "--loop", loop, *extra]
    if accounts_file is not None:
        command += ["--accounts-file", str(accounts_file)]
    with log.open("w") as errors:
        process = subprocess.Popen(
            command, env=clean_env({"DIALER_ENV_FILE": os.devnull, "DIALER_LOG_LEVEL": "warning",
                                    "DIALER_SIM_AUTH_TOKEN": SIM_TOKEN}),
            stdout=subprocess.PIPE, stderr=errors, text=True,
        )
    with contextlib.suppress(PermissionError):
        # The simulator is the measuring instrument: ahead in the CPU's run queue, its
        # arrival stamps measure the sender, not a busy 2-core machine's scheduling.
        os.setpriority(os.PRIO_PROCESS, process.pid, SIMULATOR_NICE)
    try:
        assert process.stdout is not None
        first = process.stdout.readline()  # "dialer sim listening on URL for account SID"
        words = first.split()
        if "listening" not in words:
            process.wait(10)
            raise RuntimeError(f"the simulator did not start:\n{first}{log.read_text()}")
        yield Simulator(process, words[words.index("on") + 1])
    finally:
        stop_process(process)
        if process.stdout is not None:
            process.stdout.close()
        log.unlink(missing_ok=True)


@contextlib.asynccontextmanager
async def simulator_process(**options: Any) -> AsyncIterator[Simulator]:
    """``simulator`` for async tests: starting and stopping block, so they run in a
    thread while the test's event loop (and an in-process daemon on it) goes on."""
    with contextlib.ExitStack() as stack:
        sim = await asyncio.to_thread(stack.enter_context, simulator(**options))
        try:
            yield sim
        finally:
            await asyncio.to_thread(stack.close)


def stop_process(process: subprocess.Popen[Any], timeout: float = 30) -> int:
    """SIGTERM, then SIGKILL if it will not go; its exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def change_account(sim: Simulator, account_sid: str, **fields: str | int | float) -> None:
    """Change one account of a running simulator process (``POST /sim/accounts/SID``:
    ``rate_limited``, ``auth_token``, ``cps``). Blocking: from async code run it in a
    thread."""
    body = urllib.parse.urlencode({k: str(v) for k, v in fields.items()}).encode()
    request = urllib.request.Request(f"{sim.base_url}/sim/accounts/{account_sid}", data=body)
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.status == 204, answer.status
