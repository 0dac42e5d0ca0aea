"""How often one person may be called: caps across campaigns, and the quiet period
after a conversation. Pure arithmetic, no I/O.

A **cap** allows at most N calls in any rolling period, counted per phone number and
subject over every campaign: ``3/24h`` counts the calls to the number about the same
subject in the last 24 hours, ``5/7d/number`` every call to the number whatever the
subject. Caps come from the settings (``DIALER_CAPS``: every campaign), from a
campaign (``--cap``) and from rule packs (a state's law, for contacts who may be in
that state; see dialer.rules).

The **subject** of a call is its campaign's ``subject`` ('' when it names none, so by
default every campaign shares one subject), or with ``subject_column`` that followed by
``#`` and the contact's value in the column: two debts of one person are counted apart.

A **quiet period** (``--quiet-after-human 7d``, 12 CFR 1006.14(b)(2)(i)(B)) allows no
call on a subject for that long after a conversation on it, and none while a call on
it is under way (it may become one: the contact is looked at again a minute later).
A conversation is a call answered by a person, or answered while answering-machine
detection was off (nobody can tell it was not a person), or one in which the person
opted out; it counts from the call's end.

Every call that may have reached the person counts: an attempt written and not proved
void or refused by Twilio, whichever campaign or process placed it, at the instant it
was sent (else claimed). Windows are rolling (a 7-day cap is any 168 hours), which is
stricter than counting calendar days. A capped contact is not failed: it waits until
the first instant every cap allows a call again (``CapCheck.until``).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple, Protocol

from dialer.policy import Outcome, parse_duration

__all__ = [
    "CONVERSATION_OUTCOMES",
    "MAX_CALLS",
    "MAX_PERIOD",
    "MIN_PERIOD",
    "OPEN_CALL_RECHECK",
    "Call",
    "Cap",
    "CapCheck",
    "CapPolicy",
    "Counted",
    "QuietCheck",
    "Scope",
    "StateCap",
    "call_seen",
    "format_period",
    "parse_cap",
    "parse_caps",
    "parse_period",
    "parse_quiet",
    "subject_key",
]

MIN_PERIOD = dt.timedelta(minutes=1)
# The longest rolling period a cap or quiet period may have: the claim reads the calls
# of this long back for every number it claims.
MAX_PERIOD = dt.timedelta(days=90)
MAX_CALLS = 1000
# A quiet subject with a call under way is looked at again this much later.
OPEN_CALL_RECHECK = dt.timedelta(minutes=1)
# Attempt outcomes that mean someone talked (completed: answered with AMD off, nobody
# can tell it was not a person).
CONVERSATION_OUTCOMES = frozenset({Outcome.HUMAN, Outcome.COMPLETED, Outcome.OPTED_OUT})
# Attempt states of calls that have not ended (or have, but wait for their outcome).
_OPEN_STATES = frozenset({"requested", "unknown", "live"})
_CAP = re.compile(
    r"\s*(?P<calls>[0-9]{1,6})\s*/\s*(?P<period>[0-9a-z ]{1,40}?)\s*(?:/\s*(?P<scope>[a-z]+))?\s*")
_NONE_WORDS = frozenset({"", "none", "off"})


class Scope(StrEnum):
    """What a cap counts the calls of: the number and subject, or the whole number."""

    SUBJECT = "subject"
    NUMBER = "number"


def format_period(period: dt.timedelta) -> str:
    """A period as an operator writes it: 7d, 24h, 90m, 45s (24 hours stay 24h)."""
    seconds = int(period.total_seconds())
    if seconds % 86400 == 0 and seconds >= 2 * 86400:
        return f"{seconds // 86400}d"
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds}s"


def parse_period(text: str, what: str = "period") -> dt.timedelta:
    """A cap's or quiet period's length (``24h``, ``7d``), within the bounds."""
    try:
        period = parse_duration(text)
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None
    if not MIN_PERIOD <= period <= MAX_PERIOD:
        raise ValueError(f"{what}: {text.strip()!r} must be from {format_period(MIN_PERIOD)} "
                         f"to {format_period(MAX_PERIOD)}")
    return period


@dataclass(frozen=True, slots=True)
class Cap:
    """At most ``calls`` calls in any ``period``, per number and subject (or per number).

    ``source`` says where it comes from (``settings``, ``campaign``, or a pack rule's
    ref such as ``us-states/FL-calls``); the rest describes a pack rule for
    `dialer why`."""

    calls: int
    period: dt.timedelta
    scope: Scope = Scope.SUBJECT
    source: str = "campaign"
    label: str | None = None
    citation: str | None = None
    status: str | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.calls <= MAX_CALLS:
            raise ValueError(f"a cap allows 1 to {MAX_CALLS} calls, not {self.calls}")
        if not MIN_PERIOD <= self.period <= MAX_PERIOD:
            raise ValueError(f"a cap's period must be from {format_period(MIN_PERIOD)} to "
                             f"{format_period(MAX_PERIOD)}, not {format_period(self.period)}")

    def __str__(self) -> str:
        suffix = "/number" if self.scope is Scope.NUMBER else ""
        return f"{self.calls}/{format_period(self.period)}{suffix}"

    @property
    def ref(self) -> str:
        """How an attempt's record names it: ``us-states/FL-calls:3/24h``."""
        return f"{self.source}:{self}"

    @property
    def name(self) -> str:
        """How `dialer why` names it."""
        if self.label:
            return self.label
        per = "number" if self.scope is Scope.NUMBER else "number and subject"
        return (f"{self.source} cap: {self.calls} call{'s' if self.calls > 1 else ''} per "
                f"{format_period(self.period)} per {per}")


