"""``dialer sim``: the Twilio-compatible simulator (see dialer.sim)."""

from __future__ import annotations

import argparse

from dialer.commands import SubParsers
from dialer.config import Settings


def run(settings: Settings, args: argparse.Namespace) -> int:
    from dialer.sim import cli  # only this command loads the simulator

    return cli.run(args)


def add_parser(sub: SubParsers) -> None:
    from dialer.sim import cli

    p = sub.add_parser("sim", help="run the Twilio-compatible simulator on loopback")
    cli.add_arguments(p)
    p.set_defaults(sync_handler=run)
