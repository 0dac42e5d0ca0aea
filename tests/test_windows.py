"""Calling windows: wall-clock hours in the recipient's zone, across DST and the date line."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dialer.windows import CallingWindow, is_open, next_opening, parse_days, parse_hours

UTC = dt.UTC
ALL = frozenset(range(1, 8))
WEEKDAYS = frozenset(range(1, 6))


def window(start: str, end: str, days: frozenset[int] = ALL) -> CallingWindow:
    return CallingWindow(
        start=dt.time.fromisoformat(start), end=dt.time.fromisoformat(end), days=days
    )


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


OFFICE = window("09:00", "20:00", WEEKDAYS)


# --- validation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"start": dt.time(20), "end": dt.time(9), "days": ALL}, "end"),  # overnight
        ({"start": dt.time(9), "end": dt.time(9), "days": ALL}, "end"),  # empty
        ({"start": dt.time(9), "end": dt.time(20), "days": frozenset()}, "days"),
        ({"start": dt.time(9), "end": dt.time(20), "days": frozenset({0})}, "days"),
        ({"start": dt.time(9), "end": dt.time(20), "days": frozenset({8})}, "days"),
        ({"start": dt.time(9), "end": dt.time(20), "days": frozenset({True})}, "days"),
        ({"start": dt.time(9), "end": dt.time(20), "days": {1, 2}}, "days"),
        ({"start": dt.time(9, tzinfo=UTC), "end": dt.time(20), "days": ALL}, "start"),
        ({"start": dt.time(9), "end": dt.time(20, tzinfo=UTC), "days": ALL}, "end"),
        ({"start": "09:00", "end": dt.time(20), "days": ALL}, "start"),
    ],
)
def test_invalid_windows_name_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        CallingWindow(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("start", "end"),
    [("00:00", "00:00"), ("09:00", "00:00"), ("23:59", "00:00"), ("00:00", "00:01")],
)
def test_valid_edges(start: str, end: str) -> None:
    window(start, end)


def test_always_is_open_every_minute_of_a_week() -> None:
    assert window("00:00", "00:00") == CallingWindow.ALWAYS
    zone = ZoneInfo("Pacific/Chatham")
    t = utc("2024-01-01T00:00")
    for minute in range(0, 7 * 24 * 60, 7):
        assert is_open(CallingWindow.ALWAYS, zone, t + dt.timedelta(minutes=minute))


# --- is_open ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("win", "zone", "now", "expected"),
    [
        # 2024-01-08 is a Monday; New York is UTC-5 in winter.
        (OFFICE, "America/New_York", "2024-01-08T13:59:59", False),
        (OFFICE, "America/New_York", "2024-01-08T14:00:00", True),  # start inclusive
        (OFFICE, "America/New_York", "2024-01-09T00:59:59", True),
        (OFFICE, "America/New_York", "2024-01-09T01:00:00", False),  # end exclusive
        (OFFICE, "America/New_York", "2024-01-13T15:00:00", False),  # Saturday
        (OFFICE, "UTC", "2024-01-13T15:00:00", False),
        (OFFICE, "Asia/Kolkata", "2024-01-08T03:30:00", True),  # 09:00 IST
        (OFFICE, "Asia/Kolkata", "2024-01-08T03:29:00", False),
        # Sunday 19:00 UTC is Monday 09:00 at UTC+14 and Sunday 08:00 at UTC-11.
        (OFFICE, "Pacific/Kiritimati", "2024-01-07T19:00:00", True),
        (OFFICE, "Pacific/Pago_Pago", "2024-01-07T19:00:00", False),
        # An end of midnight keeps the window open to the last microsecond of the day.
        (window("20:00", "00:00", frozenset({1})), "UTC", "2024-01-08T23:59:59.999999", True),
        (window("20:00", "00:00", frozenset({1})), "UTC", "2024-01-09T00:00:00", False),
        (window("00:00", "00:00", frozenset({2})), "UTC", "2024-01-09T00:00:00", True),
    ],
)
def test_is_open(win: CallingWindow, zone: str, now: str, expected: bool) -> None:
    assert is_open(win, ZoneInfo(zone), utc(now)) is expected


def test_is_open_accepts_any_aware_datetime() -> None:
    eastern = dt.datetime(2024, 1, 8, 9, 0, tzinfo=ZoneInfo("America/New_York"))
    assert is_open(OFFICE, ZoneInfo("America/New_York"), eastern)
    assert not is_open(OFFICE, ZoneInfo("Asia/Tokyo"), eastern)  # 23:00 in Tokyo


@pytest.mark.parametrize("fn", [is_open, next_opening])
def test_naive_now_is_refused(fn: object) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        fn(OFFICE, ZoneInfo("UTC"), dt.datetime(2024, 1, 8, 12))  # type: ignore[operator]


# --- next_opening -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("win", "zone", "now", "expected"),
    [
        # Open now: the very instant, microseconds and all.
        (OFFICE, "America/New_York", "2024-01-08T15:00:00.123456", "2024-01-08T15:00:00.123456"),
        # Before opening on a weekday, and after closing on Friday (-> Monday).
        (OFFICE, "America/New_York", "2024-01-08T13:00:00", "2024-01-08T14:00:00"),
        (OFFICE, "America/New_York", "2024-01-13T01:30:00", "2024-01-15T14:00:00"),
        (OFFICE, "America/New_York", "2024-01-09T01:00:00", "2024-01-09T14:00:00"),
        # New York spring forward (Sun 2024-03-10, 02:00 EST -> 03:00 EDT at 07:00 UTC):
        # 09:00 is 09:00 EDT; an opening inside the gap opens when the clock lands at 03:00;
        # a window entirely inside the gap is skipped to the next day.
        (window("09:00", "20:00"), "America/New_York", "2024-03-10T05:00", "2024-03-10T13:00"),
        (window("02:30", "05:00"), "America/New_York", "2024-03-10T05:00", "2024-03-10T07:00"),
        (window("02:00", "02:45"), "America/New_York", "2024-03-10T05:00", "2024-03-11T06:00"),
        # New York fall back (Sun 2024-11-03, 02:00 EDT -> 01:00 EST at 06:00 UTC):
        # 09:00 is 09:00 EST; an ambiguous 01:30 is met first in EDT.
        (window("09:00", "20:00"), "America/New_York", "2024-11-03T06:30", "2024-11-03T14:00"),
        (window("01:30", "05:00"), "America/New_York", "2024-11-03T04:00", "2024-11-03T05:30"),
        # ...and once closed at 01:30 EDT, the clock falls back to 01:00, inside 00:30-01:30
        # again: by the wall clock the window is open then.
        (window("00:30", "01:30"), "America/New_York", "2024-11-03T05:40", "2024-11-03T06:00"),
        # London spring forward (Sun 2024-03-31, 01:00 GMT -> 02:00 BST at 01:00 UTC).
        (window("01:15", "06:00"), "Europe/London", "2024-03-31T00:00", "2024-03-31T01:00"),
        (window("09:00", "20:00"), "Europe/London", "2024-03-31T00:00", "2024-03-31T08:00"),
        # London fall back (Sun 2024-10-27, 02:00 BST -> 01:00 GMT at 01:00 UTC).
        (window("01:30", "06:00"), "Europe/London", "2024-10-26T23:00", "2024-10-27T00:30"),
        (window("09:00", "20:00"), "Europe/London", "2024-10-26T23:00", "2024-10-27T09:00"),
        # Lord Howe moves 30 minutes: 02:00 -> 02:30 (+10:30 -> +11) on Sun 2024-10-06 ...
        (window("02:10", "06:00"), "Australia/Lord_Howe", "2024-10-05T13:00", "2024-10-05T15:30"),
        (window("09:00", "20:00"), "Australia/Lord_Howe", "2024-10-05T13:00", "2024-10-05T22:00"),
        # ... and 02:00 -> 01:30 (+11 -> +10:30) on Sun 2024-04-07: 01:45 is first met at +11.
        (window("01:45", "06:00"), "Australia/Lord_Howe", "2024-04-06T13:00", "2024-04-06T14:45"),
        # India has no DST and a half-hour offset; Saturday night -> Monday 09:00 IST.
        (
            window("09:00", "21:00", frozenset(range(1, 7))),
            "Asia/Kolkata",
            "2024-06-01T16:00",
            "2024-06-03T03:30",
        ),
        # Chatham (+12:45 / +13:45): 02:45 -> 03:45 on Sun 2024-09-29 (14:00 UTC).
        (window("09:00", "20:00"), "Pacific/Chatham", "2024-06-01T08:00", "2024-06-01T20:15"),
        (window("03:00", "06:00"), "Pacific/Chatham", "2024-09-28T12:00", "2024-09-28T14:00"),
        # Date line: Monday 09:00 at UTC+14 is Sunday 19:00 UTC; at UTC-11 it is Monday 20:00.
        (OFFICE, "Pacific/Kiritimati", "2024-01-07T18:00", "2024-01-07T19:00"),
        (OFFICE, "Pacific/Pago_Pago", "2024-01-07T18:00", "2024-01-08T20:00"),
        # Days that never happened: Samoa skipped Friday 2011-12-30, Kiritimati skipped
        # Saturday 1994-12-31; a Friday-only or Saturday-only window waits a week.
        (
            window("09:00", "17:00", frozenset({5})),
            "Pacific/Apia",
            "2011-12-29T12:00",
            "2012-01-05T19:00",
        ),
        (
            window("09:00", "17:00", frozenset({6})),
            "Pacific/Kiritimati",
            "1994-12-30T00:00",
            "1995-01-06T19:00",
        ),
        # One day a week, just missed: a week later.
        (window("09:00", "10:00", frozenset({1})), "UTC", "2024-01-08T10:00", "2024-01-15T09:00"),
    ],
)
def test_next_opening(win: CallingWindow, zone: str, now: str, expected: str) -> None:
    result = next_opening(win, ZoneInfo(zone), utc(now))
    assert result == utc(expected)
    assert result.tzinfo is UTC
    assert is_open(win, ZoneInfo(zone), result)


def test_next_opening_returns_utc_for_a_non_utc_now() -> None:
    now = dt.datetime(2024, 1, 8, 8, 0, tzinfo=ZoneInfo("America/New_York"))
    result = next_opening(OFFICE, ZoneInfo("America/New_York"), now)
    assert result == utc("2024-01-08T14:00")
    assert result.tzinfo is UTC


# --- property ---------------------------------------------------------------------------

ZONES = [
    "UTC",
    "America/New_York",
    "America/St_Johns",
    "America/Santiago",
    "Europe/London",
    "Europe/Dublin",  # negative DST in tzdata
    "Africa/Casablanca",  # DST suspended for Ramadan: two changes a month apart
    "Asia/Kolkata",
    "Asia/Tehran",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "Pacific/Kiritimati",
    "Pacific/Apia",
    "Antarctica/Troll",
]


@st.composite
def windows(draw: st.DrawFn) -> CallingWindow:
    start = draw(st.integers(0, 24 * 60 - 1))
    end = draw(st.integers(start + 1, 24 * 60))
    days = draw(st.frozensets(st.integers(1, 7), min_size=1))
    as_time = [dt.time(m // 60, m % 60) if m < 24 * 60 else dt.time(0) for m in (start, end)]
    return CallingWindow(start=as_time[0], end=as_time[1], days=days)


NOWS = st.datetimes(
    min_value=dt.datetime(1990, 1, 1), max_value=dt.datetime(2037, 12, 31), timezones=st.just(UTC)
)


def _offset_changes(zone: str) -> list[dt.datetime]:
    """Hours of 2023-2025 at which the zone's offset differs from the hour before."""
    tz = ZoneInfo(zone)
    t = utc("2023-01-01T00:00")
    changes = []
    previous = t.astimezone(tz).utcoffset()
    while t.year < 2026:
        t += dt.timedelta(hours=1)
        offset = t.astimezone(tz).utcoffset()
        if offset != previous:
            changes.append(t)
        previous = offset
    return changes


