"""``dialer dnc add|remove|import|list``: the do-not-call lists.

A number goes on the global list, or with ``--campaign`` on one campaign's list, for
good or ``--until`` a date (``dnc import`` also reads an ``expires`` column). Adding
skips the matching contacts not dialed yet, and running daemons stop the calls they
claimed but have not sent. An expired entry stops blocking and stays listed;
``remove`` keeps the entry too, marked with when, by whom (``cli:USER@HOST``) and why,
and does not bring skipped contacts back (re-import them to call them). ``list``
shows every entry with its state (active, expired, removed) and source (import, cli,
opt-out, api, migrated), filtered by ``--campaign``, ``--source``, ``--state`` and
``--origin`` (the campaign whose call recorded an opt-out). A reason is free text of
at most ``MAX_REASON_CHARS`` characters.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import socket
from pathlib import Path

from rich.console import Console
from rich.table import Table

from dialer import dnc, importer, phone, repository
from dialer.commands import SubParsers, UsageError, UserError, database, free_text
from dialer.commands.imports import checked_errors, checked_input, progress_bar, stopped_error
from dialer.config import Settings
from dialer.safetext import shown
from dialer.windows import parse_until

MAX_REASON_CHARS = 500
MAX_BY_CHARS = 200


def _number(raw: str, region: str | None, default_region: str) -> str:
    try:
        return phone.normalize(raw, importer.check_region(region or default_region))
    except phone.InvalidNumber as exc:
        raise UsageError(f"NUMBER: invalid number {shown(raw, 40)}: {exc}") from None
    except ValueError as exc:
        raise UsageError(f"--region: {exc}") from None


async def _campaign_id(pool: repository.Executor, name: str | None) -> int | None:
    if name is None:
        return None
    row = await repository.campaign_by_name(pool, name)
    if row is None:
        raise UserError(f"no campaign named {shown(name)} (see `dialer campaign list`)")
    return int(row["id"])


def _scope(name: str | None) -> str:
    return f"the do-not-call list of {name}" if name else "the global do-not-call list"


def _until(text: str | None) -> dt.datetime | None:
    """--until: a date (no longer blocking from its start, UTC) or an instant, ahead."""
    if text is None:
        return None
    try:
        until = parse_until(text)
    except ValueError as exc:
        raise UsageError(f"--until: {exc}") from None
    if until <= dt.datetime.now(dt.UTC):
        raise UsageError(f"--until: {until:%Y-%m-%d %H:%M} UTC is not in the future")
    return until


def _who() -> str:
    """Who removes an entry from the command line: ``cli:USER@HOST``."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        user = "uid-unknown"
    return f"cli:{user}@{socket.gethostname()}"[:MAX_BY_CHARS]


def _stamp(value: dt.datetime | None) -> str:
    return "" if value is None else f"{value.astimezone(dt.UTC):%Y-%m-%d %H:%M}"


async def add(settings: Settings, args: argparse.Namespace) -> int:
    number = _number(args.number, args.region, settings.default_region)
    reason = free_text("--reason", args.reason, MAX_REASON_CHARS)
    until = _until(args.until)
    async with database(settings) as pool:
        campaign_id = await _campaign_id(pool, args.campaign)
        added, skipped = await repository.dnc_add(pool, number, campaign_id, reason,
                                                  source="cli", expires_at=until)
    verb = "added to" if added else "already on"
    until_text = f" until {_stamp(until)} UTC" if until else ""
    print(f"{number} {verb} {_scope(args.campaign)}{until_text}; {skipped} contact(s) skipped")
    return 0


async def remove(settings: Settings, args: argparse.Namespace) -> int:
    number = _number(args.number, args.region, settings.default_region)
    reason = free_text("--reason", args.reason, MAX_REASON_CHARS)
    by = _who()
    async with database(settings) as pool:
        campaign_id = await _campaign_id(pool, args.campaign)
        removed = await repository.dnc_remove(pool, number, campaign_id, by=by, reason=reason)
    if not removed:
        raise UserError(f"{number} is not on {_scope(args.campaign)}")
    print(f"{number} removed from {_scope(args.campaign)} (kept as history, removed by {by})")
    return 0


async def import_(settings: Settings, args: argparse.Namespace) -> int:
    region = checked_input(args.file, args.region, settings.default_region)
    reason = free_text("--reason", args.reason, MAX_REASON_CHARS)
    until = _until(args.until)
    errors_path = checked_errors(args.file, args.errors)
    async with database(settings) as pool:
        campaign_id = await _campaign_id(pool, args.campaign)
        with progress_bar(args.file) as on_progress:
            try:
                result = await dnc.import_numbers(
                    pool,
                    args.file,
                    campaign_id=campaign_id,
                    reason=reason,
                    expires_at=until,
                    phone_column=args.phone_column,
                    default_region=region,
                    errors_path=errors_path,
                    on_progress=on_progress,
                )
            except importer.ImportStopped as exc:
                _print_summary(args, exc.result)
                raise stopped_error(
                    args.file, exc.problem, f"{exc.result.added:,} numbers were added"
                ) from None
            except importer.ImportFileError as exc:
                raise UserError(str(exc)) from None
    _print_summary(args, result)
    return 0


