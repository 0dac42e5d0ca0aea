"""``dialer campaign ...``: create, inspect and steer campaigns.

Every setting has an option, shared by ``create`` and ``edit``; values are checked
by ``CampaignSpec`` (and the parsers of ``dialer.policy`` / ``dialer.windows``), and
a bad one is reported naming the option, exit code 2, as are malformed command
lines (missing ``--from``, both ``--twiml-url`` and ``--twiml``, a non-number where
a number goes). A state change the campaign's state does not allow, or a name that
is taken or unknown, is a failed operation, exit code 1.

States and the verbs that move between them (each one guarded UPDATE that also sends
``NOTIFY dialer_campaigns`` in its transaction, so running dialers react at once)::

    start   draft | paused | completed -> running
    pause   running -> paused
    resume  paused -> running
    stop    draft | running | paused -> stopped     (final: a stopped campaign is
                                                      never dialed again)

``start`` on a completed campaign is for contacts imported after it completed; the
daemon marks it completed again when nothing is left to call. ``watch`` follows a
campaign's progress (``dialer.watch``) until it is completed or stopped.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from dialer import phone, repository, rules, watch
from dialer.campaigns import DEFAULT_CALENDAR, Campaign, CampaignSpec
from dialer.caps import format_period, parse_caps, parse_quiet
from dialer.commands import (
    ConfigError,
    SubParsers,
    UsageError,
    UserError,
    database,
    key_value_table,
    number,
    whole_number,
)
from dialer.config import Settings
from dialer.optout import DEFAULT_MESSAGE, OPT_OUT_PLACEHOLDER, OptOutScope
from dialer.personalise import placeholders
from dialer.policy import AmdMode, MachinePolicy, RetryPolicy, parse_duration
from dialer.safetext import shown
from dialer.windows import (
    WeeklyHours,
    format_days,
    format_ranges,
    parse_dates,
    parse_days,
    parse_instant,
    parse_weekly,
)

CONTACT_STATES = ("pending", "dialing", "in_call", "retry_wait", "done", "failed", "skipped")

# Verb -> (states it may start from, state it leads to).
TRANSITIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "start": (("draft", "paused", "completed"), "running"),
    "pause": (("running",), "paused"),
    "resume": (("paused",), "running"),
    "stop": (("draft", "running", "paused"), "stopped"),
}

# CampaignSpec field -> the option an operator types, for error messages.
OPTION_FOR = {
    "name": "NAME",
    "from_number": "--from",
    "twiml_url": "--twiml-url",
    "twiml": "--twiml",
    "weight": "--weight",
    "max_concurrent": "--max-concurrent",
    "ring_timeout": "--ring-timeout",
    "amd_mode": "--amd",
    "amd_async": "--amd-async",
    "machine_policy": "--machine-policy",
    "unknown_is_machine": "--unknown-is-machine",
    "calendar": "--calendar",
    "blackout_dates": "--blackout",
    "start_at": "--start-at",
    "end_at": "--end-at",
    "last_call_margin": "--last-call-margin",
    "rule_packs": "--rules",
    "default_timezone": "--timezone",
    "caps": "--cap",
    "subject": "--subject",
    "subject_column": "--subject-column",
    "quiet_after_human": "--quiet-after-human",
    "opt_out_digit": "--opt-out-digit",
    "opt_out_scope": "--opt-out-scope",
    "opt_out_message": "--opt-out-message",
    "max_attempts": "--max-attempts",
    "busy_delay": "--busy-delay",
    "no_answer_delay": "--no-answer-delay",
    "failed_delay": "--failed-delay",
    "machine_delay": "--machine-delay",
    "canceled_delay": "--canceled-delay",
    "backoff": "--backoff",
    "jitter": "--jitter",
}
_PATTERN_HINTS = {
    "name": "use 1-100 letters, digits, '_', '.' or '-', starting with a letter or digit",
    "subject": "use 1-100 letters, digits, '_', '.', ':' or '-', starting with a letter or "
               "digit",
    "opt_out_digit": "one key: 0-9, * or #",
}
_DELAYS = ("busy_delay", "no_answer_delay", "failed_delay", "machine_delay", "canceled_delay")
# Options whose value is handed to CampaignSpec unchanged (argparse typed them).
_PLAIN = ("weight", "ring_timeout", "amd_mode", "amd_async", "machine_policy",
          "unknown_is_machine")
_NONE_WORDS = frozenset({"none", "off", "unlimited"})
# A factor above this only ever means "the longest delay" (retries are capped anyway).
MAX_BACKOFF = 100.0


def _explain(exc: ValidationError) -> str:
    """One line per problem, each naming the option that caused it."""
    problems = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "string_pattern_mismatch" and field in _PATTERN_HINTS:
            message = _PATTERN_HINTS[field]
        option = OPTION_FOR.get(field)
        problems.append(f"{option}: {message}" if option else message)
    return "; ".join(problems)


def _option_error(option: str, exc: Exception) -> UsageError:
    return UsageError(f"{option}: {exc}")


def _retry_from(args: argparse.Namespace, base: RetryPolicy) -> RetryPolicy:
    changes: dict[str, Any] = {}
    for name in _DELAYS:
        text: str | None = getattr(args, name)
        if text is None:
            continue
        if name == "canceled_delay" and text.strip().lower() in _NONE_WORDS:
            changes[name] = None  # a canceled call is final
            continue
        try:
            changes[name] = parse_duration(text)
        except ValueError as exc:
            raise _option_error(OPTION_FOR[name], exc) from None
    for name in ("max_attempts", "backoff", "jitter"):
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    if not changes:
        return base
    try:
        return dataclasses.replace(base, **changes)
    except ValueError as exc:
        field = next((name for name in changes if str(exc).startswith(name)), "")
        raise _option_error(OPTION_FOR.get(field, "retry policy"), exc) from None


def build_spec(
    args: argparse.Namespace, base: Mapping[str, Any], *, region: str
) -> CampaignSpec:
    """The spec after applying the options given on the command line to ``base``
    (CampaignSpec field values); options left out keep the base value."""
    values: dict[str, Any] = dict(base)
    if args.from_number is not None:
        try:
            values["from_number"] = phone.normalize(args.from_number, region)
        except phone.InvalidNumber as exc:
            raise UsageError(f"--from: invalid number {args.from_number!r}: {exc}") from None
    if args.twiml_url is not None:
        values["twiml_url"], values["twiml"] = args.twiml_url, None
    if args.twiml is not None:
        values["twiml"], values["twiml_url"] = args.twiml, None
    for name in _PLAIN:
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    if args.max_concurrent is not None:
        text = args.max_concurrent.strip().lower()
        if text in _NONE_WORDS:
            values["max_concurrent"] = None
        elif re.fullmatch(r"[0-9]{1,18}", text):
            values["max_concurrent"] = int(text)
        else:
            raise UsageError(
                f"--max-concurrent: expected a number or 'none', got {text[:40]!r}"
            )
    _calling_time_from(args, values)
    _how_often_from(args, values)
    values["retry"] = _retry_from(args, values.get("retry") or RetryPolicy())
    try:
        return CampaignSpec.model_validate(values)
    except ValidationError as exc:
        raise UsageError(_explain(exc)) from None


async def _campaign_row(pool: repository.Executor, name: str) -> Any:
    row = await repository.campaign_by_name(pool, name)
    if row is None:
        raise UserError(f"no campaign named {shown(name)} (see `dialer campaign list`)")
    return row


def _loaded(row: Any) -> Campaign:
    try:
        return Campaign.from_row(row)
    except ValueError as exc:
        raise UserError(
            f"campaign {row['name']} has stored settings this version refuses: "
            f"{_explain(exc) if isinstance(exc, ValidationError) else exc}"
        ) from None


def _calendar_from(args: argparse.Namespace, base: WeeklyHours) -> WeeklyHours | None:
    """The calendar of --calendar, or of --days/--hours over what ``base`` has."""
    if args.calendar is not None:
        if args.hours is not None or args.days is not None:
            raise UsageError("--calendar replaces --hours and --days: give one or the other")
        try:
            return parse_weekly(args.calendar)
        except ValueError as exc:
            raise _option_error("--calendar", exc) from None
    if args.hours is None and args.days is None:
        return None
    try:
        days = parse_days(args.days) if args.days is not None else base.open_days
    except ValueError as exc:
        raise _option_error("--days", exc) from None
    hours = args.hours
    if hours is None:
        distinct = {base.on(day) for day in base.open_days}
        if len(distinct) != 1:
            raise UsageError("--days: the calendar has different hours on different days; "
                             "give --hours too, or the whole --calendar")
        hours = format_ranges(distinct.pop())
    try:
        return parse_weekly(f"{format_days(days)} {hours}")
    except ValueError as exc:
        raise _option_error("--hours", exc) from None


def _instant(option: str, text: str) -> dt.datetime | None:
    if text.strip().lower() in _NONE_WORDS:
        return None
    try:
        return parse_instant(text)
    except ValueError as exc:
        raise _option_error(option, exc) from None


def _calling_time_from(args: argparse.Namespace, values: dict[str, Any]) -> None:
    """Apply the calendar, blackout, schedule, margin, rule pack and zone options."""
    calendar = _calendar_from(args, values.get("calendar") or parse_weekly(DEFAULT_CALENDAR))
    if calendar is not None:
        values["calendar"] = calendar
    if args.blackout is not None:
        try:
            values["blackout_dates"] = (frozenset() if args.blackout.strip().lower()
                                        in _NONE_WORDS else parse_dates(args.blackout))
        except ValueError as exc:
            raise _option_error("--blackout", exc) from None
    for name, option in (("start_at", "--start-at"), ("end_at", "--end-at")):
        text = getattr(args, name)
        if text is not None:
            values[name] = _instant(option, text)
    if args.last_call_margin is not None:
        try:
            values["last_call_margin"] = int(parse_duration(args.last_call_margin).total_seconds())
        except ValueError as exc:
            raise _option_error("--last-call-margin", exc) from None
    if args.rules is not None:
        try:
            values["rule_packs"] = rules.parse_names(args.rules)
        except rules.PackError as exc:
            raise _option_error("--rules", exc) from None
    if args.timezone is not None:
        values["default_timezone"] = (None if args.timezone.strip().lower() in _NONE_WORDS
                                      else args.timezone)


def _how_often_from(args: argparse.Namespace, values: dict[str, Any]) -> None:
    """Apply the cap, subject, quiet period and opt-out options."""
    if args.cap is not None:
        try:
            values["caps"] = parse_caps(args.cap)
        except ValueError as exc:
            raise _option_error("--cap", exc) from None
    if args.quiet_after_human is not None:
        try:
            values["quiet_after_human"] = parse_quiet(args.quiet_after_human)
        except ValueError as exc:
            raise _option_error("--quiet-after-human", exc) from None
    for name in ("subject", "subject_column", "opt_out_digit", "opt_out_message"):
        text: str | None = getattr(args, name)
        if text is not None:
            values[name] = None if text.strip().lower() in _NONE_WORDS else text
    if args.opt_out_scope is not None:
        values["opt_out_scope"] = args.opt_out_scope


async def _campaign(pool: repository.Executor, name: str) -> Campaign:
    return _loaded(await _campaign_row(pool, name))


async def _account_sid(conn: repository.Executor, settings: Settings,
                       key: str | None) -> str:
    """The SID of the account a new campaign belongs to: ``--account`` (a SID or a
    label of `dialer account list`), else the default account, whose row the
    settings keep."""
    default = settings.twilio_account_sid
    if key is None or key.strip() == default:
        if not default:
            raise ConfigError(
                "DIALER_TWILIO_ACCOUNT_SID must be set, or --account given: a campaign "
                "belongs to the default account unless --account names another")
        await repository.upsert_account(
            conn, default, settings.twilio_cps, settings.twilio_max_concurrent_calls
        )
        return default
    row = await repository.account_by_key(conn, key.strip())
    if row is None:
        raise UserError(f"--account: no account {shown(key)} (see `dialer account list`, "
                        "or add it with `dialer account add SID`)")
    return str(row["sid"])


async def create(settings: Settings, args: argparse.Namespace) -> int:
    spec = build_spec(args, {"name": args.name}, region=settings.default_region)
    async with database(settings) as pool, pool.acquire() as conn, conn.transaction():
        sid = await _account_sid(conn, settings, args.account)
        campaign_id = await repository.insert_campaign(conn, spec.to_row(), sid)
    if campaign_id is None:
        raise UserError(f"a campaign named {spec.name!r} already exists")
    print(
        f"campaign {spec.name} created (id {campaign_id}, draft, account {sid}); next: "
        f"`dialer import {spec.name} FILE.csv`, then `dialer campaign start {spec.name}`"
    )
    for line in _calling_time_notes(spec):
        print(line)
    return 0


def _calling_time_notes(spec: CampaignSpec) -> list[str]:
    """What an operator should know about the campaign's calling time."""
    notes = []
    if spec.default_timezone is None:
        notes.append("no default time zone (--timezone): contacts whose number gives no zone "
                     "and whose row has no timezone column are not called (skipped)")
    if not spec.rule_packs:
        notes.append("no rule packs (--rules, e.g. us-tcpa,us-states): only the campaign "
                     "calendar limits calling hours")
    if spec.start_at is not None:
        notes.append(f"starts by itself at {spec.start_at.isoformat()} (`dialer run` must be up)")
    template = spec.twiml_url or spec.twiml or ""
    if spec.opt_out_digit is not None and OPT_OUT_PLACEHOLDER not in (
            name.strip().lower() for name in placeholders(template)):
        notes.append(f"opt-out key {spec.opt_out_digit}: the TwiML does not use "
                     f"${{{OPT_OUT_PLACEHOLDER}}}, so no key press can reach the dialer; use "
                     f'<Gather action="${{{OPT_OUT_PLACEHOLDER}}}" numDigits="1">')
    return notes