def parse_cap(text: str, *, source: str = "campaign") -> Cap:
    """``N/PERIOD`` or ``N/PERIOD/number`` (``3/24h``, ``7/7d``, ``5/2d/number``)."""
    match = _CAP.fullmatch(text.lower())
    if match is None:
        raise ValueError(f"bad cap {text.strip()[:40]!r}: use CALLS/PERIOD, e.g. 3/24h, 7/7d, "
                         "or 5/2d/number to count every subject together")
    scope_text = match["scope"] or Scope.SUBJECT.value
    if scope_text not in (Scope.SUBJECT.value, Scope.NUMBER.value):
        raise ValueError(f"bad cap {text.strip()[:40]!r}: after the period only /number "
                         "(or /subject, the default) may follow")
    calls = int(match["calls"])
    if not 1 <= calls <= MAX_CALLS:
        raise ValueError(f"bad cap {text.strip()[:40]!r}: 1 to {MAX_CALLS} calls")
    period = parse_period(match["period"], f"bad cap {text.strip()[:40]!r}")
    return Cap(calls, period, Scope(scope_text), source)


def parse_caps(text: str, *, source: str = "campaign") -> tuple[Cap, ...]:
    """Comma-separated caps (``3/24h,7/7d``); empty or ``none`` for none."""
    if text.strip().lower() in _NONE_WORDS:
        return ()
    caps: list[Cap] = []
    for part in text.split(","):
        if not part.strip():
            raise ValueError(f"empty item in cap list {text.strip()[:60]!r}")
        cap = parse_cap(part, source=source)
        if cap not in caps:
            caps.append(cap)
    return tuple(caps)


def parse_quiet(text: str) -> dt.timedelta | None:
    """A quiet period (``7d``), or None for ``none``."""
    if text.strip().lower() in _NONE_WORDS:
        return None
    return parse_period(text, "quiet period")


def subject_key(subject: str | None, column: str | None, value: str | None) -> str:
    """The subject a call is counted under (see the module docstring)."""
    base = subject or ""
    return base if column is None else f"{base}#{(value or '').strip()}"


class Call(NamedTuple):
    """A call to the number that counts: when, about what, and what became of it."""

    at: dt.datetime
    subject: str
    conversation_at: dt.datetime | None  # someone talked: from this instant
    open: bool  # not ended yet (or its outcome not known yet)


def call_seen(*, at: dt.datetime, subject: str, state: str, outcome: str | None,
              final_at: dt.datetime | None) -> Call:
    """A call from its attempt's columns (dialer.repository.recent_calls)."""
    talked = outcome in CONVERSATION_OUTCOMES
    return Call(at, subject, (final_at or at) if talked else None,
                state in _OPEN_STATES or outcome is None)


@dataclass(frozen=True, slots=True)
class Counted:
    """One cap at one instant: the calls it counts, and when it allows one again
    (None: it allows one now)."""

    cap: Cap
    calls: int
    frees_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class QuietCheck:
    """The quiet period at one instant: the last conversation within it, whether a call
    is under way, and until when no call may be placed (None: one may now)."""

    period: dt.timedelta
    last_conversation: dt.datetime | None
    open_call: bool
    until: dt.datetime | None


