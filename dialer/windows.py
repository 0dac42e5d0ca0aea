"""Calling windows: when a contact may be called, in the contact's own local time.

Calling hours are a legal limit stated in wall-clock time ("9 am to 8 pm on
weekdays, recipient's time"), so a window is judged by what the recipient's clock
reads, not by elapsed hours. That one rule settles the daylight-saving cases: on a
spring-forward day a window opening inside the skipped hour opens when the clock
lands after the gap (03:00), and on a fall-back day an ambiguous opening time is met
the first time the clock shows it. Everything here is pure arithmetic: the caller
passes the instant, so tests and the simulator can drive any clock they like.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import ClassVar
from zoneinfo import ZoneInfo

__all__ = ["CallingWindow", "is_open", "next_opening", "parse_days", "parse_hours"]

MIDNIGHT = dt.time(0, 0)
UTC = dt.UTC

# Offsets are sampled this far apart to find UTC-offset transitions. Real zones never
# change offset twice within a few hours, so nothing is missed.
_PROBE_STEP = dt.timedelta(hours=3)
# A week of candidate days plus slack for a day removed by the date line or a gap.
_CHUNK_DAYS = 9
# A window with at least one weekday opens within weeks whatever the zone does; the
# bound only turns an impossible loop into an error.
_MAX_SEARCH_DAYS = 400


@dataclass(frozen=True, slots=True)
class CallingWindow:
    """Local opening hours on some ISO weekdays (1 = Monday .. 7 = Sunday).

    ``start`` is inclusive and ``end`` exclusive; an ``end`` of 00:00 means the end of
    the day, so 00:00-00:00 is the whole day. Windows that run past midnight are
    refused rather than guessed at: which day's rules would apply after midnight is a
    legal question, and an operator can express it with ``days`` and two campaigns.
    """

    start: dt.time
    end: dt.time
    days: frozenset[int]

    ALWAYS: ClassVar[CallingWindow]

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            value = getattr(self, name)
            if not isinstance(value, dt.time):
                raise ValueError(f"{name} must be a datetime.time, not {type(value).__name__}")
            if value.tzinfo is not None:
                raise ValueError(f"{name} must be a local (naive) time, got tzinfo {value.tzinfo}")
        if self.end != MIDNIGHT and self.start >= self.end:
            raise ValueError(
                f"end ({self.end:%H:%M}) must be after start ({self.start:%H:%M}); "
                "overnight windows are not supported (00:00 as end means midnight)"
            )
        if not isinstance(self.days, frozenset):
            raise ValueError(f"days must be a frozenset, not {type(self.days).__name__}")
        if not self.days:
            raise ValueError("days must name at least one weekday")
        bad = sorted(repr(d) for d in self.days if type(d) is not int or not 1 <= d <= 7)
        if bad:
            raise ValueError(f"days must be ISO weekdays 1..7 (1 = Monday), got {', '.join(bad)}")

    def contains_local(self, local: dt.datetime) -> bool:
        """Whether a wall-clock reading falls in the window (tzinfo is ignored)."""
        if local.isoweekday() not in self.days:
            return False
        clock = local.time()
        return self.start <= clock and (self.end == MIDNIGHT or clock < self.end)


CallingWindow.ALWAYS = CallingWindow(start=MIDNIGHT, end=MIDNIGHT, days=frozenset(range(1, 8)))


def _require_aware(now: dt.datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now must be timezone-aware, got naive {now.isoformat()}")


def is_open(window: CallingWindow, tz: ZoneInfo, now: dt.datetime) -> bool:
    """Whether the recipient's clock, at ``now``, reads a time inside the window."""
    _require_aware(now)
    return window.contains_local(now.astimezone(tz))


