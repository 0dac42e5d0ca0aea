"""Calling windows: when a call may be placed, judged by the clocks of the recipient.

Calling hours are a legal limit stated in wall-clock time ("9 am to 8 pm on weekdays,
recipient's time"), so a window is judged by what a clock in the recipient's zone
reads, not by elapsed hours. That one rule settles the daylight-saving cases: on a
spring-forward day a range opening inside the skipped hour opens when the clock lands
after the gap, and on a fall-back day the repeated hour is inside a range both times.

The pieces, from small to large:

* ``WeeklyHours``: open ranges of local time per ISO weekday (a campaign calendar,
  or a rule's hours such as 08:00-21:00).
* ``LocalRule``: weekly hours minus closed dates (blackouts, holidays), in effect on
  some dates only if it says so.
* ``Term``: rules judged by the clock of one zone. A recipient who may be in several
  zones gets one term per zone; a rule stated in a fixed zone ("Central Standard
  Time") gets a term of its own.
* ``Schedule``: terms that must all allow a call, an optional campaign start and end
  (instants), and the last-call margin.

``is_open`` answers for one instant by reading each term's clock; nothing else is
needed to trust it. ``open_intervals`` computes the same set as UTC intervals (fast to
query for many contacts), and ``next_open`` the first instant a call may be placed:
one from which the schedule stays open through the whole margin (t may be called when
the window is open all of [t, t + margin]), so that a call placed at 20:59:58 does not
ring after a 21:00 close. Everything here is pure arithmetic on
instants the caller passes in.
"""

from __future__ import annotations

import bisect
import datetime as dt
import re
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, TypeVar
from zoneinfo import ZoneInfo

__all__ = [
    "DAY",
    "FULL_DAY",
    "Intervals",
    "LocalRule",
    "Ranges",
    "Schedule",
    "Term",
    "WeeklyHours",
    "callable_intervals",
    "intersect",
    "is_open",
    "next_open",
    "open_intervals",
    "parse_dates",
    "parse_days",
    "parse_hours",
    "parse_instant",
    "parse_until",
    "parse_weekly",
]

