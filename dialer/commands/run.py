"""``dialer run``: the daemon (dispatcher and callback endpoint) until SIGTERM."""

from __future__ import annotations

import argparse

from dialer import service
from dialer.commands import SubParsers, check_database
from dialer.config import Settings


async def run(settings: Settings, args: argparse.Namespace) -> int:
    # The accounts and their tokens are the daemon's to check (exit 2 when it has no
    # account to dial for). A database that cannot be reached at start is a
    # configuration error (exit 2); once running, the daemon rides out outages instead.
    return await service.run(settings, await check_database(settings))


def add_parser(sub: SubParsers) -> None:
    p = sub.add_parser("run", help="run the daemon: dispatcher and callback endpoint")
    p.set_defaults(handler=run)
