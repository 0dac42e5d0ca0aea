"""Small helpers shared by tests (fixtures live in conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping


def run_cli(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run the real ``dialer`` CLI in a subprocess, as an operator would."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("DIALER_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "dialer.cli", *args],
        env=full_env, capture_output=True, text=True, timeout=timeout, check=False,
    )
