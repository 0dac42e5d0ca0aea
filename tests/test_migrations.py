"""Migrations: idempotent, safe to run concurrently, and loaded in order."""

from __future__ import annotations

import asyncio

import asyncpg

from dialer import db
from dialer.campaigns import Campaign
from dialer.testing import run_cli

EXPECTED_TABLES = {
    "accounts", "campaigns", "contacts", "call_attempts", "call_events",
    "dnc_numbers", "workers", "schema_migrations", "attempt_compliance", "number_locks",
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


async def test_existing_campaigns_and_contacts_migrate_to_calling_time(pg_cluster: object) -> None:
    """0005: a campaign's window becomes one range on its days, a contact's one zone a
    one-element set; contacts without one get their zones at their next claim."""
    dsn = await _fresh_db(pg_cluster, "mig_calling_time")
    conn = await db.connect(dsn)
    try:
        await conn.execute("CREATE TABLE schema_migrations (version integer PRIMARY KEY, "
                           "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())")
        for migration in db.load_migrations():
            if migration.version < 5:
                await conn.execute(migration.sql)
                await conn.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                                   migration.version, migration.name)
        await conn.execute("INSERT INTO accounts (sid) VALUES ($1)", "AC" + "0" * 32)
        for name, start, end, days, zone in (
            ("office", "09:00", "20:00", [1, 2, 3, 4, 5], "America/New_York"),
            ("evenings", "17:30", "24:00", [6, 7, 1], "UTC"),
        ):
            await conn.execute(
                """INSERT INTO campaigns (name, account_sid, from_number, twiml_url, window_start,
                                          window_end, window_days, default_timezone)
                   VALUES ($1, $2, '+15005550006', 'https://example.com/t', $3::text::time,
                           $4::text::time, $5, $6)""",
                name, "AC" + "0" * 32, start, end, days, zone)
        office = await conn.fetchval("SELECT id FROM campaigns WHERE name = 'office'")
        await conn.execute(
            "INSERT INTO contacts (campaign_id, phone, timezone) VALUES"
            " ($1, '+14155552671', 'America/Los_Angeles'), ($1, '+61412345678', NULL)", office)
        assert await db.migrate(conn)
        campaigns = {r["name"]: r for r in await conn.fetch("SELECT * FROM campaigns")}
        contacts = {r["phone"]: r for r in await conn.fetch("SELECT * FROM contacts")}
    finally:
        await conn.close()
    assert campaigns["office"]["calendar"] == "mon,tue,wed,thu,fri 09:00-20:00"
    assert campaigns["evenings"]["calendar"] == "mon,sat,sun 17:30-24:00"
    # A chosen zone stays; UTC, the old silent default, cannot be told from one and goes.
    assert campaigns["office"]["default_timezone"] == "America/New_York"
    assert campaigns["evenings"]["default_timezone"] is None
    assert (campaigns["office"]["last_call_margin"], campaigns["office"]["rule_packs"]) == (60, [])
    la = contacts["+14155552671"]
    assert (la["zones"], la["zone_source"], la["states"]) == (
        ["America/Los_Angeles"], "migrated", None)
    assert contacts["+61412345678"]["zones"] is None
    # Both load as campaigns of the new kind, their calendars unchanged in meaning.
    assert str(Campaign.from_row(campaigns["evenings"]).spec.calendar) == "mon,sat,sun 17:30-24:00"
