"""Do-not-call lists: what an entry is, bulk loading from a CSV file, and how a number
put on a list stops calls already claimed.

A number is on the global list (every campaign) or on one campaign's list. An entry
says where it came from (``SOURCES``), why, when it was added and, optionally, until
when it blocks; an expired entry stops blocking and stays as history, and ``dnc
remove`` marks an entry removed (when, by whom or what, why) rather than deleting it.
"Active" is defined once, in SQL (``dnc_entry_active``, view ``dnc_active``,
migration 0008), for every check: the claim, the import, `dialer why`.

Putting a number on a list skips the matching contacts that have not been dialed yet
(reason ``dnc``), and the claim checks the list again. A contact claimed before the
entry and not yet sent is stopped too: the table's trigger (``dnc_listed``, migration
0008: however the entry was written) sends NOTIFY ``dialer_dnc`` with the number, every
daemon notes it in its ``DncBarrier`` (checked
just before each request goes out) and asks the database which of its claims are now
listed (also at every poll, in case a notification was lost), and hands them back as
skipped.

A CSV file is read by the contact importer's pipeline (same gzip, encoding and
error-file rules), keeping the phone column and an optional ``expires`` column.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from dialer import repository
from dialer.importer import (
    EXPIRES_COLUMN,
    ImportStopped,
    ProgressCallback,
    Record,
    run_pipeline,
)

__all__ = ["SOURCES", "STATES", "DncBarrier", "DncImportResult", "import_numbers"]

# Where an entry came from: `dnc import`, `dnc add`, a key pressed during a call, another
# program writing to the database (the column's default), or before migration 0008.
SOURCES = ("import", "cli", "opt-out", "api", "migrated")
STATES = ("active", "expired", "removed")
NOTIFY_CHANNEL = "dialer_dnc"
# How long a number notified as listed is remembered: longer than any claim waits in
# memory before it is sent or handed back.
BARRIER_SECONDS = 600.0


@dataclass(frozen=True, slots=True)
class DncImportResult:
    """What a ``dnc import`` did. ``read`` = added + already_listed + rejected, where
    ``already_listed`` includes numbers repeated within the file."""

    read: int
    added: int
    already_listed: int
    rejected: int
    contacts_skipped: int
    errors_path: Path | None
    seconds: float


def _entry(record: Record) -> tuple[str, dt.datetime | None]:
    """(number, expiry) of a parsed row: the importer keeps the expiry in its attributes."""
    expires = json.loads(record[6]).get(EXPIRES_COLUMN) if record[6] != "{}" else None
    return record[1], None if expires is None else dt.datetime.fromisoformat(expires)


async def import_numbers(
    pool: asyncpg.Pool,
    path: Path,
    *,
    campaign_id: int | None,
    reason: str | None = None,
    expires_at: dt.datetime | None = None,
    phone_column: str = "phone",
    default_region: str = "US",
    errors_path: Path | None = None,
    on_progress: ProgressCallback | None = None,
) -> DncImportResult:
    """Add every valid number of a CSV file to a list ($campaign_id None: global), each
    until its ``expires`` cell, else ``expires_at`` (None: for good).

    Each batch is one transaction, so an interrupted import can simply be re-run;
    ``ImportStopped`` (with the result so far) when the file is damaged part way.
    """
    started = time.perf_counter()
    added = skipped = valid = 0
    async with pool.acquire() as conn:
        await repository.create_dnc_staging(conn)

        async def merge(records: list[Record]) -> None:
            nonlocal added, skipped, valid
            _, batch_added, batch_skipped = await repository.merge_dnc_batch(
                conn, [_entry(record) for record in records], campaign_id, reason,
                expires_at=expires_at,
            )
            added += batch_added
            skipped += batch_skipped
            valid += len(records)

        outcome = await run_pipeline(
            path,
            merge,
            phone_column=phone_column,
            region=default_region,
            errors_path=errors_path,
            contacts=False,
            on_progress=on_progress,
        )
    result = DncImportResult(
        read=outcome.read,
        added=added,
        already_listed=valid - added,
        rejected=outcome.rejected,
        contacts_skipped=skipped,
        errors_path=outcome.errors_path,
        seconds=time.perf_counter() - started,
    )
    if outcome.stopped is not None:
        raise ImportStopped(outcome.stopped, result)
    return result


class DncBarrier:
    """What a daemon learns from NOTIFY ``dialer_dnc``: numbers just put on a list (the
    global one, or a campaign's) and when it heard, checked before each request is
    sent, and whether its claims must be looked up again (a bulk import names no
    number). Times are ``time.monotonic()``."""

    def __init__(self) -> None:
        self._barred: dict[tuple[str, int | None], float] = {}
        self.check_due = False

    def note(self, payload: str) -> None:
        """A notification's payload: "" (look everything up), "+1415..." (the global
        list) or "+1415... 42" (campaign 42's list). Anything else only asks for the
        lookup: any database user can send notifications, and the lookup decides."""
        self.check_due = True
        phone, _, scope = payload.partition(" ")
        if phone.startswith("+") and phone[1:].isdigit() and len(phone) <= 16 and (
                not scope or scope.isdigit()):
            self.bar(phone, int(scope) if scope else None)

    def bar(self, phone: str, campaign_id: int | None) -> None:
        """``phone`` is on the global list (``campaign_id`` None) or a campaign's, as of now."""
        now = time.monotonic()
        if len(self._barred) >= 10_000:
            self._barred = {k: t for k, t in self._barred.items() if now - t < BARRIER_SECONDS}
        self._barred[(phone, campaign_id)] = now

    def bars(self, phone: str, campaign_id: int, *, claimed_since: float) -> bool:
        """Whether a call of ``campaign_id`` to ``phone``, whose claim began at
        ``claimed_since``, must not be sent: its number was listed after the claim
        began, so the claim may not have seen the entry (a claim that began later did)."""
        barred = self._barred
        if not barred:
            return False
        noted = max(barred.get((phone, None), -1.0), barred.get((phone, campaign_id), -1.0))
        return noted >= claimed_since
