"""The daemon's command line never loads the simulator nor the report's plotting
library: building the parser (what every ``dialer`` command does first) and the daemon
must leave ``dialer.sim``, aiohttp and matplotlib unimported."""

from __future__ import annotations

import subprocess
import sys

PROBE = (
    "import sys\n"
    "import dialer.service\n"
    "from dialer.cli import build_parser\n"
    "build_parser().parse_args(['run'])\n"
    "loaded = sorted(m for m in sys.modules\n"
    "                if m in ('aiohttp', 'matplotlib')\n"
    "                or m.startswith(('dialer.sim', 'aiohttp.', 'matplotlib.')))\n"
    "print(','.join(loaded))\n"
)


def test_building_the_cli_parser_imports_no_simulator() -> None:
    # A fresh interpreter: this test process has imported the simulator elsewhere.
    probe = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                           timeout=60, check=True)
    assert probe.stdout.strip() == "", f"imported by the CLI: {probe.stdout.strip()}"


def test_the_probe_would_see_the_simulator() -> None:
    """The probe itself can fail: importing the simulator shows up in its output."""
    probe = subprocess.run(
        [sys.executable, "-c", "import dialer.sim.cli\n" + PROBE],
        capture_output=True, text=True, timeout=60, check=True,
    )
    # (matplotlib is found by the same test of names; importing it here costs seconds)
    assert "dialer.sim.cli" in probe.stdout and "aiohttp" in probe.stdout