UTC = dt.UTC
DAY = 86_400
# Seconds of a local day, [start, end): sorted, disjoint and never touching.
Ranges = tuple[tuple[int, int], ...]
# UTC instants as epoch seconds, [start, end): sorted, disjoint and never touching.
Intervals = list[tuple[float, float]]
FULL_DAY: Ranges = ((0, DAY),)
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
# Offsets are sampled this far apart to find a zone's UTC-offset changes. No zone
# changes its offset twice within an hour, so none is missed.
_PROBE = 3600
N = TypeVar("N", int, float)
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def merge_ranges(ranges: Iterable[tuple[int, int]]) -> Ranges:
    """Sorted, overlapping or touching ranges joined, empty ones dropped."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(r for r in ranges if r[0] < r[1]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return tuple(merged)


def intersect_ranges(a: Ranges, b: Ranges) -> Ranges:
    return tuple(intersect(a, b))


def intersect(a: Sequence[tuple[N, N]], b: Sequence[tuple[N, N]]) -> list[tuple[N, N]]:
    """The intersection of two sorted lists of disjoint half-open intervals."""
    out: list[tuple[N, N]] = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo = max(a[i][0], b[j][0])
        hi = min(a[i][1], b[j][1])
        if lo < hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def _hhmm(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}"


def format_ranges(ranges: Ranges) -> str:
    return ",".join(f"{_hhmm(s)}-{_hhmm(e)}" for s, e in ranges)


def format_days(days: Iterable[int]) -> str:
    """ISO weekdays as parse_days reads them back: runs of three or more as a range."""
    ordered = sorted(set(days))
    parts: list[str] = []
    run: list[int] = []
    for day in [*ordered, 99]:
        if run and day == run[-1] + 1:
            run.append(day)
            continue
        if len(run) >= 3:
            parts.append(f"{DAY_NAMES[run[0] - 1]}-{DAY_NAMES[run[-1] - 1]}")
        else:
            parts.extend(DAY_NAMES[d - 1] for d in run)
        run = [day]
    return ",".join(parts)


@dataclass(frozen=True, slots=True)
class WeeklyHours:
    """Open ranges of local time for each ISO weekday (index 0 = Monday)."""

    days: tuple[Ranges, Ranges, Ranges, Ranges, Ranges, Ranges, Ranges]

    ALWAYS: ClassVar[WeeklyHours]

    def __post_init__(self) -> None:
        if len(self.days) != 7:
            raise ValueError(f"weekly hours need 7 days, got {len(self.days)}")
        for ranges in self.days:
            if merge_ranges(ranges) != tuple(ranges) or any(
                s < 0 or e > DAY for s, e in ranges
            ):
                raise ValueError(f"ranges must be sorted, disjoint and within a day: {ranges}")

    @classmethod
    def build(cls, ranges_by_day: Mapping[int, Iterable[tuple[int, int]]]) -> WeeklyHours:
        """From ISO weekday -> ranges (seconds of the day); missing days are closed."""
        days = tuple(merge_ranges(ranges_by_day.get(d, ())) for d in range(1, 8))
        return cls(days)  # type: ignore[arg-type]

    def on(self, weekday: int) -> Ranges:
        return self.days[weekday - 1]

    def intersect(self, other: WeeklyHours) -> WeeklyHours:
        return WeeklyHours(tuple(  # type: ignore[arg-type]
            intersect_ranges(a, b) for a, b in zip(self.days, other.days, strict=True)
        ))

    @property
    def open_days(self) -> frozenset[int]:
        return frozenset(d for d in range(1, 8) if self.days[d - 1])

    def __str__(self) -> str:
        """Canonical text, read back by ``parse_weekly``: "mon-fri 09:00-20:00; sat ..."."""
        groups: dict[Ranges, list[int]] = {}
        for day, ranges in enumerate(self.days, start=1):
            if ranges:
                groups.setdefault(ranges, []).append(day)
        if not groups:
            return "closed"
        return "; ".join(f"{format_days(days)} {format_ranges(ranges)}"
                         for ranges, days in groups.items())


WeeklyHours.ALWAYS = WeeklyHours((FULL_DAY,) * 7)


@dataclass(frozen=True, slots=True)
class LocalRule:
    """What one rule allows by a local clock: its weekly hours, never on a closed
    date, and only on the dates it is in effect (``since``/``until`` inclusive; on
    other dates it allows the whole day). ``closed`` is any container of dates, so a
    holiday calendar can answer lazily for whatever year is asked about."""

    hours: WeeklyHours = WeeklyHours.ALWAYS
    closed: Container[dt.date] = frozenset()
    since: dt.date | None = None
    until: dt.date | None = None

    def in_effect(self, day: dt.date) -> bool:
        return (self.since is None or day >= self.since) and (
            self.until is None or day <= self.until)

    def ranges_on(self, day: dt.date) -> Ranges:
        if not self.in_effect(day):
            return FULL_DAY
        if day in self.closed:
            return ()
        return self.hours.on(day.isoweekday())


def _seconds_of_day(local: dt.datetime) -> float:
    return local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6


def _in_ranges(ranges: Ranges, seconds: float) -> bool:
    return any(start <= seconds < end for start, end in ranges)


@dataclass(frozen=True, slots=True)
class Term:
    """Rules that must all allow a call, judged by the clock of ``zone``."""

    zone: ZoneInfo
    rules: tuple[LocalRule, ...]

    def ranges_on(self, day: dt.date) -> Ranges:
        ranges = FULL_DAY
        for rule in self.rules:
            ranges = intersect_ranges(ranges, rule.ranges_on(day))
            if not ranges:
                break
        return ranges

    def allows(self, instant: dt.datetime) -> bool:
        """Whether this term's clock, at ``instant``, reads an allowed local time."""
        local = instant.astimezone(self.zone)
        return _in_ranges(self.ranges_on(local.date()), _seconds_of_day(local))


@dataclass(frozen=True, slots=True)
class Schedule:
    """When calls may be placed: every term allows it, the instant is in [start, end),
    and (for ``next_open`` and ``callable_intervals``) the schedule stays open for
    ``margin`` seconds from then on."""

    terms: tuple[Term, ...]
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    margin: int = 0
    bounds: tuple[float, float] = field(init=False)

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            value = getattr(self, name)
            if value is not None:
                _require_aware(value, name)
        if self.margin < 0:
            raise ValueError(f"margin must be >= 0 seconds, got {self.margin}")
        lo = self.start.timestamp() if self.start is not None else float("-inf")
        hi = self.end.timestamp() if self.end is not None else float("inf")
        object.__setattr__(self, "bounds", (lo, hi))


