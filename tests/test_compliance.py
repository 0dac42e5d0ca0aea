"""The claim's decision: take (with the record of why), defer to the next opening, or
skip with a reason; the cached intervals agree with the window arithmetic."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dialer import rules
from dialer.compliance import (
    HORIZON,
    CallingPolicy,
    Defer,
    Location,
    Planner,
    Skip,
    Take,
    stored_location,
)
from dialer.windows import is_open, next_open, parse_weekly

UTC = dt.UTC
NOW = dt.datetime(2026, 12, 2, 15, 0, tzinfo=UTC)  # Wednesday
PACKS = (rules.load("us-tcpa"), rules.load("us-states"))


def policy(calendar: str = "all 09:00-20:00", **kwargs: object) -> CallingPolicy:
    return CallingPolicy(parse_weekly(calendar), **kwargs)  # type: ignore[arg-type]


def where(*zones: str, states: tuple[str, ...] = ()) -> Location:
    return Location(zones, "number", states, ("number",) * len(states))


def test_take_records_why_the_call_is_legal() -> None:
    planner = Planner(policy(packs=PACKS))
    location = where("America/Chicago", "America/New_York", states=("FL",))
    decision = planner.decide(location, NOW)  # 09:00 CST, 10:00 EST
    assert isinstance(decision, Take)
    record = decision.record
    assert record.location == location and record.decided_at == NOW
    assert record.local_times == ("2026-12-02T09:00:00-06:00", "2026-12-02T10:00:00-05:00")
    assert record.rule_packs == tuple(p.tag for p in PACKS)
    assert record.rules == ("calendar", "us-tcpa/hours", "us-states/FL-hours")
    # Florida's 20:00 in New York (01:00 UTC) is the first close, less the 60 s margin.
    assert decision.until == dt.datetime(2026, 12, 3, 0, 59, tzinfo=UTC)


def test_defer_to_the_first_minute_every_zone_is_open() -> None:
    planner = Planner(policy())
    decision = planner.decide(where("America/New_York", "America/Los_Angeles"), NOW)
    assert decision == Defer(dt.datetime(2026, 12, 2, 17, 0, tzinfo=UTC))


def test_zones_that_never_share_a_minute_are_skipped_with_a_fix() -> None:
    decision = Planner(policy()).decide(where("Europe/London", "Pacific/Auckland"), NOW)
    assert isinstance(decision, Skip)
    assert decision.reason.startswith("no common calling time: its zones Europe/London, "
                                      "Pacific/Auckland never share")
    assert "timezone column" in decision.reason


def test_a_shut_window_makes_contacts_wait_not_skip() -> None:
    # Nine days of blackout: nobody can be called in 8 days, which is no contact's fault.
    off = frozenset(NOW.date() + dt.timedelta(days=i) for i in range(10))
    planner = Planner(policy(blackouts=off))
    for location in (where("Europe/London", "Pacific/Auckland"), where("Europe/London")):
        assert planner.decide(location, NOW) == Defer(NOW + HORIZON)
    # A scheduled start far ahead: the same.
    later = Planner(policy(start_at=NOW + dt.timedelta(days=30)))
    assert later.decide(where("Europe/London"), NOW) == Defer(NOW + HORIZON)


def test_no_zone_needs_the_campaign_default() -> None:
    decision = Planner(policy()).decide(where(), NOW)
    assert isinstance(decision, Skip) and decision.reason.startswith("no time zone")
    assert "--timezone" in decision.reason
    with_default = Planner(policy(default_zone="Europe/London")).decide(where(), NOW)
    assert isinstance(with_default, Take)
    assert with_default.record.location.zones == ("Europe/London",)
    assert with_default.record.location.zone_source == "campaign default"


def test_the_default_zone_is_ignored_when_the_number_gives_zones() -> None:
    planner = Planner(policy(default_zone="UTC"))
    assert planner.decide(where("Asia/Tokyo"), NOW) == Defer(
        dt.datetime(2026, 12, 3, 0, 0, tzinfo=UTC))


def test_next_due_keeps_a_time_inside_the_window_and_moves_one_outside() -> None:
    planner = Planner(policy())
    assert planner.next_due(where("UTC"), NOW) == NOW
    assert planner.next_due(where("UTC"), NOW + dt.timedelta(hours=6)) == dt.datetime(
        2026, 12, 3, 9, 0, tzinfo=UTC)
    # Nothing within 8 days (or no zone): left to the claim, which skips or waits.
    assert planner.next_due(where("Europe/London", "Pacific/Auckland"), NOW) == NOW
    assert planner.next_due(where(), NOW) == NOW


ZONES = ["America/New_York", "America/Los_Angeles", "America/Chicago", "Europe/London",
         "Australia/Sydney", "Australia/Perth", "Asia/Kolkata", "Pacific/Auckland",
         "America/Santiago", "Pacific/Chatham", "UTC"]
STATES = ["OK", "FL", "TX", "AL", "RI", "MS", "PA", "US", "CA"]


@st.composite
def cases(draw: st.DrawFn) -> tuple[CallingPolicy, Location, dt.datetime, list[int]]:
    start = draw(st.integers(0, 20))
    end = draw(st.integers(start + 1, 24))
    days = draw(st.sampled_from(["all", "mon-fri", "mon-sat", "sat,sun", "tue"]))
    now = draw(st.datetimes(dt.datetime(2024, 1, 1), dt.datetime(2028, 12, 1),
                            timezones=st.just(UTC)))
    blackouts = draw(st.frozensets(st.integers(-2, 9).map(
        lambda d: now.date() + dt.timedelta(days=d)), max_size=3))
    chosen = policy(f"{days} {start:02d}:00-{end:02d}:00", blackouts=blackouts,
                    margin=draw(st.sampled_from([0, 60, 300])),
                    packs=PACKS if draw(st.booleans()) else ())
    zones = tuple(sorted(draw(st.sets(st.sampled_from(ZONES), min_size=1, max_size=4))))
    states = tuple(draw(st.lists(st.sampled_from(STATES), max_size=2, unique=True)))
    later = draw(st.lists(st.integers(0, 3 * 86400) | st.integers(0, 600), max_size=8))
    return chosen, where(*zones, states=states), now, later


@settings(max_examples=300, deadline=None)
@given(case=cases())
def test_the_cached_decision_is_the_window_arithmetic(
    case: tuple[CallingPolicy, Location, dt.datetime, list[int]]
) -> None:
    """One planner, asked at several instants (its cache spans days), decides what
    next_open says for a fresh schedule; a take's ``until`` is the first instant from
    which the window does not stay open through the margin."""
    chosen, location, now, later = case
    planner = Planner(chosen)
    schedule = chosen.schedule(location)
    for t in [now, *(now + dt.timedelta(seconds=s) for s in sorted(later))]:
        decision = planner.decide(location, t)
        assert decision == Planner(chosen).decide(location, t)  # what it remembers holds
        expected = next_open(schedule, t, HORIZON)
        if expected == t:
            assert isinstance(decision, Take), (t, decision)
            until = decision.until
            assert is_open(schedule, until + dt.timedelta(seconds=chosen.margin - 1))
            if until < t + HORIZON:  # else: open past the cached span, cut at its end
                assert next_open(schedule, until, HORIZON) != until
            assert next_open(schedule, until - dt.timedelta(seconds=1), HORIZON) == (
                until - dt.timedelta(seconds=1))
        elif expected is not None:
            assert decision == Defer(expected)
        else:
            assert isinstance(decision, Skip) or decision == Defer(t + HORIZON)


def test_stored_location_works_out_contacts_from_before_the_migration() -> None:
    stored = stored_location("+14155552671", ["America/Los_Angeles"], "csv", [], [], None)
    assert stored == (Location(("America/Los_Angeles",), "csv"), False)
    fresh, changed = stored_location("+14055550100", None, None, None, None, "texas")
    assert changed and fresh == Location(("America/Chicago",), "number", ("TX", "OK"),
                                         ("csv", "number"))
    kept, _ = stored_location("+14055550100", ["America/Denver"], "migrated", None, None, "??")
    assert kept == Location(("America/Denver",), "migrated", ("OK",), ("number",))
    abroad, _ = stored_location("+442079460958", None, None, None, None, "WA")
    assert abroad == Location(("Europe/London",), "number")


def test_rules_read_on_a_fixed_clock_get_a_term_of_their_own() -> None:
    schedule = policy(packs=PACKS).schedule(where("America/Chicago", states=("MS",)))
    assert [t.zone.key for t in schedule.terms] == ["America/Chicago", "Etc/GMT+6"]
    summer = dt.datetime(2026, 7, 1, 8, 30, tzinfo=ZoneInfo("America/Chicago"))
    assert not is_open(schedule, summer)  # 07:30 Central Standard Time


@pytest.mark.parametrize("margin", [0, 60])
def test_the_margin_is_the_campaigns(margin: int) -> None:
    planner = Planner(policy(margin=margin))
    decision = planner.decide(where("UTC"), dt.datetime(2026, 12, 2, 19, 59, 30, tzinfo=UTC))
    assert isinstance(decision, Take) is (margin < 30)


def test_the_queries_find_location_skips_by_the_reasons_the_planner_gives() -> None:
    from dialer import compliance, queries

    for name in ("requeue_location_skips", "requeue_relocated"):
        text = queries.get(name)
        assert f"'{compliance.NO_ZONE}%'" in text and f"'{compliance.NO_COMMON_TIME}%'" in text
