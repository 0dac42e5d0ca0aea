"""What Postgres spends per imported row, and on what: the database side of issue 18.

    .venv/bin/python bench/import_sql.py [--rows 200000] [--no-fsync] [--quick]

Turns a generated contact file into the importer's own COPY lines
(``contactfile.ContactLines``), then COPYs them in batches of ``importer.BATCH_ROWS``
into ``contacts`` (whose campaign is checked once per statement since migration
0007), into a copy with the foreign key it had before, and into copies that each lack
one integrity cost: the campaign check, the phone CHECK, the secondary indexes, WAL
(an unlogged table). Each variant loads into a fresh table on one connection; the figures are
the server process's CPU µs per row (from /proc, so measured, not estimated) and
the wall time. The difference from ``contacts`` is what that piece of integrity
costs. On a loaded machine the CPU figures hold better than the wall times.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import asyncpg
from _common import parser, print_table, process_cpu_seconds

from dialer import db, importer
from dialer.contactfile import COPY_COLUMNS, ContactLines, parse_header
from dialer.testing import make_campaign, throwaway_cluster
from dialer.testing.contact_files import HEADER, contact_rows

# (name, SQL making table bench_t from contacts: LIKE copies CHECKs, indexes and the
# identity, never a foreign key). None: contacts itself.
VARIANTS: list[tuple[str, str | None]] = [
    ("contacts (campaign checked per statement)", None),
    ("foreign key (before migration 0007)",
     "CREATE TABLE bench_t (LIKE contacts INCLUDING ALL);"
     "ALTER TABLE bench_t ADD FOREIGN KEY (campaign_id) REFERENCES campaigns (id) "
     "ON DELETE CASCADE"),
    ("no foreign key", "CREATE TABLE bench_t (LIKE contacts INCLUDING ALL)"),
    ("no FK, no phone CHECK",
     "CREATE TABLE bench_t (LIKE contacts INCLUDING ALL);"
     "ALTER TABLE bench_t DROP CONSTRAINT contacts_phone_check"),
    ("no FK, no secondary index",
     "CREATE TABLE bench_t (LIKE contacts INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
     "INCLUDING IDENTITY); ALTER TABLE bench_t ADD PRIMARY KEY (id), "
     "ADD UNIQUE (campaign_id, phone)"),
    ("no FK, unlogged", "CREATE UNLOGGED TABLE bench_t (LIKE contacts INCLUDING ALL)"),
    # The foreign key's check once per statement instead of once per row: a candidate
    # that keeps the integrity (campaigns locked FOR KEY SHARE, as the FK does).
    ("FK check per statement (trigger)", """
     CREATE TABLE bench_t (LIKE contacts INCLUDING ALL);
     CREATE FUNCTION bench_t_campaigns() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN
         IF EXISTS (SELECT 1 FROM (SELECT DISTINCT campaign_id FROM new_rows) n
                    WHERE NOT EXISTS (SELECT 1 FROM campaigns c WHERE c.id = n.campaign_id
                                      FOR KEY SHARE)) THEN
             RAISE foreign_key_violation USING MESSAGE = 'no such campaign';
         END IF;
         RETURN NULL;
     END $$;
     CREATE TRIGGER bench_t_campaigns AFTER INSERT ON bench_t
         REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
         EXECUTE FUNCTION bench_t_campaigns();"""),
]


def _batches(rows: int, campaign_id: int, ids: int) -> list[bytes]:
    """The importer's COPY text for ``rows`` generated rows, ids from ``ids``."""
    layout = parse_header(HEADER, phone_column="phone", region="US")
    lines = ContactLines(layout, campaign_id)
    numbered = [(i + 2, fields) for i, (fields, _) in enumerate(contact_rows(rows))]
    out: list[bytes] = []
    next_id = ids
    for start in range(0, len(numbered), importer.BATCH_ROWS):
        batch, _ = lines.convert(numbered[start:start + importer.BATCH_ROWS])
        text = []
        for line in batch.lines:
            text.append(f"{next_id}{line}")
            next_id += 1
        out.append("".join(text).encode())
    return out


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _load(dsn: str, table: str, batches: list[bytes]) -> tuple[float, float]:
    """COPY every batch into ``table``, one transaction each: (server CPU s, wall s)."""
    conn = await asyncpg.connect(dsn)
    try:
        backend = await conn.fetchval("SELECT pg_backend_pid()")
        cpu, started = process_cpu_seconds(backend), time.perf_counter()
        for lines in batches:
            await conn.copy_to_table(table, source=_once(lines), columns=COPY_COLUMNS,
                                     format="text")
        return process_cpu_seconds(backend) - cpu, time.perf_counter() - started
    finally:
        await conn.close()


async def _run(dsn: str, rows: int) -> list[list[object]]:
    pool = await db.create_pool(dsn, min_size=1, max_size=2)
    try:
        campaign_id = await make_campaign(pool, "bench", [])
        # Ids far above the sequence: the variants share none with contacts.
        batches = _batches(rows, campaign_id, 10_000_000)
        results: list[list[object]] = []
        for name, create in VARIANTS:
            if create is None:
                table = "contacts"
            else:
                await pool.execute("DROP TABLE IF EXISTS bench_t; "
                                   "DROP FUNCTION IF EXISTS bench_t_campaigns")
                await pool.execute(create)
                table = "bench_t"
            await pool.execute("CHECKPOINT")
            cpu, wall = await _load(dsn, table, batches)
            results.append([name, round(cpu * 1e6 / rows, 2), round(wall * 1e6 / rows, 2),
                            round(rows / wall)])
            if create is None:
                await pool.execute("DELETE FROM contacts WHERE campaign_id = $1", campaign_id)
        return results
    finally:
        await pool.close()


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=200_000)
    options = p.parse_args()
    rows = 20_000 if options.quick else options.rows
    with throwaway_cluster(durable=not options.no_fsync) as postgres:
        dsn = asyncio.run(postgres.new_database("bench_import_sql"))
        results = asyncio.run(_run(dsn, rows))
    print_table(f"COPY of {rows:,} importer lines, batches of {importer.BATCH_ROWS:,}",
                ["target", "server CPU µs/row", "wall µs/row", "rows/s"], results)


if __name__ == "__main__":
    main()
