"""``dialer demo``: the whole thing end to end on this machine (see dialer.demo)."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from rich.console import Console

from dialer import demo
from dialer.commands import SubParsers, UserError, check_database, number, whole_number
from dialer.config import Settings

MAX_CONTACTS = 1_000_000
MAX_CPS = 1000.0  # the bound of DIALER_TWILIO_CPS


async def run(settings: Settings, args: argparse.Namespace) -> int:
    if settings.database_url is not None:
        await check_database(settings)
    console = Console()
    with tempfile.TemporaryDirectory(prefix="dialer-demo-") as workdir:
        summary = (await demo.run_demo(
            settings, contacts=args.contacts, cps=args.cps, console=console,
            workdir=Path(workdir),
        )).summary
    finished = summary["done"] + summary["failed"] + summary["skipped"]
    if finished != summary["contacts"]:
        raise UserError(f"the demo ended with {summary['contacts'] - finished} contacts open")
    console.print(f"demo complete: {summary['contacts']} contacts, {summary['attempts']} calls")
    return 0


def add_parser(sub: SubParsers) -> None:
    p = sub.add_parser("demo", help="run a demo campaign end to end on the simulator")
    p.add_argument("--contacts", type=whole_number(1, MAX_CONTACTS), default=10_000,
                   help="contacts to generate (default: %(default)s)")
    p.add_argument("--cps", type=number(0.01, MAX_CPS), default=250.0,
                   help="calls per second of the demo account (default: %(default)s)")
    p.set_defaults(handler=run, default_log_level="warning")
