"""The only module that runs SQL against the dialer's tables.

Each function runs one named statement from ``sql/queries.sql`` and returns plain
records; callers decide transactions by passing a connection.
"""

from __future__ import annotations

import asyncpg

from dialer import db, queries

Executor = db.Connection | asyncpg.Pool


async def list_campaigns(db: Executor) -> list[asyncpg.Record]:
    return list(await db.fetch(queries.get("list_campaigns")))
