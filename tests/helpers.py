"""Small helpers shared by tests (fixtures live in conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping


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
