"""``dialer report NAME [--csv FILE [--since WHEN] [--until WHEN]] [--html FILE]``: what
a campaign's calls turned into.

The HTML page needs matplotlib (the ``dialer[report]`` extra), imported only when
``--html`` is given: the text report and the daemon never load it."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

import asyncpg
from rich.console import Console

from dialer import report, report_figures, repository
from dialer.commands import SubParsers, UsageError, UserError, database, writable
from dialer.config import Settings
from dialer.safetext import shown


def moment(text: str) -> dt.datetime:
    """An argparse type: a date (its midnight) or an ISO-8601 time; UTC unless the
    text gives an offset."""
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a date or an ISO-8601 time such as 2025-03-01 or "
            f"2025-03-01T09:00+01:00, got {shown(text, 40)}"
        ) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def _check_options(args: argparse.Namespace) -> None:
    if args.csv is None and (args.since is not None or args.until is not None):
        raise UsageError("--since and --until choose the attempts of the --csv export: "
                         "give --csv FILE too")
    if args.since is not None and args.until is not None and args.since >= args.until:
        raise UsageError(f"--since {args.since.isoformat()} is not before "
                         f"--until {args.until.isoformat()}")


def html_extra_present() -> None:
    """UsageError unless matplotlib, which draws the pages' charts, is installed."""
    try:
        import matplotlib  # noqa: F401 - only to know that the page can be drawn
    except ImportError:
        raise UsageError("--html draws its charts with matplotlib, which is not installed: "
                         "pip install 'dialer[report]'") from None


def _html_path(path: Path | None) -> Path | None:
    if path is None:
        return None
    html_extra_present()
    return writable(path, "--html")


async def _write_html(pool: asyncpg.Pool, name: str, path: Path) -> None:
    """The page from one snapshot of the database, so that every figure agrees."""
    from dialer import report_html  # matplotlib: only for this

    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read",
                                                        readonly=True):
        summary = await repository.campaign_summary(conn, name)
        if summary is None:  # dropped since the text report read it
            raise UserError(f"no campaign named {shown(name)}")
        figures = await report_figures.load(conn, dict(summary), dt.datetime.now(dt.UTC))
    try:
        report.write_page(path, report_html.render(figures))
    except report.FileWriteError as exc:
        raise UserError(f"--html {shown(str(path))}: {exc}") from None
    print(f"report written to {path}")


async def run(settings: Settings, args: argparse.Namespace) -> int:
    _check_options(args)
    csv_path = None if args.csv is None else writable(args.csv, "--csv")
    html_path = _html_path(args.html)
    async with database(settings) as pool:
        summary = await repository.campaign_summary(pool, args.name)
        if summary is None:
            raise UserError(f"no campaign named {shown(args.name)}")
        console = Console()
        console.print(report.summary_table(args.name, dict(summary)))
        if summary["pause_reason"]:
            console.print(f"paused by the dialer: {summary['pause_reason']}", markup=False)
        if csv_path is not None:
            campaign_id = summary["campaign_id"]

            async def copy(sink: report.Sink) -> int:
                return await repository.copy_attempts(
                    pool, sink, campaign_id, since=args.since, until=args.until)

            try:
                count = await report.write_export(csv_path, copy)
            except report.FileWriteError as exc:
                raise UserError(f"--csv {shown(str(csv_path))}: {exc}") from None
            print(f"{count} attempts written to {csv_path}")
        if html_path is not None:
            await _write_html(pool, args.name, html_path)
    return 0


def add_parser(sub: SubParsers) -> None:
    p = sub.add_parser("report", help="summary of a campaign's results, optionally as CSV")
    p.add_argument("name", help="campaign name")
    p.add_argument("--csv", type=Path, metavar="FILE",
                   help="write every attempt to FILE as CSV (gzip-compressed when FILE "
                        "ends in .gz); streamed, so any size fits in constant memory")
    p.add_argument("--since", type=moment, metavar="WHEN",
                   help="only attempts requested at or after WHEN (a date or ISO-8601 "
                        "time; UTC unless it gives an offset)")
    p.add_argument("--until", type=moment, metavar="WHEN",
                   help="only attempts requested before WHEN")
    p.add_argument("--html", type=Path, metavar="FILE",
                   help="write the report with its charts to FILE, one HTML page that "
                        "opens offline (needs the extra: pip install 'dialer[report]')")
    p.set_defaults(handler=run)