async def edit(settings: Settings, args: argparse.Namespace) -> int:
    async with database(settings) as pool:
        campaign = await _campaign(pool, args.name)
        before = campaign.spec
        base = {field: getattr(before, field) for field in CampaignSpec.model_fields}
        spec = build_spec(args, base, region=settings.default_region)
        old, new = before.to_row(), spec.to_row()
        changed = [column for column in new if new[column] != old[column]]
        if not changed:
            print(f"campaign {campaign.name}: nothing changed")
            return 0
        if not await repository.update_campaign(pool, campaign.id, new):
            raise UserError(f"campaign {campaign.name!r} was deleted meanwhile")
        requeued = waiting = 0
        if spec.calling_key() != before.calling_key():
            requeued = await repository.requeue_location_skips(pool, campaign.id)
        if spec.cap_key() != before.cap_key():
            waiting = await repository.redecide_waiting(pool, campaign.id)
    print(f"campaign {campaign.name} updated: {', '.join(changed)}")
    if requeued:
        print(f"{requeued} contacts skipped for their location are decided again")
    if waiting:
        print(f"{waiting} contacts waiting (for a cap or their calling time) are decided "
              "again at the next claim")
    return 0


async def transition(settings: Settings, args: argparse.Namespace) -> int:
    verb: str = args.campaign_command
    from_states, to_state = TRANSITIONS[verb]
    async with database(settings) as pool:
        campaign = await _campaign(pool, args.name)
        if await repository.set_campaign_state(pool, campaign.id, to_state, from_states):
            print(f"campaign {campaign.name}: {campaign.state} -> {to_state}")
            return 0
        current = await repository.campaign_by_name(pool, args.name)
    state = current["state"] if current is not None else "deleted"
    hint = " (stopped is final: create a new campaign)" if state == "stopped" else ""
    raise UserError(
        f"cannot {verb} campaign {campaign.name}: it is {state}{hint}; "
        f"{verb} works on {' or '.join(from_states)} campaigns"
    )