def _require_aware(value: dt.datetime, name: str = "now") -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")


def is_open(schedule: Schedule, instant: dt.datetime) -> bool:
    """Whether every term's clock reads an allowed time at ``instant`` and the instant
    is within the campaign's start and end. The margin is not looked at: this is the
    window itself, read off the clocks."""
    _require_aware(instant)
    lo, hi = schedule.bounds
    if not lo <= instant.timestamp() < hi:
        return False
    return all(term.allows(instant) for term in schedule.terms)


def _offset(zone: ZoneInfo, t: int) -> int:
    offset = dt.datetime.fromtimestamp(t, zone).utcoffset()
    assert offset is not None
    return int(offset.total_seconds())


def _segments(zone: ZoneInfo, lo: int, hi: int) -> list[tuple[int, int, int]]:
    """[start, end) pieces of [lo, hi) in which the zone's UTC offset is constant, with
    that offset. Zones change offset on whole seconds, so bisecting to one second
    finds each change exactly."""
    pieces: list[tuple[int, int, int]] = []
    start, offset = lo, _offset(zone, lo)
    left = lo  # invariant: the offset at ``left`` is ``offset``
    while left < hi - 1:
        right = min(left + _PROBE, hi - 1)
        if _offset(zone, right) == offset:
            left = right
            continue
        while right - left > 1:
            mid = (left + right) // 2
            if _offset(zone, mid) == offset:
                left = mid
            else:
                right = mid
        pieces.append((start, right, offset))
        start = left = right
        offset = _offset(zone, right)
    pieces.append((start, hi, offset))
    return pieces


def term_intervals(term: Term, lo: int, hi: int) -> Intervals:
    """The instants of [lo, hi) (epoch seconds) at which the term allows a call."""
    out: Intervals = []
    for seg_lo, seg_hi, offset in _segments(term.zone, lo, hi):
        wall_lo, wall_hi = seg_lo + offset, seg_hi + offset
        day = wall_lo // DAY
        while day * DAY < wall_hi:
            base = day * DAY
            for start, end in term.ranges_on(dt.date.fromordinal(_EPOCH_ORDINAL + day)):
                a, b = max(base + start, wall_lo), min(base + end, wall_hi)
                if a < b:
                    a, b = a - offset, b - offset
                    if out and out[-1][1] >= a:
                        out[-1] = (out[-1][0], b)
                    else:
                        out.append((a, b))
            day += 1
    return out


IntervalsOf = Callable[[Term, int, int], Intervals]


def open_intervals(
    schedule: Schedule, lo: int, hi: int, *, intervals_of: IntervalsOf | None = None
) -> Intervals:
    """``is_open`` as UTC intervals over [lo, hi) (epoch seconds, whole).
    ``intervals_of`` computes one term's (``term_intervals``, or a cache of it)."""
    intervals_of = intervals_of or term_intervals
    start, end = schedule.bounds
    result: Intervals = [(max(float(lo), start), min(float(hi), end))]
    if result[0][0] >= result[0][1]:
        return []
    for term in schedule.terms:
        result = intersect(result, intervals_of(term, lo, hi))
        if not result:
            break
    return result


def callable_intervals(
    schedule: Schedule, lo: int, hi: int, *, intervals_of: IntervalsOf | None = None
) -> Intervals:
    """The instants of [lo, hi) from which the schedule stays open for the margin.

    Computed from the open intervals over [lo, hi + margin), so the answer is exact
    for every instant before ``hi``; an interval reaching ``hi`` may really go on."""
    margin = schedule.margin
    opened = open_intervals(schedule, lo, hi + margin, intervals_of=intervals_of)
    return [(a, min(b - margin, hi)) for a, b in opened if b - margin > a]


