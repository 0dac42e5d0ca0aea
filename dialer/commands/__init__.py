"""Sub-commands of ``dialer``; each module adds its parser and a thin handler.

Commands report what the operator must fix by raising one of the errors below; the
CLI (``dialer.cli``) prints its message as one line and exits with its code:
``UsageError`` (2) for what was typed (an option's value, a path that cannot be
used) and for configuration (``ConfigError``: a ``DIALER_*`` setting, the database
it names), ``UserError`` (1) for an operation that failed on the data (no such
campaign, a damaged file). They are raised before anything is written whenever the
problem can be seen in advance.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias, TypeVar
from urllib.parse import unquote, urlsplit

import asyncpg

from dialer import db
from dialer.config import Settings
from dialer.safetext import has_controls, shown, without_controls

if TYPE_CHECKING:
    from rich.table import Table

SubParsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

DATABASE_VARIABLE = "DIALER_DATABASE_URL"
# How long a command waits for the database before saying it cannot reach it.
CONNECT_TIMEOUT_SECONDS = 10.0


class UserError(Exception):
    """A problem the operator can fix; printed without a traceback, exit code 1."""

    exit_code = 1


class UsageError(UserError):
    """What the operator typed cannot be used (an option's value, a path); exit code 2."""

    exit_code = 2


class ConfigError(UserError):
    """A setting (``DIALER_*``) or what it points to cannot be used; exit code 2."""

    exit_code = 2


# ---- the database -------------------------------------------------------------------


def _database_problem(dsn: str) -> str | None:
    """Why a DIALER_DATABASE_URL cannot be a Postgres URL, or None (never the password)."""
    try:
        split = urlsplit(dsn)
        split.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        return f"not a valid URL ({exc})"
    if split.scheme not in ("postgresql", "postgres"):
        return "not a Postgres URL"
    return None


def describe_dsn(dsn: str) -> str:
    """Where a DSN points, for messages: user, host, port and database, no password."""
    split = urlsplit(dsn)
    user = f"{unquote(split.username)}@" if split.username else ""
    host = split.hostname or "localhost"
    try:
        port = f":{split.port}" if split.port else ""
    except ValueError:
        port = ""
    return f"{split.scheme}://{user}{host}{port}{split.path}"


def _configured_dsn(settings: Settings) -> tuple[str, str]:
    """(DSN, the setting that chose it): the configured server, checked to be a
    Postgres URL, else the embedded one in the data directory."""
    url = settings.database_url
    if url is None:
        try:
            return db.resolve_dsn(None, settings.data_dir), "DIALER_DATA_DIR (embedded server)"
        except Exception as exc:  # pgserver fails in many ways; all mean the same here
            detail = " ".join(without_controls(str(exc)).split())[:300]
            raise ConfigError(
                f"DIALER_DATA_DIR: cannot start the embedded Postgres server in "
                f"{settings.data_dir} ({type(exc).__name__}: {detail}); set "
                f"{DATABASE_VARIABLE} to use a server of your own"
            ) from None
    dsn = url.get_secret_value()
    problem = _database_problem(dsn)
    if problem is not None:
        raise ConfigError(
            f"{DATABASE_VARIABLE}: {problem}; expected postgresql://USER@HOST:PORT/DBNAME"
        )
    return dsn, DATABASE_VARIABLE


def database_dsn(settings: Settings) -> str:
    """The DSN of the database the settings name (ConfigError for a malformed URL)."""
    return _configured_dsn(settings)[0]


def _scrubbed(text: str, dsn: str) -> str:
    """``text`` as one line without the DSN's password, should a driver message quote it."""
    password = urlsplit(dsn).password
    for secret in {password, unquote(password)} if password else ():
        text = text.replace(secret, "***")
    return re.sub(r"\s+", " ", without_controls(text)).strip()[:300]


@contextmanager
def _naming_the_database(dsn: str, variable: str) -> Iterator[None]:
    """Connection failures as one ConfigError naming the setting."""
    try:
        yield
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError,
            asyncpg.exceptions.ClientConfigurationError, ValueError) as exc:
        detail = _scrubbed(str(exc) or type(exc).__name__, dsn)
        raise ConfigError(
            f"{variable}: cannot use the database at {describe_dsn(dsn)}: {detail}"
        ) from None