def next_opening(window: CallingWindow, tz: ZoneInfo, now: dt.datetime) -> dt.datetime:
    """The earliest instant at or after ``now`` at which ``is_open`` holds, in UTC.

    The open instants form left-closed intervals, so the answer is ``now`` itself or
    the left end of one: an instant where the clock reads a day's opening time (one
    of the two readings when the clock repeats an hour), or an instant where the
    clock jumps (an offset change, landing after a gap or back into the window). Those
    few candidates are checked against ``is_open`` in time order, so this function can
    never disagree with it.
    """
    _require_aware(now)
    now = now.astimezone(UTC)
    if is_open(window, tz, now):
        return now
    lo = now
    while lo - now < dt.timedelta(days=_MAX_SEARCH_DAYS):
        hi = lo + dt.timedelta(days=_CHUNK_DAYS)
        for candidate in sorted(_candidates(window, tz, lo, hi)):
            if candidate >= now and is_open(window, tz, candidate):
                return candidate
        lo = hi
    raise RuntimeError(f"no opening of {window} in {tz} within {_MAX_SEARCH_DAYS} days")


def _candidates(
    window: CallingWindow, tz: ZoneInfo, lo: dt.datetime, hi: dt.datetime
) -> set[dt.datetime]:
    """Instants in [lo, hi] where the window may open (a superset: callers check)."""
    found = set(_transitions(tz, lo, hi))
    first = lo.astimezone(tz).date() - dt.timedelta(days=1)
    last = hi.astimezone(tz).date() + dt.timedelta(days=1)
    day = first
    while day <= last:
        if day.isoweekday() in window.days:
            wall = dt.datetime.combine(day, window.start)
            for fold in (0, 1):
                instant = wall.replace(tzinfo=tz, fold=fold).astimezone(UTC)
                if lo <= instant <= hi:
                    found.add(instant)
        day += dt.timedelta(days=1)
    return found


def _transitions(tz: ZoneInfo, lo: dt.datetime, hi: dt.datetime) -> list[dt.datetime]:
    """The instants in (lo, hi] at which the zone's UTC offset changes."""
    found = []
    left = lo
    left_offset = left.astimezone(tz).utcoffset()
    while left < hi:
        right = min(left + _PROBE_STEP, hi)
        right_offset = right.astimezone(tz).utcoffset()
        if right_offset != left_offset:
            found.append(_bisect_change(tz, left, right, right_offset))
        left, left_offset = right, right_offset
    return found


def _bisect_change(
    tz: ZoneInfo, left: dt.datetime, right: dt.datetime, new: dt.timedelta | None
) -> dt.datetime:
    """The first instant of (left, right] already at offset ``new``.

    Zones change offset on whole seconds, so a bisection to one microsecond finds the
    exact instant however ``left`` was aligned.
    """
    step = dt.timedelta(microseconds=1)
    while right - left > step:
        mid = left + (right - left) // 2
        if mid.astimezone(tz).utcoffset() == new:
            right = mid
        else:
            left = mid
    return right


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


def _clock(token: str, text: str, *, is_end: bool) -> dt.time:
    match = _CLOCK.fullmatch(token.strip())
    if match is None:
        raise ValueError(f"bad time {token.strip()!r} in {text!r}: use HH or HH:MM")
    hour, minute = int(match["h"]), int(match["m"] or 0)
    if hour == 24 and minute == 0:
        if not is_end:
            raise ValueError(f"24:00 can only end a window, in {text!r}")
        return MIDNIGHT
    if hour > 23 or minute > 59:
        raise ValueError(f"time {token.strip()!r} out of range in {text!r}")
    return dt.time(hour, minute)


def parse_hours(text: str) -> tuple[dt.time, dt.time]:
    """(start, end) from "09:00-20:00" or "9-20"; "24:00" (or "00:00") as end is midnight.

    The pair is checked as a window would check it, so a CLI option fails at parse
    time with the same message instead of later at campaign creation.
    """
    parts = text.split("-")
    if len(parts) != 2:
        raise ValueError(f"bad hours {text!r}: use START-END, e.g. 09:00-20:00 or 9-20")
    start = _clock(parts[0], text, is_end=False)
    end = _clock(parts[1], text, is_end=True)
    CallingWindow(start=start, end=end, days=frozenset({1}))
    return start, end
