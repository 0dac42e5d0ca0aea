"""``dialer migrate``: bring the schema up to date (idempotent, safe in parallel)."""

from __future__ import annotations

import argparse

from dialer import db
from dialer.commands import SubParsers, connect
from dialer.config import Settings


async def run(settings: Settings, args: argparse.Namespace) -> int:
    conn = await connect(settings)
    try:
        ran = await db.migrate(conn)
    finally:
        await conn.close()
    print(f"schema current ({len(ran)} migration(s) applied)")
    return 0


def add_parser(sub: SubParsers) -> None:
    p = sub.add_parser("migrate", help="create or update the database schema")
    p.set_defaults(handler=run)
