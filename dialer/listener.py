"""LISTEN for changes other processes make: campaigns (``dialer_campaigns``),
accounts (``dialer_accounts``) and numbers put on a do-not-call list (``dialer_dnc``,
see ``dialer.dnc``), on a connection of its own.

A NOTIFY is only a wake-up, never the source of truth: the dispatchers poll their
campaigns (and look their claims up on the lists) and the daemon its accounts anyway,
so a lost connection delays reactions, it does not lose them. After reconnecting,
every wake-up fires, the do-not-call one with the empty payload that asks for the
look-up (notifications may have been missed while away).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import asyncpg
import structlog

from dialer import metrics, repository
from dialer.dnc import NOTIFY_CHANNEL as DNC_CHANNEL
from dialer.repository import DATABASE_ERRORS

log = structlog.get_logger(__name__)

CAMPAIGN_CHANNEL = "dialer_campaigns"
ACCOUNT_CHANNEL = "dialer_accounts"
KEEPALIVE_SECONDS = 5.0


class Listener:
    """``run`` keeps the LISTEN connection up (a supervised task); ``close`` ends it."""

    def __init__(self, dsn: str, *, on_campaigns: Callable[[], None],
                 on_accounts: Callable[[], None], on_dnc: Callable[[str], None]) -> None:
        self._dsn = dsn
        self._on_campaigns = on_campaigns
        self._on_accounts = on_accounts
        self._on_dnc = on_dnc
        self._conn: asyncpg.Connection | None = None

    def _campaigns(self, *_: Any) -> None:
        self._on_campaigns()

    def _accounts(self, *_: Any) -> None:
        self._on_accounts()

    def _dnc(self, connection: Any, pid: int, channel: str, payload: object) -> None:
        self._on_dnc(str(payload))

    async def run(self) -> None:
        delay = 0.5
        while True:
            try:
                if self._conn is None or self._conn.is_closed():
                    self._conn = await asyncpg.connect(self._dsn)
                    await self._conn.add_listener(CAMPAIGN_CHANNEL, self._campaigns)
                    await self._conn.add_listener(ACCOUNT_CHANNEL, self._accounts)
                    await self._conn.add_listener(DNC_CHANNEL, self._dnc)
                    self._on_dnc("")
                    self._campaigns()
                    self._accounts()
                    delay = 0.5
                await repository.ping(self._conn)
                await asyncio.sleep(KEEPALIVE_SECONDS)
            except DATABASE_ERRORS as exc:
                metrics.DATABASE_ERRORS.labels("listener").inc()
                log.warning("listener_reconnecting", error=repr(exc), retry_in=delay)
                self._conn = None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10)

    async def close(self) -> None:
        if self._conn is not None and not self._conn.is_closed():
            await self._conn.close()
