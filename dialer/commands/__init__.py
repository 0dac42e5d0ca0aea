"""Sub-commands of ``dialer``; each module adds its parser and a thin handler."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypeAlias

import asyncpg

from dialer import db
from dialer.config import Settings

SubParsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


class UserError(Exception):
    """A problem the operator can fix; printed without a traceback, exit code 1."""


def database_dsn(settings: Settings) -> str:
    url = settings.database_url
    return db.resolve_dsn(url.get_secret_value() if url else None, settings.data_dir)


@asynccontextmanager
async def database(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    async with db.open_pool(database_dsn(settings), max_size=4) as pool:
        yield pool


def register(sub: SubParsers) -> None:
    from dialer.commands import campaign, check, demo, dnc, imports, migrate, report, run, sim

    for module in (migrate, check, campaign, imports, dnc, run, report, sim, demo):
        module.add_parser(sub)
