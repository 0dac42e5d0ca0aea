"""A throwaway Postgres for tests and benchmarks: a ``pgserver`` cluster in a temporary
directory, a database migrated once as a template, and fresh databases cloned from it
with ``CREATE DATABASE ... TEMPLATE`` (milliseconds each).
"""

from __future__ import annotations

import contextlib
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from dialer import db

TEMPLATE = "dialer_template"


def dsn_for(base: str, dbname: str) -> str:
    parts = urlsplit(base)
    return urlunsplit(parts._replace(path="/" + dbname))


class Cluster:
    """A running throwaway server: its databases, and fresh migrated ones on demand."""

    def __init__(self, server: Any) -> None:
        self._server = server
        self.base_dsn = str(server.get_uri())
        self._template_ready = False

    def dsn(self, dbname: str) -> str:
        return dsn_for(self.base_dsn, dbname)

    @property
    def pid(self) -> int:
        """The postmaster's process id."""
        return int(self._server.get_pid())

    def psql(self, command: str) -> None:
        self._server.psql(command)

    async def migrated_template(self) -> str:
        """The template database, migrated (built on first use)."""
        if not self._template_ready:
            admin = await asyncpg.connect(self.dsn("postgres"))
            try:
                await admin.execute(f"DROP DATABASE IF EXISTS {TEMPLATE}")
                await admin.execute(f"CREATE DATABASE {TEMPLATE}")
            finally:
                await admin.close()
            conn = await db.connect(self.dsn(TEMPLATE))
            try:
                await db.migrate(conn)
            finally:
                await conn.close()
            self._template_ready = True
        return TEMPLATE

    async def new_database(self, name: str) -> str:
        """A fresh database cloned from the migrated template; its DSN."""
        template = await self.migrated_template()
        admin = await asyncpg.connect(self.dsn("postgres"))
        try:
            await admin.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
        finally:
            await admin.close()
        return self.dsn(name)

    async def drop_database(self, name: str) -> None:
        admin = await asyncpg.connect(self.dsn("postgres"))
        try:
            await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        finally:
            await admin.close()


@contextlib.contextmanager
def throwaway_cluster(*, durable: bool = True, max_connections: int | None = None
                      ) -> Iterator[Cluster]:
    """A cluster of its own, deleted afterwards. Durable (the server's defaults) unless
    asked otherwise: "durably recorded" means fsynced; tests do not need it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pgserver asks platformdirs for a runtime dir
        from pgserver.postgres_server import get_server

        root = Path(tempfile.mkdtemp(prefix="dialer-pg-"))
        server = get_server(root, cleanup_mode="delete")
    try:
        if not durable:
            for setting in ("fsync", "synchronous_commit", "full_page_writes"):
                server.psql(f"ALTER SYSTEM SET {setting} = off;")
        if max_connections is not None:
            server.psql(f"ALTER SYSTEM SET max_connections = {max_connections};")
        if not durable or max_connections is not None:
            server.psql("SELECT pg_reload_conf();")
        yield Cluster(server)
    finally:
        server.cleanup()
