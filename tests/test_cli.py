"""The ``dialer`` command itself (the sub-commands have tests of their own)."""

from __future__ import annotations

import importlib.metadata

from dialer.testing import run_cli


def test_version_prints_the_package_version() -> None:
    done = run_cli("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"dialer {importlib.metadata.version('dialer')}\n"
    assert importlib.metadata.version("dialer").count(".") >= 1