def first_in(intervals: Intervals, t: float) -> tuple[float, float] | None:
    """The interval containing ``t``, else the first one after it, else None."""
    index = bisect.bisect_right(intervals, (t, float("inf")))
    if index and intervals[index - 1][1] > t:
        return intervals[index - 1]
    return intervals[index] if index < len(intervals) else None


def next_open(schedule: Schedule, now: dt.datetime, within: dt.timedelta
              ) -> dt.datetime | None:
    """The earliest instant in [now, now + within] at which a call may be placed (the
    schedule open from it for the whole margin), in UTC; None if there is none."""
    _require_aware(now)
    t = now.timestamp()
    lo = int(t // 1)
    hi = int(t + within.total_seconds()) + 1
    found = first_in(callable_intervals(schedule, lo, hi), t)
    if found is None or max(found[0], t) > t + within.total_seconds():
        return None
    if found[0] <= t:
        return now.astimezone(UTC)
    return dt.datetime.fromtimestamp(found[0], UTC)


# ---- parsing operator shorthand ----------------------------------------------------------

_DAY_NAMES = {
    name: number
    for number, names in enumerate(
        (
            ("mon", "monday"),
            ("tue", "tues", "tuesday"),
            ("wed", "wednesday"),
            ("thu", "thur", "thurs", "thursday"),
            ("fri", "friday"),
            ("sat", "saturday"),
            ("sun", "sunday"),
        ),
        start=1,
    )
    for name in names
}
_DAY_SETS = {
    "all": frozenset(range(1, 8)),
    "*": frozenset(range(1, 8)),
    "daily": frozenset(range(1, 8)),
    "weekdays": frozenset(range(1, 6)),
    "weekends": frozenset({6, 7}),
    "weekend": frozenset({6, 7}),
}


def _day(token: str, text: str) -> int:
    if token in _DAY_NAMES:
        return _DAY_NAMES[token]
    if re.fullmatch(r"[1-7]", token):
        return int(token)
    raise ValueError(f"unknown weekday {token!r} in {text!r}: use mon..sun or 1..7 (1 = Monday)")


def parse_days(text: str) -> frozenset[int]:
    """ISO weekdays from operator shorthand: "mon-fri", "mon,wed,sat", "1-5", "all".

    A range may wrap past Sunday ("fri-mon" is Friday to Monday) because that is how
    people write a long weekend; "weekdays" and "weekends" are accepted too.
    """
    cleaned = text.strip().lower()
    if not cleaned:
        raise ValueError("no weekdays given: use e.g. mon-fri, mon,wed,sat, 1-5 or all")
    days: set[int] = set()
    for part in cleaned.split(","):
        part = part.strip()
        if part in _DAY_SETS:
            days |= _DAY_SETS[part]
            continue
        if not part:
            raise ValueError(f"empty item in weekday list {text!r}")
        bounds = [b.strip() for b in part.split("-")]
        if len(bounds) == 1:
            days.add(_day(bounds[0], text))
        elif len(bounds) == 2:
            first, last = _day(bounds[0], text), _day(bounds[1], text)
            span = (last - first) % 7
            days.update((first - 1 + i) % 7 + 1 for i in range(span + 1))
        else:
            raise ValueError(f"bad weekday range {part!r} in {text!r}: use e.g. mon-fri")
    return frozenset(days)


_CLOCK = re.compile(r"(?P<h>[0-9]{1,2})(?::(?P<m>[0-9]{2}))?")


def _clock(token: str, text: str, *, is_end: bool) -> int:
    """Seconds of the day; "24:00" (or "00:00" as an end) is the end of the day."""
    match = _CLOCK.fullmatch(token.strip())
    if match is None:
        raise ValueError(f"bad time {token.strip()!r} in {text!r}: use HH or HH:MM")
    hour, minute = int(match["h"]), int(match["m"] or 0)
    if (hour == 24 and minute == 0) or (is_end and hour == 0 and minute == 0):
        if not is_end:
            raise ValueError(f"24:00 can only end a range, in {text!r}")
        return DAY
    if hour > 23 or minute > 59:
        raise ValueError(f"time {token.strip()!r} out of range in {text!r}")
    return hour * 3600 + minute * 60


def parse_hours(text: str) -> tuple[int, int]:
    """(start, end) seconds of the day from "09:00-20:00" or "9-20"; an end of 24:00
    (or 00:00) is midnight. Ranges past midnight are refused rather than guessed at:
    which day's rules apply after midnight is a legal question, and two ranges on two
    days say it plainly."""
    parts = text.split("-")
    if len(parts) != 2:
        raise ValueError(f"bad hours {text!r}: use START-END, e.g. 09:00-20:00 or 9-20")
    start = _clock(parts[0], text, is_end=False)
    end = _clock(parts[1], text, is_end=True)
    if start >= end:
        raise ValueError(
            f"end ({parts[1].strip()}) must be after start ({parts[0].strip()}) in {text!r}; "
            "ranges past midnight are not supported (24:00 as end means midnight)"
        )
    return start, end


def parse_weekly(text: str) -> WeeklyHours:
    """Weekly hours from "mon-fri 09:00-12:00,13:00-20:00; sat 10:00-14:00".

    Each ``;``-separated part is weekdays (``parse_days``) and comma-separated ranges
    (``parse_hours``); a day named twice gets the ranges of both parts, and
    overlapping ranges are joined. Days not named are closed."""
    by_day: dict[int, list[tuple[int, int]]] = {}
    parts = [part.strip() for part in text.split(";")]
    if not any(parts):
        raise ValueError("no calendar given: use e.g. 'mon-fri 09:00-20:00; sat 10:00-14:00'")
    for part in parts:
        if not part:
            raise ValueError(f"empty part in calendar {text!r}")
        pieces = part.split(None, 1)
        if len(pieces) != 2:
            raise ValueError(
                f"bad calendar part {part!r} in {text!r}: use DAYS RANGES, e.g. mon-fri 09:00-20:00"
            )
        days = parse_days(pieces[0])
        ranges = [parse_hours(r) for r in pieces[1].replace(" ", "").split(",")]
        for day in days:
            by_day.setdefault(day, []).extend(ranges)
    return WeeklyHours.build(by_day)


def parse_instant(text: str) -> dt.datetime:
    """An instant from ISO-8601 with its zone ("2027-03-01T09:00-05:00", "...Z"): a time
    without a zone is refused, since it would mean a different instant on every clock."""
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO-8601 date and time "
                         "(e.g. 2027-03-01T09:00-05:00)") from None
    if value.utcoffset() is None:
        raise ValueError(f"{text!r} has no time zone: add one, e.g. {text.strip()}+00:00 "
                         f"or {text.strip()}-05:00")
    return value


