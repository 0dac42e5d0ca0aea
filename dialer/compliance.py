"""Whether and when a contact may be called, and the record of why.

A contact may ring in several places. Its **zones** come from the CSV ``timezone``
column, else from every zone the number's prefix is used in, else (only when the
number gives none) from the campaign's default zone; its **states** (for US state
law) from the CSV ``state`` column and from the number's area code, both kept: a
law such as Oklahoma's presumes an Oklahoma area code reaches someone in Oklahoma
whatever the address says. A call is allowed at an instant only if the campaign
calendar and every applicable rule allow it on the clock of **every** candidate
zone, and only if it stays allowed for the last-call margin.

The claim asks ``Planner.decide`` about every due contact:

* ``Take`` with the record of why the call is legal (zones and states with their
  sources, the local time in each zone, the rule packs and their versions, the rules
  applied) and the instant the window closes (minus the margin);
* ``Defer`` to the next instant a call may be placed;
* ``Skip`` with a reason the operator can act on: the number gives no zone and the
  campaign has none (set ``--timezone``), or the zones never share an allowed minute
  in the next 8 days although each alone would (give the contact's zone in a
  ``timezone`` column). When the window itself is shut for 8 days (blackouts, a
  scheduled start) the contact waits instead: that is not the contact's problem.

The Planner keeps the allowed intervals per (zones, states) for nine days from the
start of the current UTC day, so a decision is a dictionary look-up and a bisection;
a property test checks the intervals against reading every clock minute by minute.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from dialer import phone
from dialer import rules as rulepacks
from dialer.caps import Call, CapCheck, CapPolicy, Scope, format_period
from dialer.location import Location, locate
from dialer.places import parse_state
from dialer.windows import (
    DAY,
    Intervals,
    LocalRule,
    Schedule,
    Term,
    WeeklyHours,
    callable_intervals,
    first_in,
    format_days,
    format_ranges,
    is_open,
    open_intervals,
    term_intervals,
)

__all__ = [
    "HORIZON",
    "CallingPolicy",
    "Check",
    "ClaimCaps",
    "ClaimDecisions",
    "Decision",
    "Defer",
    "Location",
    "Planner",
    "Record",
    "Skip",
    "Take",
    "Verdict",
    "locate",
    "stored_location",
]

HORIZON = dt.timedelta(days=8)
_HORIZON_S = int(HORIZON.total_seconds())
# Cached intervals cover nine days from the start of a UTC day: any instant of that
# day plus the 8-day horizon.
_SPAN_DAYS = 9
_CACHE_LIMIT = 20_000
# Reasons a contact is skipped for its location start with these words, so that
# `campaign edit` and a re-import can find the contacts a changed setting may fix.
NO_ZONE = "no time zone"
NO_COMMON_TIME = "no common calling time"

CAMPAIGN_DEFAULT = "campaign default"
# ... and "migrated": the one zone a contact had before migration 0005 (set by it).


def stored_location(
    phone_number: str, zones: list[str] | None, zone_source: str | None,
    states: list[str] | None, state_sources: list[str] | None, csv_state: str | None,
) -> tuple[Location, bool]:
    """The location stored with a contact, and False; for a contact from before
    migration 0005 (NULL columns), its location worked out from its number (keeping
    the one zone it had, and its CSV state from its attributes), and True: store it."""
    if zones is not None and states is not None:
        assert zone_source is not None and state_sources is not None
        return Location(tuple(zones), zone_source, tuple(states), tuple(state_sources)), False
    state: str | None = None
    if csv_state and phone_number.startswith("+1"):
        with contextlib.suppress(ValueError):  # not checked when it was imported
            state = parse_state(csv_state)
    where = locate(csv_zone=None, number_zones=phone.time_zones_for(phone_number),
                   csv_state=state, number_state=phone.us_state_for(phone_number))
    if zones is not None:
        assert zone_source is not None
        where = Location(tuple(zones), zone_source, where.states, where.state_sources)
    return where, True


@dataclass(frozen=True, slots=True)
class Check:
    """One thing that limits calling time, for the schedule and for `dialer why`.

    ``kind`` is what an operator calls it (range, blackout, hours, sunday, holiday);
    ``zone`` is a fixed clock the rule is read on, None for the recipient's."""

    kind: str
    ref: str
    label: str
    local: LocalRule
    zone: ZoneInfo | None = None
    citation: str | None = None
    status: str | None = None