NEAR_CHANGES = [(zone, t) for zone in ZONES for t in _offset_changes(zone)]


@st.composite
def zone_and_now(draw: st.DrawFn) -> tuple[str, dt.datetime]:
    """Half the time any instant, half the time within two days of an offset change."""
    near: bool = draw(st.booleans())
    if near and NEAR_CHANGES:
        zone, change = draw(st.sampled_from(NEAR_CHANGES))
        seconds = draw(st.integers(-2 * 86400, 2 * 86400))
        return zone, change + dt.timedelta(seconds=seconds)
    return draw(st.sampled_from(ZONES)), draw(NOWS)


@settings(max_examples=500, deadline=None)
@given(
    win=windows(),
    zone_now=zone_and_now(),
    samples=st.lists(st.floats(0, 1, exclude_max=True), max_size=40),
)
def test_next_opening_is_the_first_open_instant(
    win: CallingWindow, zone_now: tuple[str, dt.datetime], samples: list[float]
) -> None:
    zone, now = zone_now
    tz = ZoneInfo(zone)
    result = next_opening(win, tz, now)
    assert result >= now
    assert is_open(win, tz, result)
    if result == now:
        return
    # Just before the result the window is still closed...
    assert not is_open(win, tz, result - dt.timedelta(microseconds=1))
    # ... and so at every minute-aligned instant strictly between now and the result:
    # the whole range when short, else the minutes near both ends and a random sample.
    first = now.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
    minutes = int((result - first).total_seconds() // 60) + 1
    offsets: Iterable[int]
    if minutes <= 3 * 24 * 60:
        offsets = range(minutes)
    else:
        ends = [*range(180), *range(minutes - 180, minutes)]
        offsets = sorted({*ends, *(int(f * minutes) for f in samples)})
    for offset in offsets:
        t = first + dt.timedelta(minutes=offset)
        if now < t < result:
            assert not is_open(win, tz, t), t


@settings(max_examples=200, deadline=None)
@given(win=windows(), zone_now=zone_and_now())
def test_next_opening_is_a_fixed_point(
    win: CallingWindow, zone_now: tuple[str, dt.datetime]
) -> None:
    zone, now = zone_now
    tz = ZoneInfo(zone)
    result = next_opening(win, tz, now)
    assert next_opening(win, tz, result) == result


# --- parsing ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mon-fri", {1, 2, 3, 4, 5}),
        ("Mon-Fri", {1, 2, 3, 4, 5}),
        ("mon,wed,sat", {1, 3, 6}),
        (" mon , wed ", {1, 3}),
        ("1-5", {1, 2, 3, 4, 5}),
        ("7", {7}),
        ("all", set(range(1, 8))),
        ("*", set(range(1, 8))),
        ("weekdays", {1, 2, 3, 4, 5}),
        ("weekends", {6, 7}),
        ("sat-sun", {6, 7}),
        ("fri-mon", {5, 6, 7, 1}),  # wraps past Sunday
        ("monday,Thursday", {1, 4}),
        ("tue-thu,sun", {2, 3, 4, 7}),
        ("mon-mon", {1}),
        ("1-3,mon", {1, 2, 3}),
    ],
)
def test_parse_days(text: str, expected: set[int]) -> None:
    assert parse_days(text) == frozenset(expected)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no weekdays"),
        ("   ", "no weekdays"),
        ("funday", "unknown weekday 'funday'"),
        ("0", "unknown weekday '0'"),
        ("8", "unknown weekday '8'"),
        ("1-8", "unknown weekday '8'"),
        ("mon,,fri", "empty item"),
        ("mon-wed-fri", "bad weekday range"),
        ("mon-", "unknown weekday ''"),
    ],
)
def test_parse_days_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_days(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("09:00-20:00", (dt.time(9), dt.time(20))),
        ("9-20", (dt.time(9), dt.time(20))),
        ("9:30-17:45", (dt.time(9, 30), dt.time(17, 45))),
        (" 08:00 - 12:00 ", (dt.time(8), dt.time(12))),
        ("00:00-24:00", (dt.time(0), dt.time(0))),
        ("22-24", (dt.time(22), dt.time(0))),
        ("22:00-00:00", (dt.time(22), dt.time(0))),
    ],
)
def test_parse_hours(text: str, expected: tuple[dt.time, dt.time]) -> None:
    assert parse_hours(text) == expected
    CallingWindow(start=expected[0], end=expected[1], days=ALL)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "START-END"),
        ("09:00", "START-END"),
        ("9-12-15", "START-END"),
        ("20:00-09:00", "overnight"),
        ("09:00-09:00", "must be after start"),
        ("24:00-10:00", "24:00 can only end"),
        ("25-26", "out of range"),
        ("09:60-10:00", "out of range"),
        ("9am-5pm", "bad time '9am'"),
        ("09:0-10:00", "bad time"),
        ("-10", "bad time"),
    ],
)
def test_parse_hours_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_hours(text)