def parse_until(text: str) -> dt.datetime:
    """When something stops (a do-not-call entry's expiry): a date, meaning its start in
    UTC ("2027-06-01": no longer blocking from that day), or an ISO-8601 instant with
    its zone. In UTC."""
    cleaned = text.strip()
    try:
        day = dt.date.fromisoformat(cleaned)
    except ValueError:
        try:
            return parse_instant(cleaned).astimezone(dt.UTC)
        except ValueError:
            raise ValueError(f"{cleaned[:40]!r} is not a date (YYYY-MM-DD) or an ISO-8601 "
                             "instant with its zone (e.g. 2027-06-01T09:00-05:00)") from None
    return dt.datetime.combine(day, dt.time(), dt.UTC)


def parse_dates(text: str) -> frozenset[dt.date]:
    """Dates from "2026-12-24,2026-12-31" and ranges "2026-12-24..2026-12-26"."""
    dates: set[dt.date] = set()
    for part in (p.strip() for p in text.split(",")):
        if not part:
            raise ValueError(f"empty item in date list {text!r}")
        first, _, last = part.partition("..")
        try:
            lo = dt.date.fromisoformat(first.strip())
            hi = dt.date.fromisoformat(last.strip()) if last else lo
        except ValueError:
            raise ValueError(f"bad date {part!r} in {text!r}: use YYYY-MM-DD or "
                             "YYYY-MM-DD..YYYY-MM-DD") from None
        if hi < lo:
            raise ValueError(f"date range {part!r} ends before it starts")
        if (hi - lo).days > 366:
            raise ValueError(f"date range {part!r} is longer than a year")
        dates.update(lo + dt.timedelta(days=i) for i in range((hi - lo).days + 1))
    return frozenset(dates)
