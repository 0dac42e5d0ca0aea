"""Postgres plumbing: where the server is, the pool, and the schema migrations.

When no ``DIALER_DATABASE_URL`` is set the dialer runs its own Postgres from the
``pgserver`` package in the data directory, so a laptop needs nothing installed.
Migrations are the numbered files in ``sql/migrations``; they are applied under an
advisory lock so two processes migrating at once leave one schema.
"""

from __future__ import annotations

import asyncio
import json
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import asyncpg
import structlog
from asyncpg.pool import PoolConnectionProxy

log = structlog.get_logger(__name__)

POOL_CLOSE_SECONDS = 5.0
# Any constant works; it only has to be the same for every dialer process.
_MIGRATION_LOCK = 0x6469616C6572  # "dialer"


# A connection of its own or one borrowed from a pool: both run statements alike.
Connection = asyncpg.Connection | PoolConnectionProxy


class SchemaNotCurrent(Exception):
    """The database lacks migrations this code needs."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations() -> list[Migration]:
    """The migration files in version order; names are ``NNNN_description.sql``."""
    folder = resources.files("dialer.sql").joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            version, _, name = entry.name.removesuffix(".sql").partition("_")
            found.append(Migration(int(version), name, entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration versions in {versions}")
    return found


def embedded_dsn(data_dir: Path) -> str:
    """Start (or join) the embedded server; it stops when its last user exits."""
    pgdata = data_dir / "pgdata"
    pgdata.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # pgserver asks platformdirs for a runtime dir it does not need on Linux.
        warnings.simplefilter("ignore")
        from pgserver.postgres_server import get_server  # only needed without a URL

        server = get_server(pgdata, cleanup_mode="stop")
    log.info("embedded_postgres", pgdata=str(pgdata))
    return str(server.get_uri())


async def _init_connection(conn: Connection) -> None:
    for kind in ("json", "jsonb"):
        await conn.set_type_codec(kind, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def connect(dsn: str) -> asyncpg.Connection:
    conn: asyncpg.Connection = await asyncpg.connect(dsn)
    await _init_connection(conn)
    return conn


async def _keep_session(conn: asyncpg.Connection) -> None:
    """A pool's reset that sends nothing: asyncpg has already rolled back a transaction
    left open and dropped the connection's listeners by then."""


async def create_pool(dsn: str, *, min_size: int = 2, max_size: int = 10,
                      session_state: bool = True) -> asyncpg.Pool:
    """``session_state`` False: for a pool whose statements leave no state in the
    session (advisory locks only ``_xact``, settings only ``SET LOCAL``, LISTEN on a
    connection of its own), as the daemon's. Each release then skips asyncpg's reset
    query (advisory unlock all, CLOSE ALL, UNLISTEN *, RESET ALL), one more round trip
    and statement for Postgres after every query of the pool. Imports take a session
    lock, released with the connection: they need the reset."""
    pool = await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, init=_init_connection,
        reset=None if session_state else _keep_session,
    )
    assert pool is not None
    return pool


async def applied_versions(conn: Connection) -> set[int]:
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return set()
    return {row["version"] for row in await conn.fetch("SELECT version FROM schema_migrations")}


async def migrate(conn: Connection) -> list[Migration]:
    """Apply what is missing, each migration in its own transaction; returns what ran."""
    ran: list[Migration] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version integer PRIMARY KEY,
                   name text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = await applied_versions(conn)
        for migration in load_migrations():
            if migration.version in done:
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    migration.version,
                    migration.name,
                )
            log.info("migration_applied", version=migration.version, name=migration.name)
            ran.append(migration)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
    return ran


async def check_schema(conn: Connection) -> None:
    """Refuse to run on an old schema, naming the command that fixes it."""
    missing = {m.version for m in load_migrations()} - await applied_versions(conn)
    if missing:
        raise SchemaNotCurrent(
            f"database schema is missing migrations {sorted(missing)}: run `dialer migrate`"
        )


def resolve_dsn(database_url: str | None, data_dir: Path) -> str:
    """The configured server, else the embedded one."""
    return database_url if database_url else embedded_dsn(data_dir)


@asynccontextmanager
async def open_pool(dsn: str, *, max_size: int = 10,
                    session_state: bool = True) -> AsyncIterator[asyncpg.Pool]:
    """A pool on a database whose schema is current (SchemaNotCurrent otherwise);
    ``session_state`` as for ``create_pool``."""
    pool = await create_pool(dsn, max_size=max_size, session_state=session_state)
    try:
        async with pool.acquire() as conn:
            await check_schema(conn)
        yield pool
    finally:
        # close() waits for every connection to be given back, and one given back from
        # a cancelled query (Ctrl-C) first waits for the server to cancel it: bounded, so
        # that no command can hang on its way out.
        try:
            await asyncio.wait_for(pool.close(), POOL_CLOSE_SECONDS)
        except TimeoutError:
            log.warning("database_pool_terminated", after_seconds=POOL_CLOSE_SECONDS)
            pool.terminate()
