"""What Postgres spends per imported row, and on what: the database side of issue 18.

    .venv/bin/python bench/import_sql.py [--rows 1000000] [--only NAME ...] [--no-fsync]

Turns a generated contact file into the importer's own COPY lines
(``contactfile.ContactLines``), then COPYs them, one transaction per batch of
``importer.BATCH_ROWS`` as the importer does, into ``contacts`` of a freshly migrated
database, once as migrated and once per variant: ``contacts`` with one piece taken
away (a trigger, the phone CHECK, a secondary index) or one setting changed. Each
variant gets a database of its own, so every load starts from an empty table. The
figures are measured, not estimated: the loading backend's CPU µs per row and all
Postgres processes' (walwriter, checkpointer ... included), both from /proc, the
WAL bytes per row and the wall time. The difference from "as migrated" is what the
piece costs. On a loaded machine the CPU figures hold better than the wall times.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
from _common import parser, print_table, process_cpu_seconds

from dialer import db, importer
from dialer.contactfile import COPY_COLUMNS, ContactLines, parse_header
from dialer.testing import Cluster, make_campaign, throwaway_cluster
from dialer.testing.contact_files import HEADER, contact_rows


@dataclass(frozen=True)
class Variant:
    name: str
    # Run on the variant's database before the load (as the schema's owner).
    schema: str = ""
    # Run on the loading connection before the load.
    session: str = ""
    batch_rows: int = importer.BATCH_ROWS
    # Each batch's rows COPYed in number order (ids still in file order).
    phone_order: bool = False


# The two INSERT triggers before migration 0010, each reading the transition table.
_TWO_TRIGGERS = """
     DROP TRIGGER contacts_inserted ON contacts;
     CREATE FUNCTION contacts_campaign_exists() RETURNS trigger LANGUAGE plpgsql AS $$
     DECLARE
         missing bigint;
     BEGIN
         SELECT n.campaign_id INTO missing
         FROM (SELECT DISTINCT campaign_id FROM new_contacts) AS n
         WHERE NOT EXISTS (SELECT 1 FROM campaigns c WHERE c.id = n.campaign_id
                           FOR KEY SHARE)
         LIMIT 1;
         IF FOUND THEN
             RAISE foreign_key_violation USING MESSAGE = 'no such campaign';
         END IF;
         RETURN NULL;
     END $$;
     CREATE TRIGGER contacts_campaign_exists AFTER INSERT ON contacts
         REFERENCING NEW TABLE AS new_contacts
         FOR EACH STATEMENT EXECUTE FUNCTION contacts_campaign_exists();
     CREATE TRIGGER contacts_counted_insert AFTER INSERT ON contacts
         REFERENCING NEW TABLE AS new_rows
         FOR EACH STATEMENT EXECUTE FUNCTION count_contact_changes();"""
_REGEX_CHECK = ("ALTER TABLE contacts DROP CONSTRAINT contacts_phone_check;"
                "ALTER TABLE contacts ADD CONSTRAINT contacts_phone_check "
                "CHECK (phone ~ '^\\+[1-9][0-9]{1,14}$');")
_NO_TRIGGER = "DROP TRIGGER contacts_inserted ON contacts;"
_NO_CHECK = "ALTER TABLE contacts DROP CONSTRAINT contacts_phone_check;"
_NO_INDEXES = ("DROP INDEX contacts_due; DROP INDEX contacts_called_or_skipped;"
               "DROP INDEX contacts_claimed_by;")

VARIANTS = [
    Variant("as migrated"),
    Variant("before 0010 (regex CHECK, two INSERT triggers)", _REGEX_CHECK + _TWO_TRIGGERS),
    Variant("two INSERT triggers (before 0010)", _TWO_TRIGGERS),
    Variant("phone CHECK by regex (before 0010)", _REGEX_CHECK),
    Variant("no INSERT trigger (no transition table)", _NO_TRIGGER),
    Variant("no phone CHECK", _NO_CHECK),
    Variant('phone COLLATE "C"', 'ALTER TABLE contacts ALTER COLUMN phone TYPE text COLLATE "C"'),
    Variant("no attributes CHECK",
            "ALTER TABLE contacts DROP CONSTRAINT contacts_attributes_check"),
    Variant("no index contacts_due", "DROP INDEX contacts_due"),
    Variant("index contacts_campaign_state (before 0012)",
            "DROP INDEX contacts_called_or_skipped;"
            "CREATE INDEX contacts_campaign_state ON contacts (campaign_id, state)"),
    Variant("no index contacts_called_or_skipped", "DROP INDEX contacts_called_or_skipped"),
    Variant("no index contacts_claimed_by", "DROP INDEX contacts_claimed_by"),
    Variant("work_mem 64MB", session="SET work_mem = '64MB'"),
    Variant("synchronous_commit off", session="SET synchronous_commit = off"),
    Variant("batches of 100,000", batch_rows=100_000),
    Variant("each batch in number order", phone_order=True),
    Variant("no trigger, no phone CHECK, no secondary index",
            _NO_TRIGGER + _NO_CHECK + _NO_INDEXES),
]


def _lines(rows: int, campaign_id: int) -> list[str]:
    """The importer's COPY lines (without the id) for ``rows`` generated rows."""
    layout = parse_header(HEADER, phone_column="phone", region="US")
    convert = ContactLines(layout, campaign_id)
    lines: list[str] = []
    chunk: list[tuple[int, list[str]]] = []
    for i, (fields, _) in enumerate(contact_rows(rows)):
        chunk.append((i + 2, fields))
        if len(chunk) == importer.BATCH_ROWS:
            lines.extend(convert.convert(chunk)[0].lines)
            chunk = []
    lines.extend(convert.convert(chunk)[0].lines)
    return lines


