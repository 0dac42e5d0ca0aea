"""``dialer report NAME [--csv FILE]``: what a campaign's calls turned into."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from dialer import report, repository
from dialer.commands import SubParsers, UserError, database, writable
from dialer.config import Settings
from dialer.safetext import shown


async def run(settings: Settings, args: argparse.Namespace) -> int:
    csv_path = None if args.csv is None else writable(args.csv, "--csv")
    async with database(settings) as pool:
        summary = await repository.campaign_summary(pool, args.name)
        if summary is None:
            raise UserError(f"no campaign named {shown(args.name)}")
        console = Console()
        console.print(report.summary_table(args.name, dict(summary)))
        if summary["pause_reason"]:
            console.print(f"paused by the dialer: {summary['pause_reason']}", markup=False)
        if csv_path is not None:
            rows = await repository.attempt_detail(pool, args.name)
            try:
                count = report.write_csv(csv_path, [dict(row) for row in rows])
            except OSError as exc:
                raise UserError(
                    f"--csv {shown(str(csv_path))}: writing failed ({exc.strerror or exc})"
                ) from None
            print(f"{count} attempts written to {csv_path}")
    return 0


def add_parser(sub: SubParsers) -> None:
    p = sub.add_parser("report", help="summary of a campaign's results, optionally as CSV")
    p.add_argument("name", help="campaign name")
    p.add_argument("--csv", type=Path, help="write every attempt to this CSV file")
    p.set_defaults(handler=run)
