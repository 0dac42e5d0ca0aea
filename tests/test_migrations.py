"""Migrations: idempotent, safe to run concurrently, and loaded in order."""

from __future__ import annotations

import asyncio

import asyncpg

from dialer import db
from tests.helpers import run_cli

EXPECTED_TABLES = {
    "accounts", "campaigns", "contacts", "call_attempts", "call_events",
    "dnc_numbers", "workers", "schema_migrations",
}


async def _schema_snapshot(dsn: str) -> list[tuple[str, str, str]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            """SELECT table_name, column_name, data_type FROM information_schema.columns
               WHERE table_schema = 'public' ORDER BY 1, 2"""
        )
    finally:
        await conn.close()
    return [(r[0], r[1], r[2]) for r in rows]


async def _fresh_db(pg_cluster: object, name: str) -> str:
    dsn: str = pg_cluster.dsn("postgres")  # type: ignore[attr-defined]
    admin = await asyncpg.connect(dsn)
    await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    await admin.execute(f"CREATE DATABASE {name}")
    await admin.close()
    return pg_cluster.dsn(name)  # type: ignore[attr-defined,no-any-return]


def test_migration_files_are_numbered_without_gaps() -> None:
    versions = [m.version for m in db.load_migrations()]
    assert versions == list(range(1, len(versions) + 1))


async def test_twice_in_a_row_is_a_no_op(pg_cluster: object) -> None:
    dsn = await _fresh_db(pg_cluster, "mig_twice")
    conn = await db.connect(dsn)
    first = await db.migrate(conn)
    snapshot = await _schema_snapshot(dsn)
    second = await db.migrate(conn)
    await conn.close()
    assert len(first) == len(db.load_migrations())
    assert second == []
    assert await _schema_snapshot(dsn) == snapshot
    assert {t for t, _, _ in snapshot} >= EXPECTED_TABLES


async def test_two_at_once_leave_one_schema(pg_cluster: object) -> None:
    dsn = await _fresh_db(pg_cluster, "mig_parallel")
    conns = [await db.connect(dsn) for _ in range(2)]
    results = await asyncio.gather(*(db.migrate(c) for c in conns))
    for c in conns:
        await c.close()
    assert sorted(len(r) for r in results) == [0, len(db.load_migrations())]
    conn = await asyncpg.connect(dsn)
    count = await conn.fetchval("SELECT count(*) FROM schema_migrations")
    await conn.close()
    assert count == len(db.load_migrations())


async def test_cli_migrate_twice_and_concurrently(pg_cluster: object) -> None:
    dsn = await _fresh_db(pg_cluster, "mig_cli")
    env = {"DIALER_DATABASE_URL": dsn}
    procs = await asyncio.gather(
        *(asyncio.to_thread(run_cli, "migrate", env=env) for _ in range(2))
    )
    assert [p.returncode for p in procs] == [0, 0], [p.stderr for p in procs]
    again = run_cli("migrate", env=env)
    assert again.returncode == 0
    assert "0 migration(s) applied" in again.stdout


async def test_old_schema_is_refused_with_the_fix_named(pg_cluster: object) -> None:
    dsn = await _fresh_db(pg_cluster, "mig_missing")
    result = run_cli("campaign", "list", env={"DIALER_DATABASE_URL": dsn})
    assert result.returncode == 2  # configuration: the database is not set up
    assert "dialer migrate" in result.stderr
