"""Calling windows: wall-clock hours on the clocks of every zone, across DST and the
date line, checked against a brute-force oracle that reads each clock minute by minute."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dialer.windows import (
    DAY,
    LocalRule,
    Schedule,
    Term,
    WeeklyHours,
    callable_intervals,
    first_in,
    is_open,
    next_open,
    open_intervals,
    parse_dates,
    parse_days,
    parse_hours,
    parse_weekly,
)

UTC = dt.UTC
WEEK = dt.timedelta(days=8)
H = 3600


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def one_zone(hours: str, zone: str, **schedule: object) -> Schedule:
    return Schedule((Term(ZoneInfo(zone), (LocalRule(parse_weekly(hours)),)),), **schedule)  # type: ignore[arg-type]


OFFICE = "mon-fri 09:00-20:00"


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
        ("09:00-20:00", (9 * H, 20 * H)),
        ("9-20", (9 * H, 20 * H)),
        ("9:30-17:45", (9 * H + 1800, 17 * H + 2700)),
        (" 08:00 - 12:00 ", (8 * H, 12 * H)),
        ("00:00-24:00", (0, DAY)),
        ("22-24", (22 * H, DAY)),
        ("22:00-00:00", (22 * H, DAY)),
    ],
)
def test_parse_hours(text: str, expected: tuple[int, int]) -> None:
    assert parse_hours(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "START-END"),
        ("09:00", "START-END"),
        ("9-12-15", "START-END"),
        ("20:00-09:00", "past midnight"),
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


def test_parse_weekly_several_ranges_and_days() -> None:
    week = parse_weekly("mon-fri 09:00-12:00,13:00-20:00; sat 10:00-14:00")
    assert week.on(1) == week.on(5) == ((9 * H, 12 * H), (13 * H, 20 * H))
    assert week.on(6) == ((10 * H, 14 * H),)
    assert week.on(7) == ()
    assert week.open_days == frozenset(range(1, 7))
    assert str(week) == "mon-fri 09:00-12:00,13:00-20:00; sat 10:00-14:00"


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("all 00:00-24:00", "mon-sun 00:00-24:00"),
        # A day named twice gets both parts; overlapping and touching ranges join.
        ("mon-fri 9-12; mon 11-14, 14-15", "mon 09:00-15:00; tue-fri 09:00-12:00"),
        ("sun,mon 08:00-21:00", "mon,sun 08:00-21:00"),
        ("mon,wed,fri 9-17", "mon,wed,fri 09:00-17:00"),
    ],
)
def test_weekly_hours_round_trip(text: str, canonical: str) -> None:
    week = parse_weekly(text)
    assert str(week) == canonical
    assert parse_weekly(str(week)) == week


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no calendar"),
        ("mon-fri", "DAYS RANGES"),
        ("mon-fri 09:00-20:00;", "empty part"),
        ("noday 9-17", "unknown weekday"),
        ("mon 17-9", "past midnight"),
    ],
)
def test_parse_weekly_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_weekly(text)


def test_parse_dates() -> None:
    assert parse_dates("2026-12-24, 2026-12-31..2027-01-02") == {
        dt.date(2026, 12, 24), dt.date(2026, 12, 31), dt.date(2027, 1, 1), dt.date(2027, 1, 2)}
    for bad, message in (("2026-13-01", "bad date"), ("2026-12-02..2026-12-01", "ends before"),
                         ("2026-01-01..2027-06-01", "longer than a year"),
                         ("2026-01-01,,2026-01-02", "empty")):
        with pytest.raises(ValueError, match=message):
            parse_dates(bad)


# --- one zone: the daylight-saving cases, by table ------------------------------------------


@pytest.mark.parametrize(
    ("hours", "zone", "now", "expected"),
    [
        # Open now: the very instant, microseconds and all.
        (OFFICE, "America/New_York", "2024-01-08T15:00:00.123456", "2024-01-08T15:00:00.123456"),
        # Before opening on a weekday, and after closing on Friday (-> Monday).
        (OFFICE, "America/New_York", "2024-01-08T13:00:00", "2024-01-08T14:00:00"),
        (OFFICE, "America/New_York", "2024-01-13T01:30:00", "2024-01-15T14:00:00"),
        (OFFICE, "America/New_York", "2024-01-09T01:00:00", "2024-01-09T14:00:00"),
        # New York spring forward (Sun 2024-03-10, 02:00 EST -> 03:00 EDT at 07:00 UTC):
        # 09:00 is 09:00 EDT; a range opening inside the gap opens when the clock lands at
        # 03:00; a range entirely inside the gap is skipped to the next day.
        ("all 09:00-20:00", "America/New_York", "2024-03-10T05:00", "2024-03-10T13:00"),
        ("all 02:30-05:00", "America/New_York", "2024-03-10T05:00", "2024-03-10T07:00"),
        ("all 02:00-02:45", "America/New_York", "2024-03-10T05:00", "2024-03-11T06:00"),
        # New York fall back (Sun 2024-11-03, 02:00 EDT -> 01:00 EST at 06:00 UTC): an
        # ambiguous 01:30 is met first in EDT; and once closed at 01:30 EDT, the clock
        # falls back to 01:00, inside 00:30-01:30 again: by the wall clock it is open.
        ("all 09:00-20:00", "America/New_York", "2024-11-03T06:30", "2024-11-03T14:00"),
        ("all 01:30-05:00", "America/New_York", "2024-11-03T04:00", "2024-11-03T05:30"),
        ("all 00:30-01:30", "America/New_York", "2024-11-03T05:40", "2024-11-03T06:00"),
        # London spring forward and fall back.
        ("all 01:15-06:00", "Europe/London", "2024-03-31T00:00", "2024-03-31T01:00"),
        ("all 01:30-06:00", "Europe/London", "2024-10-26T23:00", "2024-10-27T00:30"),
        # Lord Howe moves 30 minutes (+10:30 <-> +11).
        ("all 02:10-06:00", "Australia/Lord_Howe", "2024-10-05T13:00", "2024-10-05T15:30"),
        ("all 01:45-06:00", "Australia/Lord_Howe", "2024-04-06T13:00", "2024-04-06T14:45"),
        # India: no DST, a half-hour offset; Saturday night -> Monday 09:00 IST.
        ("mon-sat 09:00-21:00", "Asia/Kolkata", "2024-06-01T16:00", "2024-06-03T03:30"),
        # Chatham (+12:45 / +13:45): 02:45 -> 03:45 on Sun 2024-09-29 (14:00 UTC).
        ("all 03:00-06:00", "Pacific/Chatham", "2024-09-28T12:00", "2024-09-28T14:00"),
        # Date line: Monday 09:00 at UTC+14 is Sunday 19:00 UTC; at UTC-11 Monday 20:00.
        (OFFICE, "Pacific/Kiritimati", "2024-01-07T18:00", "2024-01-07T19:00"),
        (OFFICE, "Pacific/Pago_Pago", "2024-01-07T18:00", "2024-01-08T20:00"),
        # Days that never happened: Samoa skipped Friday 2011-12-30, Kiritimati skipped
        # Saturday 1994-12-31; a Friday-only or Saturday-only window waits a week.
        ("fri 09:00-17:00", "Pacific/Apia", "2011-12-29T12:00", "2012-01-05T19:00"),
        ("sat 09:00-17:00", "Pacific/Kiritimati", "1994-12-30T00:00", "1995-01-06T19:00"),
    ],
)
def test_next_open_one_zone(hours: str, zone: str, now: str, expected: str) -> None:
    schedule = one_zone(hours, zone)
    result = next_open(schedule, utc(now), WEEK)
    assert result == utc(expected)
    assert result.tzinfo is UTC
    assert is_open(schedule, result)


def test_next_open_returns_utc_for_a_non_utc_now() -> None:
    now = dt.datetime(2024, 1, 8, 8, 0, tzinfo=ZoneInfo("America/New_York"))
    result = next_open(one_zone(OFFICE, "America/New_York"), now, WEEK)
    assert result == utc("2024-01-08T14:00") and result is not None and result.tzinfo is UTC


def test_none_within_the_horizon() -> None:
    schedule = one_zone("mon 09:00-10:00", "UTC")
    assert next_open(schedule, utc("2024-01-08T10:00"), dt.timedelta(days=6)) is None
    assert next_open(schedule, utc("2024-01-08T10:00"), WEEK) == utc("2024-01-15T09:00")


def test_the_margin_closes_a_range_early_and_a_call_at_the_edge_is_refused() -> None:
    schedule = one_zone("all 08:00-21:00", "America/New_York", margin=60)
    # 20:58:59.999 EST: a call then rings before 21:00; from 20:59:00 it may not.
    late = utc("2024-01-09T01:58:59.999")
    assert next_open(schedule, late, WEEK) == late
    assert next_open(schedule, utc("2024-01-09T01:59:00"), WEEK) == utc("2024-01-09T13:00")
    # ... while the window itself is open to the end.
    assert is_open(schedule, utc("2024-01-09T01:59:59"))


def test_midnight_is_no_range_end_when_the_next_day_goes_on() -> None:
    schedule = one_zone("all 00:00-24:00", "UTC", margin=600)
    assert next_open(schedule, utc("2024-01-08T23:59:30"), WEEK) == utc("2024-01-08T23:59:30")


def test_every_zone_must_be_open() -> None:
    # 14:00 UTC: 09:00 in New York, 06:00 in Los Angeles.
    rule = LocalRule(parse_weekly("all 09:00-20:00"))
    both = Schedule(tuple(Term(ZoneInfo(z), (rule,)) for z in ("America/New_York",
                                                                "America/Los_Angeles")))
    assert not is_open(both, utc("2024-01-08T14:00"))
    assert next_open(both, utc("2024-01-08T14:00"), WEEK) == utc("2024-01-08T17:00")
    # London and Auckland never share 09:00-20:00.
    apart = Schedule(tuple(Term(ZoneInfo(z), (rule,)) for z in ("Europe/London",
                                                                 "Pacific/Auckland")))
    assert next_open(apart, utc("2024-01-08T00:00"), WEEK) is None


def test_closed_dates_rules_in_effect_and_campaign_bounds() -> None:
    christmas = LocalRule(closed=frozenset({dt.date(2026, 12, 25)}))
    later = LocalRule(parse_weekly("mon-sat 09:00-19:00"), since=dt.date(2026, 12, 27))
    schedule = Schedule((Term(ZoneInfo("America/New_York"),
                              (LocalRule(parse_weekly("all 09:00-20:00")), christmas, later)),),
                        start=utc("2026-12-24T00:00"), end=utc("2027-01-01T00:00"))
    assert not is_open(schedule, utc("2026-12-23T15:00"))  # before the start
    assert is_open(schedule, utc("2026-12-24T15:00"))
    assert not is_open(schedule, utc("2026-12-25T15:00"))  # closed date, NY local
    # The mon-sat 09:00-19:00 rule is in force from Sunday the 27th (local dates).
    assert is_open(schedule, utc("2026-12-27T00:30"))      # Sat 19:30 EST: not yet
    assert not is_open(schedule, utc("2026-12-27T15:00"))  # Sunday: closed by it
    assert is_open(schedule, utc("2026-12-28T15:00"))      # Monday 10:00
    assert not is_open(schedule, utc("2026-12-29T00:30"))  # Monday 19:30: closed by it
    assert not is_open(schedule, utc("2027-01-01T15:00"))  # after the end
    assert next_open(schedule, utc("2026-12-25T03:00"), WEEK) == utc("2026-12-26T14:00")


# --- property: against reading every clock, minute by minute ---------------------------------

ZONES = [
    "UTC",
    "America/New_York",
    "America/St_Johns",
    "America/Santiago",  # southern hemisphere DST
    "Europe/London",
    "Europe/Dublin",  # negative DST in tzdata
    "Africa/Casablanca",  # DST suspended for Ramadan: two changes a month apart
    "Asia/Kolkata",
    "Asia/Tehran",
    "Australia/Sydney",
    "Australia/Lord_Howe",  # 30-minute DST
    "Pacific/Chatham",
    "Pacific/Kiritimati",
    "Pacific/Apia",
    "Antarctica/Troll",  # +0 / +2
]


@dataclass(frozen=True)
class RawRule:
    """A rule as plain data, read by the oracle without dialer.windows."""

    ranges: dict[int, list[tuple[int, int]]]  # ISO weekday -> [start, end) minutes
    closed: frozenset[dt.date]
    since: dt.date | None
    until: dt.date | None

    def local(self) -> LocalRule:
        week = WeeklyHours.build({d: [(s * 60, e * 60) for s, e in r]
                                  for d, r in self.ranges.items()})
        return LocalRule(week, self.closed, self.since, self.until)

    def allows(self, local: dt.datetime) -> bool:
        day = local.date()
        if (self.since and day < self.since) or (self.until and day > self.until):
            return True
        if day in self.closed:
            return False
        minute = local.hour * 60 + local.minute + local.second / 60
        return any(s <= minute < e for s, e in self.ranges.get(local.isoweekday(), []))


@dataclass(frozen=True)
class RawSchedule:
    terms: list[tuple[str, list[RawRule]]]
    start: dt.datetime | None
    end: dt.datetime | None
    margin: int

    def schedule(self) -> Schedule:
        return Schedule(tuple(Term(ZoneInfo(z), tuple(r.local() for r in rules))
                              for z, rules in self.terms), self.start, self.end, self.margin)

    def open(self, t: dt.datetime) -> bool:
        """The oracle: every zone's clock read directly."""
        if (self.start and t < self.start) or (self.end and t >= self.end):
            return False
        return all(all(rule.allows(t.astimezone(ZoneInfo(z))) for rule in rules)
                   for z, rules in self.terms)