class Record(NamedTuple):
    """Why an attempt was legal, stored with it (table attempt_compliance). A named
    tuple: one is built for every call placed. ``subject`` and ``caps`` are filled by
    the cap check (``ClaimCaps``): the subject the call counts under and each cap with
    the calls it counted (``dialer.caps.CapCheck.entries``)."""

    decided_at: dt.datetime
    location: Location
    local_times: tuple[str, ...]
    rule_packs: tuple[str, ...]
    rules: tuple[str, ...]
    open_until: dt.datetime
    subject: str = ""
    caps: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Take:
    record: Record

    @property
    def until(self) -> dt.datetime:
        """The request must be sent before this instant (the window's end minus the margin)."""
        return self.record.open_until


@dataclass(frozen=True, slots=True)
class Defer:
    at: dt.datetime


@dataclass(frozen=True, slots=True)
class Skip:
    reason: str


Decision = Take | Defer | Skip


# (rule kind, whether it binds the whole US) -> what `dialer why` calls it.
_KINDS = {
    ("hours", True): "federal hours", ("hours", False): "state hours",
    ("days", True): "day ban", ("days", False): "day ban",
    ("holidays", True): "holiday", ("holidays", False): "holiday",
}


@dataclass(frozen=True, slots=True)
class CallingPolicy:
    """A campaign's calling-time settings, with its rule packs loaded."""

    calendar: WeeklyHours
    blackouts: frozenset[dt.date] = frozenset()
    start_at: dt.datetime | None = None
    end_at: dt.datetime | None = None
    margin: int = 60
    packs: tuple[rulepacks.RulePack, ...] = ()
    default_zone: str | None = None
    _checks: dict[tuple[str, ...], tuple[Check, ...]] = field(
        default_factory=dict, compare=False, repr=False)
    _refs: dict[tuple[str, ...], tuple[str, ...]] = field(
        default_factory=dict, compare=False, repr=False)

    def resolve(self, location: Location) -> Location | None:
        """The location with the campaign default as its zone when the number gives
        none; None when there is no zone at all."""
        if location.zones:
            return location
        if self.default_zone is None:
            return None
        return Location((self.default_zone,), CAMPAIGN_DEFAULT, location.states,
                        location.state_sources)

    def checks(self, states: tuple[str, ...]) -> tuple[Check, ...]:
        """The campaign's own checks and every rule that binds a recipient in ``states``."""
        found = self._checks.get(states)
        if found is None:
            found = self._checks[states] = tuple(self._build_checks(states))
        return found

    def _build_checks(self, states: tuple[str, ...]) -> Iterable[Check]:
        yield Check("range", "calendar", f"campaign calendar {self.calendar}",
                    LocalRule(hours=self.calendar))
        if self.blackouts:
            yield Check("blackout", "blackout", "campaign blackout dates",
                        LocalRule(closed=self.blackouts))
        for pack in self.packs:
            for rule in pack.rules:
                if rule.applies_to(states):
                    yield Check(_KINDS[rule.spec.kind, "*" in rule.spec.states], rule.ref,
                                rule.spec.label, rule.local, rule.zone, rule.spec.citation,
                                rule.spec.status)

    def schedule(self, location: Location) -> Schedule:
        """The schedule of a resolved location: one term per candidate zone, one per
        rule read on a fixed clock."""
        checks = self.checks(location.states)
        local = tuple(c.local for c in checks if c.zone is None)
        terms = [Term(ZoneInfo(zone), local) for zone in location.zones]
        terms += [Term(c.zone, (c.local,)) for c in checks if c.zone is not None]
        return Schedule(tuple(terms), self.start_at, self.end_at, self.margin)

    @property
    def pack_tags(self) -> tuple[str, ...]:
        return tuple(pack.tag for pack in self.packs)

    def refs(self, states: tuple[str, ...]) -> tuple[str, ...]:
        """The refs of ``checks(states)``, as an attempt records them."""
        found = self._refs.get(states)
        if found is None:
            found = self._refs[states] = tuple(c.ref for c in self.checks(states))
        return found


