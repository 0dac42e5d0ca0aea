"""``dialer campaign ...``: create, inspect and steer campaigns."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

from dialer import repository
from dialer.commands import SubParsers, database
from dialer.config import Settings


async def list_(settings: Settings, args: argparse.Namespace) -> int:
    async with database(settings) as pool:
        rows = await repository.list_campaigns(pool)
    table = Table(title="campaigns")
    for column in ("id", "name", "state", "from", "weight", "contacts", "finished"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            str(row["id"]), row["name"], row["state"], row["from_number"],
            str(row["weight"]), str(row["contacts"]), str(row["finished"]),
        )
    Console().print(table if rows else "no campaigns yet")
    return 0


def add_parser(sub: SubParsers) -> None:
    p = sub.add_parser("campaign", help="create, inspect and steer campaigns")
    csub = p.add_subparsers(dest="campaign_command", required=True, metavar="ACTION")
    csub.add_parser("list", help="list campaigns").set_defaults(handler=list_)