MINUTE = dt.timedelta(minutes=1)


def _minute_after(t: dt.datetime) -> dt.datetime:
    return t.replace(second=0, microsecond=0) + MINUTE


class Oracle:
    """Brute force: the window is open or shut on whole minutes (every range, offset
    change and bound below is minute-aligned), so a call is allowed at t when the
    window is open at t and at every minute boundary up to t + margin: it stays open
    through the whole margin."""

    def __init__(self, raw: RawSchedule) -> None:
        self.raw = raw
        self._open: dict[dt.datetime, bool] = {}

    def open_minute(self, m: dt.datetime) -> bool:
        if m not in self._open:
            self._open[m] = self.raw.open(m)
        return self._open[m]

    def callable(self, t: dt.datetime) -> bool:
        if not self.raw.open(t):
            return False
        m = _minute_after(t)
        end = t + dt.timedelta(seconds=self.raw.margin)
        while m <= end:
            if not self.open_minute(m):
                return False
            m += MINUTE
        return True


def _changes(zone: str) -> list[dt.datetime]:
    tz = ZoneInfo(zone)
    t = utc("2023-01-01T00:00")
    found = []
    previous = t.astimezone(tz).utcoffset()
    while t.year < 2026:
        t += dt.timedelta(hours=1)
        offset = t.astimezone(tz).utcoffset()
        if offset != previous:
            found.append(t)
        previous = offset
    return found