class _Kind(enum.Enum):
    TAKE = "take"
    DEFER = "defer"
    SKIP = "skip"
    WAIT = "wait"  # nothing within 8 days, not the zones' fault: defer by 8 days


@dataclass(frozen=True, slots=True)
class _Known:
    """A decision that holds for every instant in [lo, hi) (epoch seconds)."""

    kind: _Kind
    lo: float = float("-inf")
    hi: float = float("inf")
    location: Location | None = None  # TAKE: the resolved location ...
    at: float = 0.0  # ... and the end of its allowed interval
    decision: Decision | None = None  # DEFER, SKIP: the decision itself


class Planner:
    """Decisions for one campaign's policy, with the allowed intervals cached."""

    def __init__(self, policy: CallingPolicy) -> None:
        self.policy = policy
        self._intervals: dict[tuple[object, ...], Intervals] = {}
        self._terms: dict[tuple[Term, int], Intervals] = {}
        self._known: dict[str, _Known] = {}
        self._pack_tags = policy.pack_tags

    def _term_intervals(self, term: Term, lo: int, hi: int) -> Intervals:
        key = (term, lo)
        found = self._terms.get(key)
        if found is None:
            if len(self._terms) > _CACHE_LIMIT:
                self._terms.clear()
            found = self._terms[key] = term_intervals(term, lo, hi)
        return found

    def intervals(self, location: Location, day: int) -> Intervals:
        """Instants (epoch s) from which a call may be placed, over nine days from the
        start of UTC day ``day`` (days since the epoch); ``location`` resolved."""
        key = (location.zones, location.states, day)
        found = self._intervals.get(key)
        if found is None:
            if len(self._intervals) > _CACHE_LIMIT:
                self._intervals.clear()
            lo = day * DAY
            found = callable_intervals(self.policy.schedule(location), lo,
                                       lo + _SPAN_DAYS * DAY, intervals_of=self._term_intervals)
            self._intervals[key] = found
        return found

    def next_call(self, location: Location, t: dt.datetime) -> tuple[float, float] | None:
        """The allowed interval containing ``t``, else the first to start within 8
        days after it; None if there is none. ``location`` resolved."""
        ts = t.timestamp()
        found = first_in(self.intervals(location, int(ts // DAY)), ts)
        if found is None or found[0] > ts + _HORIZON_S:
            return None
        return found

    def next_due(self, location: Location, t: dt.datetime) -> dt.datetime:
        """When a contact that is due at ``t`` may be called: ``t`` itself, or the next
        opening; ``t`` when there is none within 8 days (the claim decides then)."""
        resolved = self.policy.resolve(location)
        if resolved is None:
            return t
        found = self.next_call(resolved, t)
        if found is None or found[0] <= t.timestamp():
            return t
        return _instant(found[0])

    def decide(self, location: Location, now: dt.datetime) -> Decision:
        return self.decide_place(location.place, now)

    def decide_place(self, place: str, now: dt.datetime) -> Decision:
        """The decision for a contact at ``place`` (``Location.place``) at ``now``.

        A decision holds over a span of instants (a take until the window closes, a
        deferral until its opening); the span is kept per place, so most decisions
        are a look-up, and only a take's record is built for each instant."""
        ts = now.timestamp()
        known = self._known.get(place)
        if known is None or not known.lo <= ts < known.hi:
            if len(self._known) > _CACHE_LIMIT:
                self._known.clear()
            known = self._known[place] = self._work_out(Location.from_place(place), ts)
        if known.kind is _Kind.TAKE:
            assert known.location is not None
            return Take(self.record(known.location, now, _instant(known.at)))
        if known.kind is _Kind.WAIT:
            return Defer(now + HORIZON)
        assert known.decision is not None
        return known.decision

    def _work_out(self, location: Location, ts: float) -> _Known:
        """The decision at ``ts`` and the span of instants over which it stays the same."""
        resolved = self.policy.resolve(location)
        if resolved is None:
            return _Known(_Kind.SKIP, decision=Skip(
                f"{NO_ZONE}: the number gives none and the campaign has no default zone; set "
                "one with `dialer campaign edit NAME --timezone ZONE` or give the contact's "
                "zone in a timezone column"))
        day = int(ts // DAY)
        day_end = (day + 1) * DAY
        horizon = ts + _HORIZON_S
        found = first_in(self.intervals(resolved, day), ts)
        if found is not None and found[0] <= ts:
            return _Known(_Kind.TAKE, found[0], min(found[1], day_end), resolved, found[1])
        if found is not None and found[0] <= horizon:
            return _Known(_Kind.DEFER, ts, found[0], decision=Defer(_instant(found[0])))
        # Nothing within 8 days. That holds while no opening enters the horizon; whether
        # it is the zones' fault (each alone would open) holds while each zone's opening
        # lasts, or while a zone that has none gets none.
        hi = min(day_end, (found[0] if found is not None else float("inf")) - _HORIZON_S)
        singles = [first_in(self.intervals(Location((z,), resolved.zone_source,
                                                    resolved.states), day), ts)
                   for z in resolved.zones] if len(resolved.zones) > 1 else [None]
        if all(single is not None and single[0] <= horizon for single in singles):
            ends = [single[1] for single in singles if single is not None]
            return _Known(_Kind.SKIP, ts, min(hi, *ends), decision=Skip(
                f"{NO_COMMON_TIME}: its zones {', '.join(resolved.zones)} never share an "
                "allowed minute in the next 8 days; give the contact's zone in a timezone "
                "column and import it again"))
        starts = [single[0] if single is not None else float("inf") for single in singles
                  if single is None or single[0] > horizon]
        return _Known(_Kind.WAIT, ts, min(hi, *(start - _HORIZON_S for start in starts)))

    def record(self, location: Location, now: dt.datetime, until: dt.datetime) -> Record:
        policy = self.policy
        return Record(
            now,
            location,
            tuple(now.astimezone(ZoneInfo(z)).isoformat(timespec="seconds")
                  for z in location.zones),
            self._pack_tags,
            policy.refs(location.states),
            until,
        )


class ClaimDecisions:
    """The decisions of one claim, all at one instant, for the rows of
    select_due_contacts: worked out once per distinct place, each taken contact's
    send-by instant kept. A row without a place (a contact from before migration
    0005) gets its location worked out from its number, to be stored."""

    def __init__(self, planner: Planner, now: dt.datetime) -> None:
        self._planner = planner
        self._now = now
        self._decided: dict[str, Decision] = {}
        self.send_by: dict[int, dt.datetime] = {}

    def __call__(self, row: Any) -> tuple[Decision, Location | None]:
        place: str | None = row["place"]
        fresh = None
        if place is None:
            fresh, _ = stored_location(row["phone"], row["zones"], row["zone_source"],
                                       None, None, row["csv_state"])
            place = fresh.place
        decision = self._decided.get(place)
        if decision is None:
            decision = self._decided[place] = self._planner.decide_place(place, self._now)
        if isinstance(decision, Take):
            self.send_by[row["id"]] = decision.until
        return decision, fresh


# A call is timed when it was sent, and found by when it was claimed: one claimed up to
# this long before the start of a cap's window is still read (sends come within a
# second of their claim, and never after the calling window closes).
CLAIM_TO_SEND_SLACK = dt.timedelta(hours=1)


class ClaimCaps:
    """The cap checks of one claim, all at one instant, for the contacts the calling
    time allows: each call is allowed (its record gains the subject and what every cap
    counted) or waits until every cap allows it, moved into its calling window."""

    def __init__(self, policy: CapPolicy, planner: Planner, now: dt.datetime) -> None:
        self.policy = policy
        self._planner = planner
        self._now = now
        self.capped = 0  # contacts this claim deferred for a cap or the quiet period

    @property
    def counts(self) -> bool:
        """Whether the claim must read the numbers' recent calls at all."""
        return self.policy.counts

    @property
    def since(self) -> dt.datetime:
        """Calls claimed before this instant cannot count (see CLAIM_TO_SEND_SLACK)."""
        return self._now - self.policy.lookback - CLAIM_TO_SEND_SLACK

    def __call__(self, record: Record, subject_value: str | None, calls: Sequence[Call]
                 ) -> Record | dt.datetime:
        """The record of an allowed call, or the instant the contact is due instead.
        ``subject_value`` is the contact's value in the campaign's subject column,
        ``calls`` the recent calls to its number (any campaign, any subject)."""
        subject = self.policy.key(subject_value)
        if not self.policy.counts:
            return record._replace(subject=subject)
        check = self.policy.check(subject=subject, states=record.location.states,
                                  calls=calls, now=self._now)
        until = check.until
        if until is None:
            return record._replace(subject=subject, caps=check.entries)
        self.capped += 1
        return self._planner.next_due(record.location, until)


def _instant(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.UTC)


# ---- `dialer why`: each check's verdict at one instant -------------------------------------


@dataclass(frozen=True, slots=True)
class Verdict:
    """One row of `dialer why`: a check, whether it allows a call at the instant, why."""

    kind: str
    name: str
    allowed: bool
    detail: str
    citation: str | None = None
    status: str | None = None


_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _clock(local: dt.datetime) -> str:
    return f"{_WEEKDAYS[local.weekday()]} {local:%Y-%m-%d %H:%M}"


def _check_in(check: Check, zone: ZoneInfo, at: dt.datetime) -> str | None:
    """None when the check allows ``at`` on ``zone``'s clock, else why not."""
    local = at.astimezone(zone)
    day = local.date()
    seconds = local.hour * 3600 + local.minute * 60 + local.second
    ranges = check.local.ranges_on(day)
    if any(s <= seconds < e for s, e in ranges):
        return None
    where = f"{_clock(local)} in {zone.key}"
    if check.kind == "holiday":
        name = getattr(check.local.closed, "name", lambda _: None)(day)
        return f"{where}: {name or 'a holiday'}"
    if check.kind == "blackout":
        return f"{where}: a blackout date"
    if not ranges:
        return f"{where}: closed all day"
    return f"{where}: outside {format_ranges(ranges)}"


def time_verdicts(policy: CallingPolicy, location: Location, at: dt.datetime) -> list[Verdict]:
    """Every calling-time check of a resolved location at ``at``, in every zone."""
    verdicts: list[Verdict] = []
    zones = [ZoneInfo(z) for z in location.zones]
    if policy.start_at is not None or policy.end_at is not None:
        start, end = policy.start_at, policy.end_at
        span = (f"{start.isoformat() if start else 'any time'} to "
                f"{end.isoformat() if end else 'no end'}")
        started = start is None or at >= start
        ended = end is not None and at >= end
        detail = f"runs {span}" if started and not ended else (
            f"not started: runs {span}" if not started else f"ended: ran {span}")
        verdicts.append(Verdict("calendar", "campaign start and end", started and not ended,
                                detail))
    days = policy.calendar.open_days
    closed = [f"{_clock(at.astimezone(z))} in {z.key}" for z in zones
              if at.astimezone(z).isoweekday() not in days]
    verdicts.append(Verdict(
        "calendar", f"campaign days {format_days(days)}", not closed,
        f"not a calling day: {'; '.join(closed)}" if closed else "a calling day in " + ", ".join(
            z.key for z in zones)))
    for check in policy.checks(location.states):
        clocks = [check.zone] if check.zone is not None else zones
        problems = [p for z in clocks if (p := _check_in(check, z, at)) is not None]
        detail = "; ".join(problems) if problems else "allowed in " + ", ".join(
            z.key for z in clocks)
        verdicts.append(Verdict(check.kind, check.label, not problems, detail,
                                check.citation, check.status))
    return verdicts


def contact_verdicts(
    *, state: str, reason: str | None, attempts: int, max_attempts: int,
    dnc_entry: str | None, due: dt.datetime | None, at: dt.datetime,
) -> list[Verdict]:
    """What the contact's own row says: its state, the do-not-call lists, attempts."""
    if state in ("pending", "retry_wait"):
        waiting = due is not None and due > at
        contact = Verdict("contact", f"contact {state}", True,
                          f"due at {due.isoformat()}" if waiting and due else "due")
    elif state in ("dialing", "in_call"):
        contact = Verdict("contact", f"contact {state}", False, "being called right now")
    else:
        contact = Verdict("contact", f"contact {state}", False,
                          f"final: {reason}" if reason else "final")
    left = max_attempts - attempts
    return [
        contact,
        Verdict("dnc", "do-not-call lists", dnc_entry is None,
                f"listed: {dnc_entry}" if dnc_entry else "not listed"),
        Verdict("attempts", "attempts left", left > 0,
                f"{attempts} of {max_attempts} used, {max(left, 0)} left"),
    ]


def describe_subject(subject: str) -> str:
    return f"subject {subject!r}" if subject else "the shared subject (no campaign subject)"


def cap_verdicts(check: CapCheck) -> list[Verdict]:
    """Each cap with the calls it counts and when it frees, and the quiet period."""
    verdicts = []
    for counted in check.counted:
        cap = counted.cap
        what = ("calls to the number, any subject" if cap.scope is Scope.NUMBER
                else f"calls on {describe_subject(check.subject)}")
        detail = f"{counted.calls} of {cap.calls} in the last {format_period(cap.period)} ({what})"
        if counted.frees_at is not None:
            detail += f"; allows a call again at {counted.frees_at:%Y-%m-%d %H:%M:%S} UTC"
        verdicts.append(Verdict("cap", cap.name, counted.frees_at is None, detail,
                                cap.citation, cap.status))
    quiet = check.quiet
    if quiet is not None:
        name = f"quiet {format_period(quiet.period)} after a conversation"
        parts = []
        if quiet.last_conversation is not None:
            parts.append(f"conversation at {quiet.last_conversation:%Y-%m-%d %H:%M:%S} UTC")
        if quiet.open_call:
            parts.append("a call on it is under way (it may become a conversation)")
        detail = (f"no conversation on {describe_subject(check.subject)} in the last "
                  f"{format_period(quiet.period)}" if quiet.until is None else
                  f"{'; '.join(parts)}; allows a call again at {quiet.until:%Y-%m-%d %H:%M:%S} UTC")
        verdicts.append(Verdict("quiet", name, quiet.until is None, detail,
                                "12 CFR 1006.14(b)(2)(i)(B)", "verified"))
    return verdicts


def margin_verdict(planner: Planner, location: Location, at: dt.datetime) -> Verdict:
    """Whether the window, open at ``at``, stays open for the last-call margin."""
    margin = planner.policy.margin
    name = f"last-call margin {margin} s"
    found = planner.next_call(location, at)
    if found is not None and found[0] <= at.timestamp():
        return Verdict("range", name, True,
                       f"open until {_instant(found[1] + margin):%Y-%m-%d %H:%M:%S} UTC")
    schedule = planner.policy.schedule(location)
    if not is_open(schedule, at):
        return Verdict("range", name, True, "not reached: the window is shut at this instant")
    lo = int(at.timestamp())
    closes = open_intervals(schedule, lo, lo + margin + 1)[0][1]
    return Verdict("range", name, False, f"the window closes at "
                   f"{_instant(closes):%Y-%m-%d %H:%M:%S} UTC, less than {margin} s later")


def upcoming(planner: Planner, location: Location, at: dt.datetime, count: int = 3
             ) -> list[tuple[dt.datetime, dt.datetime]]:
    """The next ``count`` spans [from, until] in which a call may be placed, within 8 days."""
    ts = at.timestamp()
    spans = []
    for start, end in planner.intervals(location, int(ts // DAY)):
        if end <= ts or start > ts + _HORIZON_S:
            continue
        spans.append((_instant(max(start, ts)), _instant(end)))
        if len(spans) == count:
            break
    return spans


def describe_location(location: Location) -> tuple[str, str]:
    """("America/Chicago (number)", "OK (number)") for headers and reports."""
    zones = ", ".join(location.zones) or "none"
    states = ", ".join(f"{s} ({src})" for s, src in
                       zip(location.states, location.state_sources, strict=True)) or "none"
    return f"{zones} ({location.zone_source})", states
