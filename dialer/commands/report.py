"""``dialer report NAME [--csv FILE]``: what a campaign's calls turned into."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from dialer import report, repository
from dialer.commands import SubParsers, UserError, database
from dialer.config import Settings


async def run(settings: Settings, args: argparse.Namespace) -> int:
    async with database(settings) as pool:
        summary = await repository.campaign_summary(pool, args.name)
        if summary is None:
            raise UserError(f"no campaign named {args.name!r}")
        Console().print(report.summary_table(args.name, dict(summary)))
        if args.csv is not None:
            rows = await repository.attempt_detail(pool, args.name)
            count = report.write_csv(args.csv, [dict(row) for row in rows])
            print(f"{count} attempts written to {args.csv}")
    return 0


def add_parser(sub: SubParsers) -> None:
    p = sub.add_parser("report", help="summary of a campaign's results, optionally as CSV")
    p.add_argument("name", help="campaign name")
    p.add_argument("--csv", type=Path, help="write every attempt to this CSV file")
    p.set_defaults(handler=run)
