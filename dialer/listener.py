"""LISTEN for changes other processes make: campaigns (``dialer_campaigns``) and
accounts (``dialer_accounts``), on a connection of its own.

A NOTIFY is only a wake-up, never the source of truth: the dispatchers poll their
campaigns and the daemon its accounts anyway, so a lost connection delays reactions,
it does not lose them. After reconnecting, both wake-ups fire (notifications may have
been missed while away).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import asyncpg
import structlog

from dialer import repository
from dialer.repository import DATABASE_ERRORS

log = structlog.get_logger(__name__)

CAMPAIGN_CHANNEL = "dialer_campaigns"
ACCOUNT_CHANNEL = "dialer_accounts"
KEEPALIVE_SECONDS = 5.0


class Listener:
    """``run`` keeps the LISTEN connection up (a supervised task); ``close`` ends it."""

    def __init__(self, dsn: str, *, on_campaigns: Callable[[], None],
                 on_accounts: Callable[[], None]) -> None:
        self._dsn = dsn
        self._on_campaigns = on_campaigns
        self._on_accounts = on_accounts
        self._conn: asyncpg.Connection | None = None

    def _campaigns(self, *_: Any) -> None:
        self._on_campaigns()

    def _accounts(self, *_: Any) -> None:
        self._on_accounts()

    async def run(self) -> None:
        delay = 0.5
        while True:
            try:
                if self._conn is None or self._conn.is_closed():
                    self._conn = await asyncpg.connect(self._dsn)
                    await self._conn.add_listener(CAMPAIGN_CHANNEL, self._campaigns)
                    await self._conn.add_listener(ACCOUNT_CHANNEL, self._accounts)
                    self._campaigns()
                    self._accounts()
                    delay = 0.5
                await repository.ping(self._conn)
                await asyncio.sleep(KEEPALIVE_SECONDS)
            except DATABASE_ERRORS as exc:
                log.warning("listener_reconnecting", error=repr(exc), retry_in=delay)
                self._conn = None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10)

    async def close(self) -> None:
        if self._conn is not None and not self._conn.is_closed():
            await self._conn.close()