@dataclass(frozen=True, slots=True)
class CapCheck:
    """Every cap and the quiet period of one contact at one instant."""

    subject: str
    counted: tuple[Counted, ...]
    quiet: QuietCheck | None

    @property
    def until(self) -> dt.datetime | None:
        """The first instant every cap allows a call; None when a call may be placed now."""
        ends = [c.frees_at for c in self.counted if c.frees_at is not None]
        if self.quiet is not None and self.quiet.until is not None:
            ends.append(self.quiet.until)
        return max(ends, default=None)

    @property
    def entries(self) -> tuple[str, ...]:
        """What the attempt's record says was counted (no spaces: lists are stored
        space-separated): ``settings:3/24h=1``, ``quiet:7d=0``."""
        out = [f"{c.cap.ref}={c.calls}" for c in self.counted]
        if self.quiet is not None:
            talked = int(self.quiet.last_conversation is not None)
            out.append(f"quiet:{format_period(self.quiet.period)}={talked}")
        return tuple(out)


def _count(cap: Cap, subject: str, calls: Iterable[Call], now: dt.datetime) -> Counted:
    since = now - cap.period
    # No upper bound: a call claimed by another process an instant "after" now is
    # placed as this one would be, and counts.
    times = sorted(c.at for c in calls
                   if c.at > since and (cap.scope is Scope.NUMBER or c.subject == subject))
    over = len(times) - cap.calls
    # With k calls in the window and room for n, the (k-n+1)-th oldest must leave it.
    return Counted(cap, len(times), times[over] + cap.period if over >= 0 else None)


def _quiet(period: dt.timedelta, subject: str, calls: Iterable[Call], now: dt.datetime
           ) -> QuietCheck:
    mine = [c for c in calls if c.subject == subject]
    talks = [c.conversation_at for c in mine
             if c.conversation_at is not None and c.conversation_at > now - period]
    last = max(talks, default=None)
    open_call = any(c.open for c in mine)
    ends = ([last + period] if last is not None else []) + (
        [now + OPEN_CALL_RECHECK] if open_call else [])
    return QuietCheck(period, last, open_call, max(ends, default=None))


class StateCap(Protocol):
    """A cap that binds recipients in some states (a rule pack's cap rule)."""

    @property
    def cap(self) -> Cap: ...

    def applies_to(self, states: tuple[str, ...]) -> bool: ...


@dataclass(frozen=True, slots=True)
class CapPolicy:
    """A campaign's caps: those for every contact (settings, campaign), the rule packs'
    by state, the quiet period, and how its subjects are made."""

    caps: tuple[Cap, ...] = ()
    rules: tuple[StateCap, ...] = ()
    quiet: dt.timedelta | None = None
    subject: str | None = None
    subject_column: str | None = None
    _applicable: dict[tuple[str, ...], tuple[Cap, ...]] = field(
        default_factory=dict, compare=False, repr=False)

    @property
    def counts(self) -> bool:
        """Whether anything is counted for this campaign's contacts at all."""
        return bool(self.caps or self.rules or self.quiet)

    @property
    def lookback(self) -> dt.timedelta:
        """How far back calls matter to any of its checks."""
        periods = [c.period for c in self.caps] + [r.cap.period for r in self.rules]
        if self.quiet is not None:
            periods.append(self.quiet)
        return max(periods, default=dt.timedelta(0))

    def applicable(self, states: tuple[str, ...]) -> tuple[Cap, ...]:
        """The caps that bind a contact who may be in ``states``."""
        found = self._applicable.get(states)
        if found is None:
            found = self._applicable[states] = self.caps + tuple(
                r.cap for r in self.rules if r.applies_to(states))
        return found

    def key(self, column_value: str | None) -> str:
        return subject_key(self.subject, self.subject_column, column_value)

    def check(self, *, subject: str, states: tuple[str, ...], calls: Sequence[Call],
              now: dt.datetime) -> CapCheck:
        """Every applicable cap and the quiet period for a call about ``subject`` at
        ``now``, given the recent calls to the number (any subject)."""
        return CapCheck(
            subject,
            tuple(_count(cap, subject, calls, now) for cap in self.applicable(states)),
            None if self.quiet is None else _quiet(self.quiet, subject, calls, now),
        )