def _dates(dates: frozenset[dt.date]) -> str:
    return ",".join(d.isoformat() for d in sorted(dates)) or "none"


def _delay(value: dt.timedelta | None) -> str:
    return "final (no retry)" if value is None else str(value)


def settings_table(campaign: Campaign, *, pause_reason: str | None = None) -> Table:
    """A campaign's settings as a two-column table, in option order; ``pause_reason``
    is why the dialer paused it, if it did."""
    spec = campaign.spec
    retry = spec.retry
    packs = ", ".join(rules.load(name).tag for name in spec.rule_packs)
    rows: list[tuple[str, str]] = [
        ("id", str(campaign.id)),
        ("state", campaign.state),
        *([("paused because", pause_reason)] if pause_reason else []),
        ("account", campaign.account_sid),
        ("from", spec.from_number),
        ("twiml url" if spec.twiml_url else "twiml", spec.twiml_url or spec.twiml or ""),
        ("weight", str(spec.weight)),
        ("max concurrent", str(spec.max_concurrent or "no limit")),
        ("ring timeout", f"{spec.ring_timeout} s"),
        ("amd", spec.amd_mode.value + (" (async)" if spec.amd_async else "")),
        ("machine policy", spec.machine_policy.value),
        ("unknown is machine", "yes" if spec.unknown_is_machine else "no"),
        ("max attempts", str(retry.max_attempts)),
        ("busy delay", _delay(retry.busy_delay)),
        ("no-answer delay", _delay(retry.no_answer_delay)),
        ("failed delay", _delay(retry.failed_delay)),
        ("machine delay", _delay(retry.machine_delay)),
        ("canceled delay", _delay(retry.canceled_delay)),
        ("backoff", f"x{retry.backoff:g}"),
        ("jitter", f"±{retry.jitter:.0%}"),
        ("calendar", str(spec.calendar)),
        ("blackout dates", _dates(spec.blackout_dates)),
        ("starts at", spec.start_at.isoformat() if spec.start_at else "when started"),
        ("ends at", spec.end_at.isoformat() if spec.end_at else "when done"),
        ("last-call margin", f"{spec.last_call_margin} s"),
        ("rule packs", packs or "none"),
        ("default time zone", spec.default_timezone or "none (numbers of unknown zone "
                                                       "are not called)"),
        ("caps", ", ".join(str(cap) for cap in spec.caps) or "none of its own"),
        ("subject", (spec.subject or "(shared)") + (
            f" + column {spec.subject_column}" if spec.subject_column else "")),
        ("quiet after a conversation", format_period(spec.quiet_after_human)
         if spec.quiet_after_human else "none"),
        ("opt-out key", "none" if spec.opt_out_digit is None else
         f"{spec.opt_out_digit} ({spec.opt_out_scope.value} list): "
         f"{spec.opt_out_message or DEFAULT_MESSAGE}"),
    ]
    return key_value_table(f"campaign {campaign.name}", rows)


