"""Rule packs: the shipped data loads, every rule cites its source, and each state's
rules allow and refuse the local times their statutes name."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from dialer import rules
from dialer.compliance import CallingPolicy, Location, Planner
from dialer.places import SUBDIVISIONS
from dialer.windows import WeeklyHours, is_open

PACKS = rules.available()
STATUSES = {"verified", "verified-secondary", "partial", "unverified"}


def test_the_shipped_packs() -> None:
    assert PACKS == ("us-states", "us-tcpa")
    for name in PACKS:
        pack = rules.load(name)
        assert pack.name == name and pack.version and pack.tag == f"{name}@{pack.version}"
        assert pack.rules


@pytest.mark.parametrize(
    "rule", [r for name in PACKS for r in (*rules.load(name).rules, *rules.load(name).caps)],
    ids=lambda r: r.ref)
def test_every_rule_cites_its_source_and_says_how_far_it_was_checked(
        rule: rules.Rule | rules.CapRule) -> None:
    spec = rule.spec
    assert spec.citation and spec.source.startswith("http") and spec.label
    assert spec.status in STATUSES
    if spec.status in ("partial", "unverified"):
        assert spec.note, "a rule not fully verified says what is missing"
    else:
        assert spec.quote, "a verified rule quotes the text it was checked against"
    assert all(s == "*" or s in SUBDIVISIONS for s in spec.states)


def test_malformed_packs_name_the_file_the_rule_and_the_field() -> None:
    good = rules.load("us-tcpa")
    assert rules.parse_pack("x", '''name = "x"
version = "1"
title = "t"
scope = "s"
rules = []''').rules == ()
    bad = '''name = "x"
version = "1"
title = "t"
scope = "s"
[[rules]]
id = "late"
kind = "hours"
label = "l"
states = ["ZZ"]
hours = "all 21:00-08:00"
citation = "c"
source = "https://example.com"
status = "verified"'''
    with pytest.raises(rules.PackError, match=r"x\.toml: rule late\.states: .*ZZ.*; "
                                              r"rule late\.hours: .*past midnight"):
        rules.parse_pack("x", bad)
    with pytest.raises(rules.PackError, match="calls itself 'x'"):
        rules.parse_pack("y", bad.replace('"ZZ"', '"OK"').replace("21:00-08:00", "8-9"))
    with pytest.raises(rules.PackError, match=r"x\.toml: "):
        rules.parse_pack("x", "name = ")
    with pytest.raises(rules.PackError, match="unknown rule pack 'eu'"):
        rules.load("eu")
    assert rules.parse_names(" us-tcpa, us-states,us-tcpa ") == ("us-tcpa", "us-states")
    assert rules.parse_names("none") == () and good.rules[0].ref == "us-tcpa/hours"


PLANNER = Planner(CallingPolicy(WeeklyHours.ALWAYS, margin=0,
                                packs=(rules.load("us-tcpa"), rules.load("us-states"))))


def allowed(zone: str, states: tuple[str, ...], local: str) -> bool:
    """Whether the packs allow a call at ``local`` (wall time in ``zone``)."""
    at = dt.datetime.fromisoformat(local).replace(tzinfo=ZoneInfo(zone))
    location = Location((zone,), "csv", states, ("csv",) * len(states))
    return is_open(PLANNER.policy.schedule(location), at)


@pytest.mark.parametrize(
    ("zone", "states", "local", "expected"),
    [
        # Federal: 08:00-21:00 for anyone in the US, nothing for anyone elsewhere.
        ("America/Denver", ("CO",), "2026-12-02T07:59", False),
        ("America/Denver", ("CO",), "2026-12-02T08:00", True),
        ("America/Denver", ("CO",), "2026-12-02T20:59", True),
        ("America/Denver", ("CO",), "2026-12-02T21:00", False),
        ("Europe/Paris", (), "2026-12-02T23:00", True),
        ("America/Puerto_Rico", ("PR",), "2026-12-02T21:30", False),
        # Florida 501.616(6)(a): 8 p.m.
        ("America/New_York", ("FL",), "2026-12-02T19:59", True),
        ("America/New_York", ("FL",), "2026-12-02T20:00", False),
        # Oklahoma: 08:00-20:00 and automated calls 09:00-21:00: 09:00-20:00.
        ("America/Chicago", ("OK",), "2026-12-02T08:30", False),
        ("America/Chicago", ("OK",), "2026-12-02T09:00", True),
        ("America/Chicago", ("OK",), "2026-12-02T20:00", False),
        # Texas: Sunday from noon.
        ("America/Chicago", ("TX",), "2026-12-06T11:59", False),
        ("America/Chicago", ("TX",), "2026-12-06T12:00", True),
        ("America/Chicago", ("TX",), "2026-12-05T09:00", True),
        # Alabama: 08:00-20:00, no Sundays, no holidays (observed days too).
        ("America/Chicago", ("AL",), "2026-12-02T19:30", True),
        ("America/Chicago", ("AL",), "2026-12-06T12:00", False),
        ("America/Chicago", ("AL",), "2026-12-25T12:00", False),
        ("America/Chicago", ("AL",), "2026-07-03T12:00", False),  # Independence Day observed
        ("America/Chicago", ("AL",), "2026-04-27T12:00", False),  # Confederate Memorial Day
        # Mississippi: "Central Standard Time" read literally: 09:00-20:00 CDT in summer.
        ("America/Chicago", ("MS",), "2026-07-01T08:30", False),
        ("America/Chicago", ("MS",), "2026-07-01T09:00", True),
        ("America/Chicago", ("MS",), "2026-12-02T08:30", True),
        ("America/Chicago", ("MS",), "2026-12-06T12:00", False),  # Sunday
        # Rhode Island: Mon-Fri 09:00-18:00, Sat 10:00-17:00, not on holidays or May 4.
        ("America/New_York", ("RI",), "2026-12-02T17:59", True),
        ("America/New_York", ("RI",), "2026-12-02T18:00", False),
        ("America/New_York", ("RI",), "2026-12-05T09:30", False),
        ("America/New_York", ("RI",), "2026-12-05T16:30", True),
        ("America/New_York", ("RI",), "2026-05-04T12:00", False),
        ("America/New_York", ("RI",), "2026-11-03T12:00", False),  # Election Day
        # Utah: Sundays and legal holidays (Pioneer Day).
        ("America/Denver", ("UT",), "2026-07-24T12:00", False),
        ("America/Denver", ("UT",), "2026-07-23T20:30", True),
        # Pennsylvania: 09:00-20:00 (strictest claim), legal holidays with Good Friday,
        # and SB 992 (unverified) from 2026-10-18: 09:00-19:00, no Sundays.
        ("America/New_York", ("PA",), "2026-04-03T12:00", False),
        ("America/New_York", ("PA",), "2026-10-11T12:00", True),   # a Sunday before
        ("America/New_York", ("PA",), "2026-10-18T12:00", False),  # the first after
        ("America/New_York", ("PA",), "2026-12-02T19:30", False),
        ("America/New_York", ("PA",), "2026-12-02T18:30", True),
        # Louisiana (unverified): Saturday until 17:00, no Sundays, holidays (Mardi Gras).
        ("America/Chicago", ("LA",), "2026-12-05T17:30", False),
        ("America/Chicago", ("LA",), "2026-02-17T12:00", False),
        # South Carolina automated calls until 19:00; Connecticut from 09:00.
        ("America/New_York", ("SC",), "2026-12-02T19:00", False),
        ("America/New_York", ("CT",), "2026-12-02T08:30", False),
        # Two states (a Texan with an Oklahoma number): both apply.
        ("America/Chicago", ("TX", "OK"), "2026-12-06T12:30", True),
        ("America/Chicago", ("TX", "OK"), "2026-12-06T20:30", False),
        # A US number of no one state: every state's rules (Rhode Island's hours, the
        # Sunday bans, every holiday).
        ("America/New_York", ("US",), "2026-12-02T12:00", True),
        ("America/New_York", ("US",), "2026-12-02T18:30", False),
        ("America/New_York", ("US",), "2026-12-06T14:00", False),
        ("America/New_York", ("US",), "2026-02-17T12:00", False),  # Mardi Gras (LA)
    ],
)
def test_state_rules(zone: str, states: tuple[str, ...], local: str, expected: bool) -> None:
    assert allowed(zone, states, local) is expected


def test_a_contact_outside_the_us_is_bound_by_no_us_rule() -> None:
    assert PLANNER.policy.checks(()) == PLANNER.policy.checks(())
    assert [c.ref for c in PLANNER.policy.checks(())] == ["calendar"]
    refs = [c.ref for c in PLANNER.policy.checks(("OK",))]
    assert refs == ["calendar", "us-tcpa/hours", "us-states/OK-hours", "us-states/OK-adad-hours"]
    every = PLANNER.policy.checks(("US",))
    assert len(every) == 1 + sum(len(rules.load(n).rules) for n in PACKS)
