"""``dialer import CAMPAIGN FILE.csv``: load contacts into a campaign.

The work is done by ``dialer.importer``; this module turns options into its
arguments, shows a progress bar when stdout is a terminal, and prints the summary.
The exit code is 0 when the file was read to the end, even if some rows were
rejected (they are listed in the error file); 1 when the file could not be used.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from dialer import importer, repository
from dialer.commands import SubParsers, UserError, database
from dialer.config import Settings


@contextmanager
def progress_bar(path: Path) -> Iterator[Callable[[int, int], None] | None]:
    """A byte-based progress callback on a terminal; None (no output) otherwise."""
    if not sys.stdout.isatty():
        yield None
        return
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    ) as progress:
        task = progress.add_task(f"reading {path.name}", total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield update


def checked_input(path: Path, region: str | None, default_region: str) -> str:
    """The region to read national numbers in; UserError for a bad region or file."""
    try:
        code = importer.check_region(region or default_region)
    except ValueError as exc:
        raise UserError(f"--region: {exc}") from None
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    return code


async def run(settings: Settings, args: argparse.Namespace) -> int:
    region = checked_input(args.file, args.region, settings.default_region)
    async with database(settings) as pool:
        campaign = await repository.campaign_by_name(pool, args.campaign)
        if campaign is None:
            raise UserError(f"no campaign named {args.campaign!r} (see `dialer campaign list`)")
        with progress_bar(args.file) as on_progress:
            try:
                result = await importer.import_contacts(
                    pool,
                    campaign["id"],
                    args.file,
                    phone_column=args.phone_column,
                    default_region=region,
                    errors_path=args.errors,
                    batch_rows=args.batch_rows,
                    workers=args.workers,
                    on_progress=on_progress,
                )
            except importer.ImportFileError as exc:
                raise UserError(str(exc)) from None
    errors = f"  (see {result.errors_path})" if result.errors_path else ""
    print(
        f"imported {args.file} into {args.campaign} in {result.seconds:.1f} s "
        f"({result.rows_per_second:,.0f} rows/s)\n"
        f"read:       {result.read}\n"
        f"loaded:     {result.loaded}\n"
        f"duplicates: {result.duplicates}\n"
        f"dnc:        {result.dnc}\n"
        f"rejected:   {result.rejected}{errors}"
    )
    return 0


def _at_least(minimum: int) -> Callable[[str], int]:
    def convert(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    convert.__name__ = "int"
    return convert


def add_parser(sub: SubParsers) -> None:
    p = sub.add_parser(
        "import",
        help="load contacts from a CSV file (plain or gzip) into a campaign",
        description=(
            "Load contacts from a CSV file with a header row. The phone column is "
            "required, an optional 'timezone' column sets the contact's zone, every "
            "other column is kept as an attribute for TwiML. Rejected rows go to the "
            "error file (row number with the header as row 1, field, reason, raw row). "
            "Re-running the same import is safe."
        ),
    )
    p.add_argument("campaign", metavar="CAMPAIGN", help="campaign name")
    p.add_argument("file", metavar="FILE", type=Path, help="CSV file (.csv or .csv.gz)")
    p.add_argument("--phone-column", default="phone", help="header of the phone column")
    p.add_argument("--errors", type=Path, metavar="FILE",
                   help="error CSV (default: FILE without .csv/.gz plus .errors.csv)")
    p.add_argument("--region", metavar="CC",
                   help="country of numbers written without +country code "
                        "(default DIALER_DEFAULT_REGION)")
    p.add_argument("--batch-rows", type=_at_least(1), default=importer.BATCH_ROWS,
                   help=argparse.SUPPRESS)
    p.add_argument("--workers", type=_at_least(0), default=None,
                   help="parser processes (default: one per CPU for big files, 0: none)")
    p.set_defaults(handler=run)
