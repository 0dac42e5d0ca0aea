"""``dialer demo``: the whole thing end to end on this machine (see dialer.demo)."""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from dialer import demo
from dialer.commands import SubParsers, UserError
from dialer.config import Settings


async def run(settings: Settings, args: argparse.Namespace) -> int:
    console = Console()
    with tempfile.TemporaryDirectory(prefix="dialer-demo-") as workdir:
        summary = await demo.run_demo(
            settings, contacts=args.contacts, cps=args.cps, console=console,
            workdir=Path(workdir),
        )
    finished = summary["done"] + summary["failed"] + summary["skipped"]
    if finished != summary["contacts"]:
        raise UserError(f"the demo ended with {summary['contacts'] - finished} contacts open")
    console.print(f"demo complete: {summary['contacts']} contacts, {summary['attempts']} calls")
    return 0


def _positive(kind: type[int] | type[float]) -> Callable[[str], int | float]:
    def parse(text: str) -> int | float:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    return parse


def add_parser(sub: SubParsers) -> None:
    p = sub.add_parser("demo", help="run a demo campaign end to end on the simulator")
    p.add_argument("--contacts", type=_positive(int), default=10_000,
                   help="contacts to generate (default: %(default)s)")
    p.add_argument("--cps", type=_positive(float), default=250.0,
                   help="calls per second of the demo account (default: %(default)s)")
    p.set_defaults(handler=run, default_log_level="warning")
