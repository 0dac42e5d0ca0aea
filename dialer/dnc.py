"""Do-not-call lists: bulk loading of numbers from a CSV file.

A number is on the global list (every campaign) or on one campaign's list. Putting
it there also skips the matching contacts that have not been dialed yet (reason
``dnc``); the dispatcher checks the list again when it claims a contact, so a
number added while a contact is being claimed is still never dialed afterwards.
The file is read by the contact importer's pipeline (same gzip, encoding and
error-file rules), keeping only the phone column.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from dialer import repository
from dialer.importer import ImportStopped, ProgressCallback, Record, run_pipeline

__all__ = ["DncImportResult", "import_numbers"]


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


async def import_numbers(
    pool: asyncpg.Pool,
    path: Path,
    *,
    campaign_id: int | None,
    reason: str | None = None,
    phone_column: str = "phone",
    default_region: str = "US",
    errors_path: Path | None = None,
    on_progress: ProgressCallback | None = None,
) -> DncImportResult:
    """Add every valid number of a CSV file to a list ($campaign_id None: global).

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
                conn, [record[1] for record in records], campaign_id, reason
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
