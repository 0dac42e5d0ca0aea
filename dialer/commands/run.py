"""``dialer run``: the daemon (dispatcher and callback endpoint) until SIGTERM."""

from __future__ import annotations

import argparse

from dialer import service
from dialer.commands import SubParsers, database_dsn
from dialer.config import Settings


async def run(settings: Settings, args: argparse.Namespace) -> int:
    settings.require_twilio()
    return await service.run(settings, database_dsn(settings))


def add_parser(sub: SubParsers) -> None:
    p = sub.add_parser("run", help="run the daemon: dispatcher and callback endpoint")
    p.set_defaults(handler=run)