NEAR_CHANGES = [(zone, t) for zone in ZONES for t in _changes(zone)]
MINUTES = st.one_of(st.integers(0, 24 * 60), st.sampled_from([0, 60, 90, 120, 150, 180, 1440]))


@st.composite
def raw_rules(draw: st.DrawFn, near: dt.date) -> RawRule:
    ranges: dict[int, list[tuple[int, int]]] = {}
    for day in draw(st.frozensets(st.integers(1, 7), max_size=7)):
        for _ in range(draw(st.integers(1, 3))):
            a, b = sorted((draw(MINUTES), draw(MINUTES)))
            if a < b:
                ranges.setdefault(day, []).append((a, b))
    offsets = st.integers(-3, 10).map(lambda d: near + dt.timedelta(days=d))
    closed = draw(st.frozensets(offsets, max_size=3))
    since = draw(st.none() | offsets)
    until = draw(st.none() | offsets)
    if since and until and until < since:
        since, until = until, since
    return RawRule(ranges, closed, since, until)


@st.composite
def raw_schedules(draw: st.DrawFn) -> tuple[RawSchedule, dt.datetime]:
    """Zones and an instant: half the time near one of the zones' offset changes."""
    if draw(st.booleans()):
        zone, change = draw(st.sampled_from(NEAR_CHANGES))
        now = change + dt.timedelta(seconds=draw(st.integers(-2 * 86400, 2 * 86400)))
        zones = [zone, *draw(st.lists(st.sampled_from(ZONES), max_size=2))]
    else:
        now = draw(st.datetimes(dt.datetime(1990, 1, 1), dt.datetime(2037, 12, 1),
                                timezones=st.just(UTC)))
        zones = draw(st.lists(st.sampled_from(ZONES), min_size=1, max_size=3))
    zones = list(dict.fromkeys(zones))
    near = now.date()
    shared = draw(st.lists(raw_rules(near), min_size=1, max_size=3))
    terms = [(zone, shared) for zone in zones]
    if draw(st.booleans()):  # a rule on a fixed clock ("Central Standard Time")
        terms.append((draw(st.sampled_from(["Etc/GMT+6", *ZONES])), [draw(raw_rules(near))]))
    aligned = st.integers(-2 * 1440, 6 * 1440).map(
        lambda m: now.replace(second=0, microsecond=0) + dt.timedelta(minutes=m))
    start, end = draw(st.none() | aligned), draw(st.none() | aligned)
    margin = draw(st.sampled_from([0, 0, 1, 59, 60, 61, 90, 600, 3600]))
    return RawSchedule(terms, start, end, margin), now