async def show(settings: Settings, args: argparse.Namespace) -> int:
    async with database(settings) as pool:
        row = await _campaign_row(pool, args.name)
        campaign = _loaded(row)
        counts = await repository.campaign_contact_counts(pool, campaign.id)
    contacts = Table(title="contacts")
    contacts.add_column("state")
    contacts.add_column("contacts", justify="right")
    for state in CONTACT_STATES:
        contacts.add_row(state, str(counts.get(state, 0)))
    contacts.add_row("total", str(sum(counts.values())), style="bold")
    console = Console()
    console.print(settings_table(campaign, pause_reason=row["pause_reason"]))
    console.print(contacts)
    return 0


async def watch_(settings: Settings, args: argparse.Namespace) -> int:
    async with database(settings) as pool:
        try:
            await watch.follow(pool, args.name, console=Console(), interval=args.interval,
                               daemon_seconds=settings.dead_worker_seconds)
        except watch.CampaignGone:
            raise UserError(f"no campaign named {shown(args.name)}") from None
    return 0


async def list_(settings: Settings, args: argparse.Namespace) -> int:
    async with database(settings) as pool:
        rows = await repository.list_campaigns(pool)
    table = Table(title="campaigns")
    for column in ("id", "name", "state", "from", "weight", "contacts", "finished"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            str(row["id"]), row["name"], row["state"], row["from_number"],
            str(row["weight"]), str(row["contacts"]), str(row["finished"]),
        )
    Console().print(table if rows else "no campaigns yet")
    return 0


