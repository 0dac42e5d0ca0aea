"""``dialer account add|edit|list|show|remove``: the Twilio accounts, as data.

Each account has its own CPS, concurrent-call limit and REST requests in flight; a
label names it for operators (``campaign create --account acme``). Its auth token is
never an option and never stored: it comes from the credentials file or systemd
credentials (``dialer.credentials``), and ``list``/``show`` say only where this
command finds it. Running daemons apply a change within seconds (NOTIFY; a new token
after ``systemctl reload``).

The default account (``DIALER_TWILIO_ACCOUNT_SID``) takes its limits from the
settings, so only its label can be edited here, and it cannot be removed while it is
the default. A bad SID, label or limit is a usage error (exit 2); an unknown account,
a taken SID or label, or removing an account that has campaigns fails (exit 1).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg
from rich.console import Console
from rich.table import Table

from dialer import accounts, credentials, repository
from dialer.commands import (
    ConfigError,
    SubParsers,
    UsageError,
    UserError,
    database,
    key_value_table,
    number,
)
from dialer.config import Settings
from dialer.credentials import CredentialsError, Keyring
from dialer.safetext import shown

_NONE_WORDS = frozenset({"none", "off", "unlimited"})
_DEFAULT_WORDS = frozenset({"default"})


def _sid(text: str) -> str:
    try:
        return accounts.check_sid(text.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc}, got {shown(text, 40)}") from None


def _label(text: str) -> str | None:
    if text.strip().lower() in _NONE_WORDS:
        return None
    try:
        return accounts.check_label(text.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc}, got {shown(text, 40)}") from None


def _limit(words: frozenset[str], high: int) -> Callable[[str], int | None]:
    """An argparse type: a whole number from 1 to ``high``, or one of ``words`` (None)."""

    def convert(text: str) -> int | None:
        if text.strip().lower() in words:
            return None
        if not text.strip().isdigit() or not 1 <= int(text) <= high:
            raise argparse.ArgumentTypeError(
                f"expected a whole number from 1 to {high} or {'/'.join(sorted(words))}, "
                f"got {shown(text, 40)}")
        return int(text)

    convert.__name__ = "limit"
    return convert


@dataclass(frozen=True, slots=True)
class _Limits:
    label: str | None
    cps: float
    max_concurrent_calls: int | None
    max_in_flight: int | None


_UNSET = object()
"""The default of every option: "not given", so that ``none`` can mean "no limit"."""


def _given(args: argparse.Namespace, name: str) -> bool:
    return getattr(args, name) is not _UNSET

_LIMIT_OPTIONS = {"cps": "--cps", "max_concurrent": "--max-concurrent",
                  "max_in_flight": "--max-in-flight"}


def _limits(args: argparse.Namespace, base: _Limits) -> _Limits:
    cps = args.cps if _given(args, "cps") else base.cps
    if cps <= 0:
        raise UsageError(f"--cps: must be above 0, got {cps:g}")
    return _Limits(
        label=args.label if _given(args, "label") else base.label,
        cps=cps,
        max_concurrent_calls=(args.max_concurrent if _given(args, "max_concurrent")
                              else base.max_concurrent_calls),
        max_in_flight=args.max_in_flight if _given(args, "max_in_flight") else base.max_in_flight,
    )


def _refuse_default_limits(settings: Settings, sid: str, args: argparse.Namespace) -> None:
    given = [option for name, option in _LIMIT_OPTIONS.items() if _given(args, name)]
    if sid == settings.twilio_account_sid and given:
        raise ConfigError(
            f"{', '.join(given)}: {sid} is the default account (DIALER_TWILIO_ACCOUNT_SID), "
            "whose limits come from DIALER_TWILIO_CPS, DIALER_TWILIO_MAX_CONCURRENT_CALLS "
            "and DIALER_TWILIO_MAX_IN_FLIGHT; only its --label can be edited here")


async def _row(pool: repository.Executor, key: str) -> asyncpg.Record:
    row = await repository.account_by_key(pool, key.strip())
    if row is None:
        raise UserError(f"no account {shown(key)} (see `dialer account list`)")
    return row


def _keyring(settings: Settings) -> tuple[Keyring, str | None]:
    """The credentials this command can see, and why it sees none if it cannot."""
    try:
        return credentials.load(settings), None
    except CredentialsError as exc:
        return Keyring({}), str(exc)


def _token_source(keyring: Keyring, sid: str) -> str:
    secret = keyring[sid].auth_token
    return "none found here" if secret is None else secret.source


def _limit_text(value: int | None, none: str) -> str:
    return none if value is None else str(value)


async def add(settings: Settings, args: argparse.Namespace) -> int:
    sid: str = args.sid
    if sid == settings.twilio_account_sid:
        raise ConfigError(
            f"{sid} is the default account (DIALER_TWILIO_ACCOUNT_SID): it needs no "
            f"adding, and its limits come from the settings; `dialer account edit {sid} "
            "--label TEXT` names it")
    limits = _limits(args, _Limits(label=None, cps=1.0, max_concurrent_calls=None,
                                   max_in_flight=None))
    async with database(settings) as pool:
        if await repository.account_by_key(pool, sid) is not None:
            raise UserError(f"account {sid} exists already (see `dialer account show {sid}`)")
        if limits.label is not None and await repository.account_by_key(
                pool, limits.label) is not None:
            raise UserError(f"--label: {limits.label!r} names another account already")
        if not await repository.insert_account(
                pool, sid, label=limits.label, cps=limits.cps,
                max_concurrent_calls=limits.max_concurrent_calls,
                max_in_flight=limits.max_in_flight):
            raise UserError(f"account {sid} or label {limits.label!r} was taken meanwhile")
    keyring, problem = _keyring(settings)
    name = f"{sid} ({limits.label})" if limits.label else sid
    print(f"account {name} added: {limits.cps:g} CPS, max concurrent "
          f"{_limit_text(limits.max_concurrent_calls, 'no limit')}, max in flight "
          f"{_limit_text(limits.max_in_flight, 'default')}")
    if keyring.token(sid) is None:
        print(f"next: give its token as {sid}=TOKEN in the credentials file "
              f"({credentials.FILE_SETTING}, mode 0600) or as the credential "
              f"{credentials.TOKEN_CREDENTIAL}{sid}, then `systemctl reload dialer`"
              + (f" ({problem})" if problem else ""))
    return 0


async def edit(settings: Settings, args: argparse.Namespace) -> int:
    async with database(settings) as pool:
        row = await _row(pool, args.account)
        sid = row["sid"]
        _refuse_default_limits(settings, sid, args)
        before = _Limits(row["label"], float(row["cps"]), row["max_concurrent_calls"],
                         row["max_in_flight"])
        after = _limits(args, before)
        if after == before:
            print(f"account {sid}: nothing changed")
            return 0
        if after.label is not None and after.label != before.label:
            other = await repository.account_by_key(pool, after.label)
            if other is not None:
                raise UserError(f"--label: {after.label!r} names another account already")
        if not await repository.update_account(
                pool, sid, label=after.label, cps=after.cps,
                max_concurrent_calls=after.max_concurrent_calls,
                max_in_flight=after.max_in_flight):
            raise UserError(f"account {sid} was removed meanwhile")
    changed = [name for name, old, new in (
        ("label", before.label, after.label), ("cps", before.cps, after.cps),
        ("max concurrent", before.max_concurrent_calls, after.max_concurrent_calls),
        ("max in flight", before.max_in_flight, after.max_in_flight)) if old != new]
    print(f"account {sid} updated: {', '.join(changed)}")
    return 0


async def list_(settings: Settings, args: argparse.Namespace) -> int:
    async with database(settings) as pool:
        rows = await repository.list_accounts(pool)
    keyring, problem = _keyring(settings)
    table = Table(title="accounts")
    for column in ("sid", "label", "cps", "max concurrent", "max in flight", "campaigns",
                   "running", "token"):
        table.add_column(column)
    for row in rows:
        sid = row["sid"]
        cps, concurrent = float(row["cps"]), row["max_concurrent_calls"]
        in_flight = _limit_text(row["max_in_flight"], "default")
        if sid == settings.twilio_account_sid:  # what the daemon applies, from settings
            cps, concurrent = settings.twilio_cps, settings.twilio_max_concurrent_calls
            in_flight = str(settings.twilio_max_in_flight)
        table.add_row(sid, row["label"] or "", f"{cps:g}", _limit_text(concurrent, "no limit"),
                      in_flight, str(row["campaigns"]), str(row["running"]),
                      _token_source(keyring, sid))
    return _shown(table if rows else "no accounts yet", problem)


def _shown(what: Table | str, problem: str | None) -> int:
    """Print what a command found, and what is wrong with the credentials, if anything."""
    console = Console()
    console.print(what)
    if problem:
        console.print(f"credentials: {problem}")
    return 0


async def show(settings: Settings, args: argparse.Namespace) -> int:
    async with database(settings) as pool:
        row = await _row(pool, args.account)
        counts = await repository.account_campaign_counts(pool, row["sid"])
    keyring, problem = _keyring(settings)
    sid = row["sid"]
    default = sid == settings.twilio_account_sid
    cps = settings.twilio_cps if default else float(row["cps"])
    concurrent = settings.twilio_max_concurrent_calls if default else row["max_concurrent_calls"]
    fallback = f"default ({settings.twilio_max_in_flight}, DIALER_TWILIO_MAX_IN_FLIGHT)"
    in_flight = (str(settings.twilio_max_in_flight) if default
                 else _limit_text(row["max_in_flight"], fallback))
    shared_key = keyring[sid].shared_key
    rows = [
        ("sid", sid),
        ("label", row["label"] or "none"),
        ("default account", "yes (limits from the settings)" if default else "no"),
        ("cps", f"{cps:g}"),
        ("max concurrent calls", _limit_text(concurrent, "no limit")),
        ("max requests in flight", in_flight),
        ("auth token", _token_source(keyring, sid)),
        ("webhook shared key", "none" if shared_key is None else shared_key.source),
        ("campaigns", ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
         or "none"),
    ]
    return _shown(key_value_table(f"account {row['label'] or sid}", rows), problem)


async def remove(settings: Settings, args: argparse.Namespace) -> int:
    async with database(settings) as pool:
        row = await _row(pool, args.account)
        sid = row["sid"]
        if sid == settings.twilio_account_sid:
            raise ConfigError(f"{sid} is the default account (DIALER_TWILIO_ACCOUNT_SID): "
                              "unset that setting before removing it")
        counts = await repository.account_campaign_counts(pool, sid)
        if counts:
            raise UserError(
                f"account {sid} has {sum(counts.values())} campaign(s); an account keeps "
                "its campaigns' history, so only an account without campaigns is removed")
        if not await repository.delete_account(pool, sid):
            raise UserError(f"account {sid} was removed, or given a campaign, meanwhile")
    print(f"account {sid} removed; its token can go from the credentials file")
    return 0


def _add_limit_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--label", type=_label, default=_UNSET, metavar="TEXT|none",
                   help="a name for the account (a letter, then letters, digits, _ . -)")
    p.add_argument("--cps", type=number(high=accounts.MAX_CPS), default=_UNSET,
                   help=f"the account's calls per second (above 0, at most "
                        f"{accounts.MAX_CPS:g}; default 1)")
    p.add_argument("--max-concurrent", type=_limit(_NONE_WORDS, accounts.MAX_CONCURRENT),
                   default=_UNSET, metavar="N|none",
                   help="calls in progress at once over its campaigns (default: no limit)")
    p.add_argument("--max-in-flight", type=_limit(_DEFAULT_WORDS, accounts.MAX_IN_FLIGHT),
                   default=_UNSET, metavar="M|default",
                   help="REST requests in flight at once per daemon (default: "
                        "DIALER_TWILIO_MAX_IN_FLIGHT)")


def add_parser(sub: SubParsers) -> None:
    p = sub.add_parser("account", help="add, inspect and change Twilio accounts")
    asub = p.add_subparsers(dest="account_command", required=True, metavar="ACTION")
    asub.add_parser("list", help="list accounts").set_defaults(handler=list_)

    add_p = asub.add_parser("add", help="add an account (its token goes in the credentials "
                                        "file, never here)")
    add_p.add_argument("sid", type=_sid, metavar="SID")
    _add_limit_options(add_p)
    add_p.set_defaults(handler=add)

    edit_p = asub.add_parser("edit", help="change an account's label or limits")
    edit_p.add_argument("account", metavar="SID|LABEL")
    _add_limit_options(edit_p)
    edit_p.set_defaults(handler=edit)

    show_p = asub.add_parser("show", help="an account's limits, token source and campaigns")
    show_p.add_argument("account", metavar="SID|LABEL")
    show_p.set_defaults(handler=show)

    remove_p = asub.add_parser("remove", help="remove an account that has no campaigns")
    remove_p.add_argument("account", metavar="SID|LABEL")
    remove_p.set_defaults(handler=remove)