def _print_summary(args: argparse.Namespace, result: dnc.DncImportResult) -> None:
    errors = f"  (see {result.errors_path})" if result.errors_path else ""
    print(
        f"imported {args.file} into {_scope(args.campaign)} in {result.seconds:.1f} s\n"
        f"read:             {result.read}\n"
        f"added:            {result.added}\n"
        f"already listed:   {result.already_listed}\n"
        f"rejected:         {result.rejected}{errors}\n"
        f"contacts skipped: {result.contacts_skipped}",
        flush=True,
    )


async def list_(settings: Settings, args: argparse.Namespace) -> int:
    async with database(settings) as pool:
        campaign_id = await _campaign_id(pool, args.campaign)
        origin_id = await _campaign_id(pool, args.origin)
        rows = await repository.dnc_list(pool, campaign_id, source=args.source,
                                         state=args.state, origin_campaign_id=origin_id)
    if not rows:
        print(f"no entries on {_scope(args.campaign)}"
              + ("" if args.source is None and args.state is None and args.origin is None
                 else " that match the filters"))
        return 0
    table = Table(title="do-not-call")
    for column in ("phone", "list", "state", "source", "reason", "added", "expires",
                   "origin", "call", "removed"):
        # Numbers, dates and words whole; free text and call SIDs fold.
        table.add_column(column, no_wrap=column not in ("reason", "call", "removed", "list",
                                                        "origin"))
    for row in rows:
        removed = ""
        if row["removed_at"] is not None:
            removed = f"{_stamp(row['removed_at'])} by {shown(row['removed_by'], quoted=False)}"
            if row["removal_reason"]:
                removed += f": {shown(row['removal_reason'], MAX_REASON_CHARS, quoted=False)}"
        table.add_row(
            row["phone"], row["campaign"] or "(all)", row["state"], row["source"],
            shown(row["reason"] or "", MAX_REASON_CHARS, quoted=False), _stamp(row["added_at"]),
            _stamp(row["expires_at"]) or "never", row["origin"] or "", row["call_sid"] or "",
            removed,
        )
    Console().print(table)
    return 0


def add_parser(sub: SubParsers) -> None:
    p = sub.add_parser("dnc", help="manage the do-not-call lists")
    dsub = p.add_subparsers(dest="dnc_command", required=True, metavar="ACTION")

    def scoped(name: str, help_: str) -> argparse.ArgumentParser:
        sp = dsub.add_parser(name, help=help_)
        sp.add_argument("--campaign", metavar="NAME",
                        help="one campaign's list (default: the global list)")
        return sp

    region_help = "country of numbers without +country code (default DIALER_DEFAULT_REGION)"
    until_help = ("stop blocking at this date (YYYY-MM-DD, its start in UTC) or ISO-8601 "
                  "instant; the entry stays listed as history (default: never)")
    ap = scoped("add", "put a number on a list and skip its contacts not dialed yet")
    ap.add_argument("number", metavar="NUMBER")
    ap.add_argument("--reason", help=f"why (kept with the entry; at most {MAX_REASON_CHARS} "
                                     "characters)")
    ap.add_argument("--until", metavar="DATE", help=until_help)
    ap.add_argument("--region", metavar="CC", help=region_help)
    ap.set_defaults(handler=add)

    rp = scoped("remove", "take a number off a list (the entry is kept, marked removed)")
    rp.add_argument("number", metavar="NUMBER")
    rp.add_argument("--reason", help=f"why it is removed (kept; at most {MAX_REASON_CHARS} "
                                     "characters)")
    rp.add_argument("--region", metavar="CC", help=region_help)
    rp.set_defaults(handler=remove)

    ip = scoped("import", "add the numbers of a CSV file (plain or gzip) to a list")
    ip.add_argument("file", metavar="FILE", type=Path)
    ip.add_argument("--phone-column", default="phone", help="header of the phone column")
    ip.add_argument("--reason", help=f"why (kept with each new entry; at most "
                                     f"{MAX_REASON_CHARS} characters)")
    ip.add_argument("--until", metavar="DATE",
                    help=f"for rows whose {importer.EXPIRES_COLUMN} column is empty or "
                         f"missing: {until_help}")
    ip.add_argument("--errors", type=Path, metavar="FILE",
                    help="error CSV (default: FILE without .csv/.gz plus .errors.csv)")
    ip.add_argument("--region", metavar="CC", help=region_help)
    ip.set_defaults(handler=import_)

    lp = scoped("list", "entries of the lists, with their state (with --campaign: those "
                        "applying to it)")
    lp.add_argument("--source", choices=dnc.SOURCES, help="only entries from this source")
    lp.add_argument("--state", choices=dnc.STATES,
                    help="only active, expired or removed entries (default: all)")
    lp.add_argument("--origin", metavar="NAME",
                    help="only opt-outs recorded during this campaign's calls")
    lp.set_defaults(handler=list_)