def _case_insensitive(enum: type[AmdMode] | type[MachinePolicy]) -> Any:
    by_name = {member.value.lower(): member for member in enum}

    def convert(text: str) -> AmdMode | MachinePolicy:
        try:
            return by_name[text.strip().lower()]
        except KeyError:
            choices = ", ".join(member.value for member in enum)
            raise argparse.ArgumentTypeError(f"{text!r} is not one of {choices}") from None

    convert.__name__ = enum.__name__
    return convert


def _add_setting_options(p: argparse.ArgumentParser, *, creating: bool) -> None:
    """Options for every campaign field; all default to None meaning "not given"."""
    p.add_argument("--from", dest="from_number", metavar="E164", required=creating,
                   help="caller ID (E.164, or national form of DIALER_DEFAULT_REGION)")
    source = p.add_mutually_exclusive_group(required=creating)
    source.add_argument("--twiml-url", metavar="URL",
                        help="URL Twilio fetches TwiML from; ${column} placeholders may "
                             "stand in its path, query or fragment, not in its host")
    source.add_argument("--twiml", metavar="XML", help="inline TwiML (up to 4000 characters)")
    p.add_argument("--weight", type=whole_number(),
                   help="share of the account's CPS (1-1000; default 1)")
    p.add_argument("--max-concurrent", metavar="N|none",
                   help="calls in progress at once for this campaign, at most 100000 "
                        "(default: no limit)")
    p.add_argument("--ring-timeout", type=whole_number(), metavar="SECONDS",
                   help="how long to ring (5-600; default 30)")
    p.add_argument("--amd", dest="amd_mode", type=_case_insensitive(AmdMode),
                   metavar="off|Enable|DetectMessageEnd",
                   help="answering machine detection (default off)")
    p.add_argument("--amd-async", action=argparse.BooleanOptionalAction, default=None,
                   help="asynchronous AMD (needs --amd)")
    p.add_argument("--machine-policy", type=_case_insensitive(MachinePolicy),
                   metavar="hangup_retry|voicemail|accept",
                   help="what to do when a machine answers (default hangup_retry)")
    p.add_argument("--unknown-is-machine", action=argparse.BooleanOptionalAction, default=None,
                   help="treat AnsweredBy=unknown as a machine (default: as a human)")
    retry = p.add_argument_group("retries (durations: 90, 30s, 5m, 1h30m, 2d; at most 30d)")
    retry.add_argument("--busy-delay", metavar="DURATION", help="after busy (default 5m)")
    retry.add_argument("--no-answer-delay", metavar="DURATION",
                       help="after no answer (default 30m)")
    retry.add_argument("--failed-delay", metavar="DURATION",
                       help="after a transient failure (default 10m)")
    retry.add_argument("--machine-delay", metavar="DURATION",
                       help="after a machine, with hangup_retry (default 1h)")
    retry.add_argument("--canceled-delay", metavar="DURATION|none",
                       help="after a canceled call (default none: canceled is final)")
    retry.add_argument("--backoff", type=number(high=MAX_BACKOFF),
                       help="delay factor per attempt (1-100; default 2)")
    retry.add_argument("--jitter", type=number(),
                       help="random spread of delays (0-0.99; default 0.1)")
    retry.add_argument("--max-attempts", type=whole_number(),
                       help="calls per contact at most (1-20; default 3)")
    window = p.add_argument_group(
        "calling time (in every zone each contact may be in; see `dialer why`)")
    window.add_argument("--calendar", metavar="CALENDAR",
                        help="weekly local hours, e.g. 'mon-fri 09:00-12:00,13:00-20:00; "
                             "sat 10:00-14:00' (default mon-fri 09:00-20:00)")
    window.add_argument("--hours", metavar="HH:MM-HH:MM[,...]",
                        help="the same hours on every --days day (instead of --calendar)")
    window.add_argument("--days", metavar="DAYS", help="e.g. mon-fri, mon,wed,sat, all")
    window.add_argument("--blackout", metavar="DATES|none",
                        help="no calls on these local dates: 2026-12-24,2026-12-31..2027-01-01")
    window.add_argument("--start-at", metavar="ISO-8601|none",
                        help="start by itself at this instant, e.g. 2027-03-01T09:00-05:00")
    window.add_argument("--end-at", metavar="ISO-8601|none",
                        help="end by itself (completed) at this instant")
    window.add_argument("--last-call-margin", metavar="DURATION",
                        help="no call later than this before the window closes (default 60s)")
    window.add_argument("--rules", metavar="PACKS|none",
                        help=f"rule packs obeyed, e.g. us-tcpa,us-states (available: "
                             f"{', '.join(rules.available())}; default none)")
    window.add_argument("--timezone", metavar="ZONE|none",
                        help="zone of contacts whose number gives none (default none: "
                             "such contacts are not called)")
    often = p.add_argument_group(
        "how often a person is called (across campaigns and processes; see `dialer why`)")
    often.add_argument("--cap", metavar="CAPS|none",
                       help="at most N calls per rolling period to a number on the campaign's "
                            "subject, counted over every campaign: 2/24h, 3/24h,7/7d, "
                            "5/2d/number (every subject); besides DIALER_CAPS and the rule "
                            "packs' caps")
    often.add_argument("--subject", metavar="NAME|none",
                       help="what the calls are about: campaigns of one subject share its "
                            "caps (default: the subject of every campaign that names none)")
    often.add_argument("--subject-column", metavar="COLUMN|none",
                       help="a CSV column whose value makes each contact's subject, e.g. "
                            "debt_id: two debts of one person are capped apart")
    often.add_argument("--quiet-after-human", metavar="DURATION|none",
                       help="no call on a subject for this long after a conversation on it, "
                            "e.g. 7d (12 CFR 1006.14(b)(2)(i)(B)); default none")
    often.add_argument("--opt-out-digit", metavar="KEY|none",
                       help="the key that puts the number on a do-not-call list during the "
                            "call; the TwiML offers it with <Gather action="
                            f'"${{{OPT_OUT_PLACEHOLDER}}}" numDigits="1">')
    often.add_argument("--opt-out-scope", choices=[s.value for s in OptOutScope],
                       help="which list: global (every campaign, default) or campaign")
    often.add_argument("--opt-out-message", metavar="TEXT",
                       help=f"what the caller hears then (default {DEFAULT_MESSAGE!r}; at most "
                            "500 characters)")