async def _checked(settings: Settings) -> tuple[str, str]:
    dsn, variable = _configured_dsn(settings)
    with _naming_the_database(dsn, variable):
        conn = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT_SECONDS)
        await conn.close()
    return dsn, variable


async def check_database(settings: Settings) -> str:
    """The DSN, after connecting once: a wrong or unreachable database is reported
    naming the setting, before the command does anything."""
    return (await _checked(settings))[0]


async def connect(settings: Settings) -> asyncpg.Connection:
    """One connection to the configured database (ConfigError when it cannot be had)."""
    dsn, variable = await _checked(settings)
    with _naming_the_database(dsn, variable):
        return await db.connect(dsn)


@asynccontextmanager
async def database(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the configured database, whose schema is current."""
    dsn, variable = await _checked(settings)
    async with AsyncExitStack() as stack:
        with _naming_the_database(dsn, variable):
            pool = await stack.enter_async_context(db.open_pool(dsn, max_size=4))
        yield pool


# ---- option values ------------------------------------------------------------------

_Number = TypeVar("_Number", int, float)
_INTEGER = re.compile(r"[+-]?[0-9]{1,18}")
_NUMBER = re.compile(r"[+-]?([0-9]{1,18}(\.[0-9]{0,18})?|\.[0-9]{1,18})([eE][+-]?[0-9]{1,3})?")


def _range_text(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f"from {low:g} to {high:g}"
    return f"at least {low:g}" if low is not None else f"at most {high:g}"


def _bounded(
    parse: Callable[[str], _Number | None], what: str, low: _Number | None, high: _Number | None
) -> Callable[[str], _Number]:
    """An argparse type: ``parse`` the text (None: not ``what``), within [low, high]."""

    def convert(text: str) -> _Number:
        value = parse(text.strip())
        if value is None:
            raise argparse.ArgumentTypeError(f"expected {what}, got {shown(text, 40)}")
        if (low is not None and value < low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(
                f"must be {_range_text(low, high)}, got {shown(text, 40)}"
            )
        return value

    convert.__name__ = what
    return convert


def _integer(text: str) -> int | None:
    return int(text) if _INTEGER.fullmatch(text) else None


def _decimal(text: str) -> float | None:
    value = float(text) if _NUMBER.fullmatch(text) else math.nan
    return value if math.isfinite(value) else None


def whole_number(low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer in ASCII digits, within [low, high] when given."""
    return _bounded(_integer, "a whole number", low, high)


def number(low: float | None = None, high: float | None = None) -> Callable[[str], float]:
    """An argparse type: a finite decimal number, within [low, high] when given."""
    return _bounded(_decimal, "a number", low, high)


def free_text(option: str, value: str | None, limit: int) -> str | None:
    """An operator's note (a reason, a description): at most ``limit`` characters and
    no control characters; None stays None."""
    if value is None:
        return None
    if len(value) > limit:
        raise UsageError(f"{option}: at most {limit} characters, got {len(value):,}")
    if has_controls(value):
        raise UsageError(f"{option}: must not contain control characters or line breaks")
    return value


def writable(path: Path, option: str) -> Path:
    """``path`` if a file can be written there, else UsageError naming the option.

    Checked before any work, by opening the file for appending (which changes
    nothing in an existing file) and removing it again when it did not exist."""
    if path.is_dir():
        raise UsageError(f"{option} {shown(str(path))}: is a directory")
    existed = path.exists()
    try:
        with path.open("a"):
            pass
    except OSError as exc:
        raise UsageError(
            f"{option} {shown(str(path))}: cannot write there ({exc.strerror or exc})"
        ) from None
    if not existed:
        path.unlink(missing_ok=True)
    return path


def key_value_table(title: str, rows: Sequence[tuple[str, str]]) -> Table:
    """One thing's settings as a table of two columns (``campaign show``, ``account
    show``). rich is imported here: every command imports this module."""
    from rich.table import Table

    table = Table(title=title, show_header=False)
    table.add_column("setting", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in rows:
        table.add_row(key, value)
    return table


def register(sub: SubParsers) -> None:
    from dialer.commands import (
        account,
        campaign,
        check,
        demo,
        dnc,
        forecast,
        imports,
        migrate,
        report,
        run,
        sim,
        why,
    )

    for module in (migrate, check, account, campaign, imports, dnc, run, report, forecast,
                   why, sim, demo):
        module.add_parser(sub)