@settings(max_examples=300, deadline=None)
@given(case=raw_schedules(), probes=st.lists(st.integers(-3 * 86400, 3 * 86400), max_size=20))
def test_is_open_reads_every_clock(case: tuple[RawSchedule, dt.datetime], probes: list[int]
                                   ) -> None:
    raw, now = case
    schedule = raw.schedule()
    for offset in [0, *probes]:
        t = now + dt.timedelta(seconds=offset)
        assert is_open(schedule, t) == raw.open(t), t


@settings(max_examples=200, deadline=None)
@given(case=raw_schedules())
def test_next_open_is_the_first_minute_a_scan_finds(case: tuple[RawSchedule, dt.datetime]
                                                    ) -> None:
    raw, now = case
    oracle = Oracle(raw)
    schedule = raw.schedule()
    result = next_open(schedule, now, WEEK)
    # The scan: now itself, then every minute boundary up to now + 8 days.
    expected = now if oracle.callable(now) else None
    m = _minute_after(now)
    limit = result if result is not None else now + WEEK
    while expected is None and m <= limit:
        if oracle.callable(m):
            expected = m
        m += MINUTE
    assert result == expected
    if result is not None:
        # The window is open for the whole margin from the result.
        assert all(raw.open(result + dt.timedelta(seconds=s))
                   for s in range(0, raw.margin, max(1, raw.margin // 7)))


@settings(max_examples=150, deadline=None)
@given(case=raw_schedules())
def test_intervals_are_the_oracle_over_a_day(case: tuple[RawSchedule, dt.datetime]) -> None:
    raw, now = case
    oracle = Oracle(raw)
    schedule = raw.schedule()
    lo = int(now.timestamp()) // 60 * 60
    hi = lo + DAY
    opened = open_intervals(schedule, lo, hi)
    callable_ = callable_intervals(schedule, lo, hi)
    for interval in (*opened, *callable_):
        assert interval[0] % 60 == 0 and (interval[1] % 60 == 0 or interval[1] == hi
                                           or raw.margin % 60)
    for minute in range(lo, hi, 60):
        t = dt.datetime.fromtimestamp(minute, UTC)
        assert _inside(opened, minute) == oracle.open_minute(t), t
        assert _inside(callable_, minute) == oracle.callable(t), t


def _inside(intervals: Sequence[tuple[float, float]], t: float) -> bool:
    found = first_in(list(intervals), t)
    return found is not None and found[0] <= t < found[1]


def test_naive_instants_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        is_open(one_zone(OFFICE, "UTC"), dt.datetime(2024, 1, 8, 12))
    with pytest.raises(ValueError, match="timezone-aware"):
        Schedule((), start=dt.datetime(2024, 1, 8))