def add_parser(sub: SubParsers) -> None:
    p = sub.add_parser("campaign", help="create, inspect and steer campaigns")
    csub = p.add_subparsers(dest="campaign_command", required=True, metavar="ACTION")
    csub.add_parser("list", help="list campaigns").set_defaults(handler=list_)

    create_p = csub.add_parser("create", help="create a campaign (state draft)")
    create_p.add_argument("name", metavar="NAME")
    create_p.add_argument("--account", metavar="SID|LABEL",
                          help="the Twilio account that places its calls (default: "
                               "DIALER_TWILIO_ACCOUNT_SID; others: `dialer account add`)")
    _add_setting_options(create_p, creating=True)
    create_p.set_defaults(handler=create)

    edit_p = csub.add_parser("edit", help="change a campaign's settings")
    edit_p.add_argument("name", metavar="NAME")
    _add_setting_options(edit_p, creating=False)
    edit_p.set_defaults(handler=edit)

    show_p = csub.add_parser("show", help="a campaign's settings and contacts by state")
    show_p.add_argument("name", metavar="NAME")
    show_p.set_defaults(handler=show)

    watch_p = csub.add_parser(
        "watch", help="live progress of a campaign, from the database, until it is "
                      "completed or stopped (Ctrl-C ends it sooner)")
    watch_p.add_argument("name", metavar="NAME")
    watch_p.add_argument("--interval", type=number(0.2, 60), default=1.0, metavar="SECONDS",
                         help="seconds between looks (default: %(default)s); off a "
                              "terminal, one line each")
    watch_p.set_defaults(handler=watch_)

    for verb, (from_states, to_state) in TRANSITIONS.items():
        vp = csub.add_parser(verb, help=f"{' | '.join(from_states)} -> {to_state}")
        vp.add_argument("name", metavar="NAME")
        vp.set_defaults(handler=transition)

