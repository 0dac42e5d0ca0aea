"""``dialer import CAMPAIGN FILE.csv``: load contacts into a campaign.

The work is done by ``dialer.importer``; this module turns options into its
arguments, shows a progress bar when stdout is a terminal, and prints the summary.
The exit code is 0 when the file was read to the end, even if some rows were
rejected (they are listed in the error file); 1 when the file could not be used (no
data rows, binary, corrupt gzip data: nothing is loaded) or ends early (the summary
then says what was loaded before the cut, which stays); 2 when an option or path
cannot be used (checked before anything is read or written).
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
from dialer.commands import (
    SubParsers,
    UsageError,
    UserError,
    database,
    whole_number,
    writable,
)
from dialer.config import Settings
from dialer.safetext import shown

MAX_BATCH_ROWS = 1_000_000
MAX_WORKERS = 256


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
    """The region to read national numbers in; UsageError for a bad region or file."""
    try:
        code = importer.check_region(region or default_region)
    except ValueError as exc:
        raise UsageError(f"--region: {exc}") from None
    if not path.exists():
        raise UsageError(f"FILE {shown(str(path))}: no such file")
    if not path.is_file():
        raise UsageError(f"FILE {shown(str(path))}: not a file")
    return code


def checked_errors(path: Path, errors: Path | None) -> Path:
    """Where rejected rows go, checked to be writable before anything is imported."""
    if errors is not None:
        return writable(errors, "--errors")
    default = importer.default_errors_path(path)
    try:
        return writable(default, "--errors")
    except UsageError as exc:
        raise UsageError(f"{exc} (the default error file; name another with --errors)") from None


def stopped_error(path: Path, problem: str, stays: str) -> UserError:
    """The one line for an import that could not read its file to the end."""
    return UserError(
        f"{shown(str(path))}: {problem}; {stays} before it and they stay (see the summary "
        "above); fix the file and run the same import again: rows already loaded are "
        "skipped as duplicates"
    )


async def run(settings: Settings, args: argparse.Namespace) -> int:
    region = checked_input(args.file, args.region, settings.default_region)
    errors_path = checked_errors(args.file, args.errors)
    async with database(settings) as pool:
        campaign = await repository.campaign_by_name(pool, args.campaign)
        if campaign is None:
            raise UserError(
                f"no campaign named {shown(args.campaign)} (see `dialer campaign list`)"
            )
        with progress_bar(args.file) as on_progress:
            try:
                result = await importer.import_contacts(
                    pool,
                    campaign["id"],
                    args.file,
                    phone_column=args.phone_column,
                    default_region=region,
                    errors_path=errors_path,
                    batch_rows=args.batch_rows,
                    workers=args.workers,
                    on_progress=on_progress,
                )
            except importer.ImportStopped as exc:
                _print_summary(args, exc.result)
                raise stopped_error(
                    args.file, exc.problem, f"{exc.result.loaded:,} contacts were loaded"
                ) from None
            except importer.ImportFileError as exc:
                raise UserError(str(exc)) from None
    _print_summary(args, result)
    return 0


def _print_summary(args: argparse.Namespace, result: importer.ImportResult) -> None:
    errors = f"  (see {result.errors_path})" if result.errors_path else ""
    print(
        f"imported {args.file} into {args.campaign} in {result.seconds:.1f} s "
        f"({result.rows_per_second:,.0f} rows/s)\n"
        f"read:       {result.read}\n"
        f"loaded:     {result.loaded}\n"
        f"duplicates: {result.duplicates}\n"
        f"dnc:        {result.dnc}\n"
        f"rejected:   {result.rejected}{errors}",
        flush=True,
    )


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
    p.add_argument("--batch-rows", type=whole_number(1, MAX_BATCH_ROWS),
                   default=importer.BATCH_ROWS, help=argparse.SUPPRESS)
    p.add_argument("--workers", type=whole_number(0, MAX_WORKERS), default=None,
                   help="parser processes (default: one per CPU for big files, 0: none)")
    p.set_defaults(handler=run)
