"""Caps and quiet periods as pure arithmetic: parsing, counting per number and subject,
the instant a rolling window frees, the rule packs' caps by state."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialer import rules
from dialer.caps import (
    OPEN_CALL_RECHECK,
    Call,
    Cap,
    CapPolicy,
    Scope,
    call_seen,
    format_period,
    parse_cap,
    parse_caps,
    parse_quiet,
    subject_key,
)

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)


def call(hours_ago: float, subject: str = "", *, talked: bool = False, open_: bool = False
         ) -> Call:
    at = NOW - hours_ago * H
    return Call(at, subject, at + dt.timedelta(minutes=2) if talked else None, open_)


@pytest.mark.parametrize(("text", "expected"), [
    ("3/24h", (3, DAY, Scope.SUBJECT)),
    (" 7 / 7d ", (7, 7 * DAY, Scope.SUBJECT)),
    ("5/2d/number", (5, 2 * DAY, Scope.NUMBER)),
    ("1/90m/subject", (1, dt.timedelta(minutes=90), Scope.SUBJECT)),
    ("2/1h30m", (2, dt.timedelta(minutes=90), Scope.SUBJECT)),
])
def test_caps_as_operators_write_them(text: str, expected: tuple[int, dt.timedelta, Scope]
                                      ) -> None:
    cap = parse_cap(text)
    assert (cap.calls, cap.period, cap.scope) == expected
    assert parse_cap(str(cap)) == cap  # what is stored reads back the same


@pytest.mark.parametrize(("text", "message"), [
    ("3", "use CALLS/PERIOD"),
    ("3/24x", "bad duration '24x'"),
    ("0/24h", "1 to 1000 calls"),
    ("1001/24h", "1 to 1000 calls"),
    ("3/30s", "must be from 1m to 90d"),
    ("3/91d", "must be from 1m to 90d"),
    ("3/24h/person", "only /number"),
    ("3/24h,", "empty item"),
])
def test_bad_caps_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_caps(text)


def test_cap_lists_and_periods() -> None:
    assert parse_caps("none") == parse_caps("") == ()
    assert [str(c) for c in parse_caps("3/24h,7/7d,3/1d")] == ["3/24h", "7/7d"]
    assert [format_period(p) for p in (DAY, 2 * DAY, 36 * H, dt.timedelta(minutes=90),
                                       dt.timedelta(seconds=61))] == [
        "24h", "2d", "36h", "90m", "61s"]
    assert parse_quiet("7d") == 7 * DAY and parse_quiet("none") is None


def test_subjects() -> None:
    assert subject_key(None, None, "ignored") == ""
    assert subject_key("collections", None, None) == "collections"
    assert subject_key("collections", "debt_id", " D-17 ") == "collections#D-17"
    # A contact without a value shares one subject with every such contact.
    assert subject_key(None, "debt_id", None) == subject_key(None, "debt_id", "") == "#"


def test_a_cap_counts_the_window_and_frees_when_the_oldest_call_leaves_it() -> None:
    policy = CapPolicy(caps=(parse_cap("2/24h"),))
    calls = [call(30), call(20), call(5)]  # 30 h ago is outside the window
    check = policy.check(subject="", states=(), calls=calls, now=NOW)
    [counted] = check.counted
    assert counted.calls == 2
    assert counted.frees_at == NOW - 20 * H + DAY  # when the call of 20 h ago leaves
    assert check.until == counted.frees_at and check.entries == ("campaign:2/24h=2",)
    assert policy.check(subject="", states=(), calls=calls[:2], now=NOW).until is None


def test_subject_and_number_scopes() -> None:
    calls = [call(1, "debt#A"), call(2, "debt#A"), call(3, "debt#B")]
    per_subject = CapPolicy(caps=(parse_cap("2/24h"),))
    assert per_subject.check(subject="debt#B", states=(), calls=calls, now=NOW).until is None
    assert per_subject.check(subject="debt#A", states=(), calls=calls, now=NOW).until == (
        NOW - 2 * H + DAY)
    per_number = CapPolicy(caps=(parse_cap("3/24h/number"),))
    assert per_number.check(subject="debt#C", states=(), calls=calls, now=NOW).until == (
        NOW - 3 * H + DAY)


def test_a_call_claimed_an_instant_after_now_counts() -> None:
    """Another process's claim may carry a later instant than this one: it is a call
    all the same (no upper bound on the window)."""
    later = Call(NOW + dt.timedelta(milliseconds=5), "", None, True)
    check = CapPolicy(caps=(parse_cap("1/24h"),)).check(subject="", states=(), calls=[later],
                                                        now=NOW)
    assert check.until == later.at + DAY


def test_the_quiet_period_after_a_conversation_on_the_subject() -> None:
    policy = CapPolicy(quiet=7 * DAY)
    talked = call(48, "debt#A", talked=True)
    assert talked.conversation_at is not None
    check = policy.check(subject="debt#A", states=(), calls=[talked, call(1, "debt#A")],
                         now=NOW)
    assert check.quiet is not None and check.quiet.last_conversation == talked.conversation_at
    assert check.until == talked.conversation_at + 7 * DAY
    assert check.entries == ("quiet:7d=1",)
    # Another debt of the same person is not quiet; a conversation 8 days ago is over.
    assert policy.check(subject="debt#B", states=(), calls=[talked], now=NOW).until is None
    assert policy.check(subject="debt#A", states=(), calls=[call(8 * 24, "debt#A",
                                                                  talked=True)],
                        now=NOW).until is None
    # A call under way may become a conversation: look again a minute later.
    under_way = policy.check(subject="debt#A", states=(), calls=[call(0, "debt#A", open_=True)],
                             now=NOW)
    assert under_way.until == NOW + OPEN_CALL_RECHECK and under_way.quiet is not None
    assert under_way.quiet.open_call and under_way.entries == ("quiet:7d=0",)


@pytest.mark.parametrize(("state", "outcome", "talked", "open_"), [
    ("final", "human", True, False),
    ("final", "completed", True, False),  # AMD off: nobody can tell it was not a person
    ("final", "opted_out", True, False),
    ("live", "opted_out", True, True),  # opted out, call not ended yet
    ("final", "voicemail_left", False, False),
    ("final", "busy", False, False),
    ("final", None, False, True),  # ended, waiting for its AMD result
    ("requested", None, False, True),
    ("unknown", None, False, True),
])
def test_what_an_attempt_says_about_the_call(state: str, outcome: str | None, talked: bool,
                                             open_: bool) -> None:
    ended = NOW + dt.timedelta(minutes=3) if state == "final" else None
    seen = call_seen(at=NOW, subject="s", state=state, outcome=outcome, final_at=ended)
    assert (seen.conversation_at is not None, seen.open) == (talked, open_)
    if talked:
        assert seen.conversation_at == (ended or NOW)


def test_the_packs_caps_bind_by_state() -> None:
    pack = rules.load("us-states")
    caps = {rule.spec.id: rule for rule in pack.caps}
    assert set(caps) >= {"FL-calls", "OK-calls", "MD-calls"}
    assert str(caps["FL-calls"].cap) == "3/24h" and caps["FL-calls"].cap.scope is Scope.SUBJECT
    assert caps["FL-calls"].spec.citation.startswith("Fla. Stat. 501.616(6)(b)")
    # Oklahoma's "same subject" qualifier is unverified: counted per number.
    assert caps["OK-calls"].cap.scope is Scope.NUMBER
    policy = CapPolicy(caps=(parse_cap("7/7d"),), rules=pack.caps)
    assert [c.source for c in policy.applicable(("FL",))] == ["campaign", "us-states/FL-calls"]
    assert [c.source for c in policy.applicable(("CA",))] == ["campaign"]
    # A number of no one state (toll-free) is bound by every state's caps.
    assert {c.source for c in policy.applicable(("US",))} == {
        "campaign", "us-states/FL-calls", "us-states/OK-calls", "us-states/MD-calls"}
    assert policy.lookback == 7 * DAY
    assert not CapPolicy().counts and CapPolicy(quiet=DAY).counts


def test_cap_rules_are_checked_when_a_pack_loads() -> None:
    head = 'name = "x"\nversion = "1"\ntitle = "t"\nscope = "s"\n[[rules]]\nid = "c"\n' \
           'label = "l"\nstates = ["FL"]\ncitation = "c"\nsource = "https://example.com"\n' \
           'status = "verified"\n'
    pack = rules.parse_pack("x", head + 'kind = "cap"\ncalls = 3\nperiod = "24h"\n')
    assert [str(r.cap) for r in pack.caps] == ["3/24h"] and pack.rules == ()
    for body, message in [
        ('kind = "cap"\ncalls = 3\n', "needs `calls` and `period`"),
        ('kind = "cap"\ncalls = 3\nperiod = "24h"\nhours = "all 08:00-20:00"\n',
         "has no `hours`"),
        ('kind = "hours"\nhours = "all 08:00-20:00"\ncalls = 3\n', "has no `calls`"),
        ('kind = "cap"\ncalls = 3\nperiod = "100d"\n', "must be from 1m to 90d"),
        ('kind = "cap"\ncalls = 0\nperiod = "24h"\n', "greater than or equal to 1"),
    ]:
        with pytest.raises(rules.PackError, match=message):
            rules.parse_pack("x", head + body)


def test_a_cap_refuses_values_outside_its_bounds() -> None:
    with pytest.raises(ValueError, match="1 to 1000 calls"):
        Cap(0, DAY)
    with pytest.raises(ValueError, match="period"):
        Cap(1, dt.timedelta(seconds=5))


def _count_at(t: dt.datetime, times: list[dt.datetime], period: dt.timedelta) -> int:
    return sum(1 for x in times if t - period < x)


@given(st.lists(st.integers(min_value=0, max_value=72 * 60), max_size=12),
       st.integers(min_value=1, max_value=5), st.integers(min_value=1, max_value=48))
def test_until_is_the_first_instant_the_cap_allows_a_call(
        minutes_ago: list[int], limit: int, hours: int) -> None:
    """Against counting: at ``until`` fewer than ``limit`` calls are in the window (with no
    new call placed meanwhile) and a microsecond before it there are not."""
    period = dt.timedelta(hours=hours)
    times = [NOW - dt.timedelta(minutes=m) for m in minutes_ago]
    policy = CapPolicy(caps=(Cap(limit, period),))
    until = policy.check(subject="", states=(), calls=[Call(t, "", None, False) for t in times],
                         now=NOW).until
    if _count_at(NOW, times, period) < limit:
        assert until is None
        return
    assert until is not None and until > NOW
    assert _count_at(until, times, period) < limit
    assert _count_at(until - dt.timedelta(microseconds=1), times, period) >= limit