def _batches(lines: list[str], variant: Variant) -> list[bytes]:
    size = variant.batch_rows
    batches = []
    for start in range(0, len(lines), size):
        numbered = list(enumerate(lines[start:start + size], start + 1))
        if variant.phone_order:
            numbered.sort(key=lambda item: item[1].split("\t", 3)[2])
        batches.append("".join(f"{n}{line}" for n, line in numbered).encode())
    return batches


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _load(dsn: str, postmaster: int, variant: Variant,
                batches: list[bytes]) -> tuple[float, float, float, int]:
    """COPY every batch into an emptied contacts, one transaction each: (backend CPU
    s, all of Postgres's CPU s, wall s, WAL bytes)."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("TRUNCATE contacts, campaign_counts CASCADE")
        if variant.session:
            await conn.execute(variant.session)
        await conn.execute("CHECKPOINT")
        backend = await conn.fetchval("SELECT pg_backend_pid()")
        if os.environ.get("BENCH_PERF"):  # profile the backend: perf record -p PID
            print(f"backend {backend}", flush=True)
            await asyncio.sleep(float(os.environ["BENCH_PERF"]))
        wal = await conn.fetchval("SELECT pg_current_wal_insert_lsn()")
        cpu, everything = process_cpu_seconds(backend), process_cpu_seconds(postmaster,
                                                                             children=True)
        started = time.perf_counter()
        for lines in batches:
            await conn.copy_to_table("contacts", source=_once(lines), columns=COPY_COLUMNS,
                                     format="text")
        wall = time.perf_counter() - started
        cpu = process_cpu_seconds(backend) - cpu
        everything = process_cpu_seconds(postmaster, children=True) - everything
        wal_bytes = await conn.fetchval(
            "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), $1)::bigint", wal)
        return cpu, everything, wall, int(wal_bytes)
    finally:
        await conn.close()


async def _run(postgres: Cluster, rows: int, only: list[str],
               repeat: int) -> list[list[object]]:
    """Each variant ``repeat`` times, round-robin (a load that drifts meanwhile
    touches them all alike); the best of each (least disturbed by other processes)."""
    variants = [v for v in VARIANTS if not only or any(o in v.name for o in only)]
    dsns: list[str] = []
    campaign_id = 0
    for number, variant in enumerate(variants):
        dsns.append(await postgres.new_database(f"bench_import_sql_{number}"))
        pool = await db.create_pool(dsns[-1], min_size=1, max_size=2)
        try:
            campaign_id = await make_campaign(pool, "bench", [])
            if variant.schema:
                await pool.execute(variant.schema)
        finally:
            await pool.close()
    lines = _lines(rows, campaign_id)  # every database's first campaign has this id
    best: dict[str, list[float]] = {}
    for _ in range(repeat):
        for dsn, variant in zip(dsns, variants, strict=True):
            cpu, everything, wall, wal = await _load(dsn, postgres.pid, variant,
                                                     _batches(lines, variant))
            n = len(lines)
            figures = [cpu * 1e6 / n, everything * 1e6 / n, wal / n, wall * 1e6 / n]
            print(variant.name, *(round(f, 2) for f in figures), sep=" | ", flush=True)
            old = best.setdefault(variant.name, figures)
            best[variant.name] = [min(a, b) for a, b in zip(old, figures, strict=True)]
    return [[name, round(cpu, 2), round(everything, 2), round(wal), round(wall, 2),
             round(1e6 / wall)] for name, (cpu, everything, wal, wall) in best.items()]


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--only", nargs="*", default=[], help="variants whose name contains one")
    p.add_argument("--repeat", type=int, default=2, help="loads per variant (the best counts)")
    options = p.parse_args()
    rows = 20_000 if options.quick else options.rows
    with throwaway_cluster(durable=not options.no_fsync) as postgres:
        results = asyncio.run(_run(postgres, rows, options.only, options.repeat))
    print_table(f"COPY of {rows:,} generated rows as the importer's lines (distinct numbers "
                f"only), one transaction per batch; best of {options.repeat}",
                ["contacts", "backend CPU µs/row", "all Postgres CPU µs/row", "WAL B/row",
                 "wall µs/row", "rows/s"], results)


if __name__ == "__main__":
    main()
