"""``dialer migrate``: bring the schema up to date (idempotent, safe in parallel)."""

from __future__ import annotations

import argparse

from dialer import db
from dialer.commands import SubParsers, database_dsn
from dialer.config import Settings


async def run(settings: Settings, args: argparse.Namespace) -> int:
    conn = await db.connect(database_dsn(settings))
    try:
        ran = await db.migrate(conn)
    finally:
        await conn.close()
    print(f"schema current ({len(ran)} migration(s) applied)")
    return 0


def add_parser(sub: SubParsers) -> None:
    p = sub.add_parser("migrate", help="create or update the database schema")
    p.set_defaults(handler=run)
