"""The outcome rules: every row of the table, the attempt boundary, backoff, jitter, windows."""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dialer.compliance import CallingPolicy, Location, Planner
from dialer.policy import (
    MAX_RETRY_DELAY,
    AmdAction,
    AmdMode,
    CampaignPolicy,
    Decision,
    Done,
    Fail,
    MachinePolicy,
    Outcome,
    Retry,
    RetryPolicy,
    classify,
    decide,
    on_answered_by,
    parse_duration,
    retry_policy_from_json,
    retry_policy_to_json,
    sip_is_transient,
)
from dialer.windows import parse_weekly

NOW = dt.datetime(2024, 1, 8, 15, 0, tzinfo=dt.UTC)  # a Monday
MIN = dt.timedelta(minutes=1)

EXACT = RetryPolicy(jitter=0.0)  # defaults: 3 attempts, busy 5m, no-answer 30m, failed 10m,
# machine 60m, canceled final, backoff 2
OFF = CampaignPolicy(retry=EXACT)
HANGUP = CampaignPolicy(retry=EXACT, amd_mode=AmdMode.ENABLE)
HANGUP_END = replace(HANGUP, amd_mode=AmdMode.DETECT_MESSAGE_END)
VOICEMAIL = CampaignPolicy(
    retry=EXACT, amd_mode=AmdMode.DETECT_MESSAGE_END, machine_policy=MachinePolicy.VOICEMAIL
)
VOICEMAIL_ENABLE = replace(VOICEMAIL, amd_mode=AmdMode.ENABLE)
ACCEPT = CampaignPolicy(retry=EXACT, amd_mode=AmdMode.ENABLE, machine_policy=MachinePolicy.ACCEPT)
UNKNOWN_MACHINE = replace(HANGUP, unknown_is_machine=True)
CANCEL_RETRY = CampaignPolicy(retry=replace(EXACT, canceled_delay=dt.timedelta(minutes=15)))
ONE_SHOT = CampaignPolicy(retry=replace(EXACT, max_attempts=1))


def run(
    policy: CampaignPolicy,
    status: str,
    answered_by: str | None = None,
    sip: int | None = None,
    attempt: int = 1,
    *,
    rng: random.Random | None = None,
    opening: Callable[[dt.datetime], dt.datetime] = lambda t: t,
) -> Decision:
    return decide(
        policy,
        attempt_no=attempt,
        call_status=status,
        answered_by=answered_by,
        sip_code=sip,
        now=NOW,
        rng=rng or random.Random(0),
        next_opening=opening,
    )


# --- decide: the rules, one row each ----------------------------------------------------

H, M, VL = Outcome.HUMAN, Outcome.MACHINE, Outcome.VOICEMAIL_LEFT
BUSY, NA = Outcome.BUSY, Outcome.NO_ANSWER
FT, FP, CAN = Outcome.FAILED_TRANSIENT, Outcome.FAILED_PERMANENT, Outcome.CANCELED


@pytest.mark.parametrize(
    ("policy", "status", "answered_by", "sip", "attempt", "expected"),
    [
        # Answered, AMD off: nobody knows who, the call is done.
        (OFF, "completed", None, None, 1, Done(Outcome.COMPLETED)),
        (OFF, "completed", None, None, 3, Done(Outcome.COMPLETED)),
        (OFF, "completed", "human", None, 1, Done(H)),  # trust AnsweredBy if it comes anyway
        # A human, under every machine policy, at any attempt (even past the maximum).
        (HANGUP, "completed", "human", None, 1, Done(H)),
        (VOICEMAIL, "completed", "human", None, 1, Done(H)),
        (ACCEPT, "completed", "human", None, 1, Done(H)),
        (HANGUP, "completed", "human", None, 3, Done(H)),
        (HANGUP, "completed", "human", None, 7, Done(H)),
        # Unknown: the campaign's choice. As a human by default ...
        (HANGUP, "completed", "unknown", None, 1, Done(H)),
        (HANGUP, "completed", None, None, 1, Done(H)),  # AMD on but no AnsweredBy: unknown
        (HANGUP, "completed", "machine_end_new", None, 1, Done(H)),  # a value Twilio adds later
        # ... or as a machine.
        (UNKNOWN_MACHINE, "completed", "unknown", None, 1, Retry(M, NOW + 60 * MIN)),
        (UNKNOWN_MACHINE, "completed", None, None, 1, Retry(M, NOW + 60 * MIN)),
        (replace(ACCEPT, unknown_is_machine=True), "completed", "unknown", None, 1, Done(M)),
        (replace(VOICEMAIL, unknown_is_machine=True), "completed", "unknown", None, 1, Done(M)),
        # Machine + accept: done.
        (ACCEPT, "completed", "machine_start", None, 1, Done(M)),
        (ACCEPT, "completed", "machine_end_beep", None, 1, Done(M)),
        # Machine + voicemail: a message left after the end of the greeting is done ...
        (VOICEMAIL, "completed", "machine_end_beep", None, 1, Done(VL)),
        (VOICEMAIL, "completed", "machine_end_silence", None, 1, Done(VL)),
        (VOICEMAIL, "completed", "machine_end_other", None, 1, Done(VL)),
        (VOICEMAIL, "completed", "machine_end_beep", None, 3, Done(VL)),
        # ... and with AMD Enable (no message-end detection) only a machine was reached.
        (VOICEMAIL_ENABLE, "completed", "machine_start", None, 1, Done(M)),
        (VOICEMAIL, "completed", "machine_start", None, 1, Done(M)),
        # Machine + hangup_retry: retry after machine_delay, with backoff, until attempts run out.
        (HANGUP, "completed", "machine_start", None, 1, Retry(M, NOW + 60 * MIN)),
        (HANGUP_END, "completed", "machine_end_beep", None, 1, Retry(M, NOW + 60 * MIN)),
        (HANGUP, "completed", "machine_start", None, 2, Retry(M, NOW + 120 * MIN)),
        (HANGUP, "completed", "machine_start", None, 3, Fail(M, "machine after 3 attempts")),
        # Fax: failed at once, under every policy.
        (OFF, "completed", "fax", None, 1, Fail(Outcome.FAX, "fax")),
        (HANGUP, "completed", "fax", None, 1, Fail(Outcome.FAX, "fax")),
        (ACCEPT, "completed", "fax", None, 1, Fail(Outcome.FAX, "fax")),
        (VOICEMAIL, "completed", "fax", None, 1, Fail(Outcome.FAX, "fax")),
        # Busy and no-answer: their own delays, backoff, the boundary at max_attempts.
        (OFF, "busy", None, None, 1, Retry(BUSY, NOW + 5 * MIN)),
        (OFF, "busy", None, 486, 2, Retry(BUSY, NOW + 10 * MIN)),
        (OFF, "busy", None, None, 3, Fail(BUSY, "busy after 3 attempts")),
        (OFF, "busy", None, None, 4, Fail(BUSY, "busy after 4 attempts")),
        (ONE_SHOT, "busy", None, None, 1, Fail(BUSY, "busy after 1 attempt")),
        (OFF, "no-answer", None, None, 1, Retry(NA, NOW + 30 * MIN)),
        (OFF, "no-answer", None, 487, 2, Retry(NA, NOW + 60 * MIN)),
        (OFF, "no-answer", None, None, 3, Fail(NA, "no-answer after 3 attempts")),
        (HANGUP, "no-answer", "unknown", None, 1, Retry(NA, NOW + 30 * MIN)),  # AMD irrelevant
        # Failed, transient (no code, 408, 480, 487, any 5xx, nonsense codes): failed_delay.
        (OFF, "failed", None, None, 1, Retry(FT, NOW + 10 * MIN)),
        (OFF, "failed", None, 408, 1, Retry(FT, NOW + 10 * MIN)),
        (OFF, "failed", None, 480, 1, Retry(FT, NOW + 10 * MIN)),
        (OFF, "failed", None, 487, 1, Retry(FT, NOW + 10 * MIN)),
        (OFF, "failed", None, 500, 1, Retry(FT, NOW + 10 * MIN)),
        (OFF, "failed", None, 503, 2, Retry(FT, NOW + 20 * MIN)),
        (OFF, "failed", None, 599, 1, Retry(FT, NOW + 10 * MIN)),
        (OFF, "failed", None, 200, 1, Retry(FT, NOW + 10 * MIN)),
        (OFF, "failed", None, None, 3, Fail(FT, "failed_transient after 3 attempts")),
        (OFF, "failed", None, 503, 3, Fail(FT, "failed_transient after 3 attempts (last SIP 503)")),
        # Failed with a busy SIP code: the busy rule.
        (OFF, "failed", None, 486, 1, Retry(BUSY, NOW + 5 * MIN)),
        (OFF, "failed", None, 600, 1, Retry(BUSY, NOW + 5 * MIN)),
        (OFF, "failed", None, 486, 3, Fail(BUSY, "busy after 3 attempts")),
        # Failed, permanent: at once, whatever the attempt, with the code in the reason.
        (OFF, "failed", None, 404, 1, Fail(FP, "SIP 404 Not Found")),
        (OFF, "failed", None, 403, 1, Fail(FP, "SIP 403 Forbidden")),
        (OFF, "failed", None, 410, 1, Fail(FP, "SIP 410 Gone")),
        (OFF, "failed", None, 484, 1, Fail(FP, "SIP 484 Address Incomplete")),
        (OFF, "failed", None, 603, 1, Fail(FP, "SIP 603 Decline")),
        (OFF, "failed", None, 604, 1, Fail(FP, "SIP 604 Does Not Exist Anywhere")),
        (OFF, "failed", None, 421, 1, Fail(FP, "SIP 421")),
        (OFF, "failed", None, 404, 3, Fail(FP, "SIP 404 Not Found")),
        # Canceled: final by default, else retried like the others.
        (OFF, "canceled", None, None, 1, Fail(CAN, "canceled")),
        (CANCEL_RETRY, "canceled", None, None, 1, Retry(CAN, NOW + 15 * MIN)),
        (CANCEL_RETRY, "canceled", None, None, 2, Retry(CAN, NOW + 30 * MIN)),
        (CANCEL_RETRY, "canceled", None, None, 3, Fail(CAN, "canceled after 3 attempts")),
    ],
)
def test_decide(
    policy: CampaignPolicy,
    status: str,
    answered_by: str | None,
    sip: int | None,
    attempt: int,
    expected: Decision,
) -> None:
    assert run(policy, status, answered_by, sip, attempt) == expected


@pytest.mark.parametrize("status", ["queued", "initiated", "ringing", "in-progress", "", "BUSY"])
def test_non_final_status_is_an_error(status: str) -> None:
    with pytest.raises(ValueError, match="not a final status"):
        run(OFF, status)
    with pytest.raises(ValueError, match="not a final status"):
        classify(OFF, status, None, None)


def test_attempt_numbers_start_at_one() -> None:
    with pytest.raises(ValueError, match="attempt_no"):
        run(OFF, "busy", attempt=0)


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        decide(
            OFF,
            attempt_no=1,
            call_status="busy",
            answered_by=None,
            sip_code=None,
            now=NOW.replace(tzinfo=None),
            rng=random.Random(0),
        )


# --- classify and on_answered_by --------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "status", "answered_by", "sip", "expected"),
    [
        (OFF, "completed", None, None, Outcome.COMPLETED),
        (HANGUP, "completed", "machine_end_silence", None, Outcome.MACHINE),
        (VOICEMAIL, "completed", "machine_end_silence", None, Outcome.VOICEMAIL_LEFT),
        (UNKNOWN_MACHINE, "completed", "unknown", None, Outcome.MACHINE),
        (OFF, "busy", "human", 486, Outcome.BUSY),  # AnsweredBy only counts when answered
        (OFF, "failed", None, 486, Outcome.BUSY),
        (OFF, "failed", None, 502, Outcome.FAILED_TRANSIENT),
        (OFF, "failed", None, 488, Outcome.FAILED_PERMANENT),
        (OFF, "canceled", None, 487, Outcome.CANCELED),
    ],
)
def test_classify(
    policy: CampaignPolicy, status: str, answered_by: str | None, sip: int | None, expected: Outcome
) -> None:
    assert classify(policy, status, answered_by, sip) is expected


@pytest.mark.parametrize(
    ("code", "transient"),
    [
        (None, True),
        (408, True),
        (480, True),
        (486, True),
        (487, True),
        (500, True),
        (503, True),
        (600, True),
        (200, True),
        (700, True),
        (400, False),
        (404, False),
        (410, False),
        (484, False),
        (603, False),
        (606, False),
    ],
)
def test_sip_is_transient(code: int | None, transient: bool) -> None:
    assert sip_is_transient(code) is transient


HANG, GO = AmdAction.HANG_UP, AmdAction.CONTINUE


@pytest.mark.parametrize(
    ("policy", "answered_by", "expected"),
    [
        (HANGUP, "human", GO),
        (HANGUP, "machine_start", HANG),
        (HANGUP_END, "machine_end_beep", HANG),
        (HANGUP, "machine_end_silence", HANG),
        (HANGUP, "machine_end_other", HANG),
        (HANGUP, "fax", HANG),
        (HANGUP, "unknown", GO),
        (HANGUP, "something_new", GO),
        (UNKNOWN_MACHINE, "unknown", HANG),
        (UNKNOWN_MACHINE, "something_new", HANG),
        (UNKNOWN_MACHINE, "human", GO),
        (VOICEMAIL, "machine_start", GO),
        (VOICEMAIL, "machine_end_beep", GO),
        (VOICEMAIL, "fax", HANG),
        (replace(VOICEMAIL, unknown_is_machine=True), "unknown", GO),
        (ACCEPT, "machine_start", GO),
        (ACCEPT, "machine_end_other", GO),
        (ACCEPT, "fax", HANG),
        (ACCEPT, "human", GO),
    ],
)
def test_on_answered_by(policy: CampaignPolicy, answered_by: str, expected: AmdAction) -> None:
    assert on_answered_by(policy, answered_by) is expected


# --- delays: backoff, jitter, cap, windows ----------------------------------------------


@pytest.mark.parametrize(
    ("backoff", "attempt", "minutes"),
    [
        (2.0, 1, 5),
        (2.0, 2, 10),
        (2.0, 3, 20),
        (2.0, 4, 40),
        (2.0, 5, 80),
        (1.0, 1, 5),
        (1.0, 5, 5),
        (1.5, 3, 11.25),
        (3.0, 4, 135),
    ],
)
def test_backoff_grows_the_delay(backoff: float, attempt: int, minutes: float) -> None:
    policy = CampaignPolicy(retry=RetryPolicy(max_attempts=10, backoff=backoff, jitter=0.0))
    assert run(policy, "busy", attempt=attempt) == Retry(BUSY, NOW + minutes * MIN)


def test_huge_backoff_is_capped() -> None:
    policy = CampaignPolicy(retry=RetryPolicy(max_attempts=20, backoff=1e6, jitter=0.5))
    assert run(policy, "busy", attempt=19) == Retry(BUSY, NOW + MAX_RETRY_DELAY)


def test_zero_delay_retries_now() -> None:
    policy = CampaignPolicy(retry=RetryPolicy(busy_delay=dt.timedelta(0)))
    assert run(policy, "busy", attempt=2) == Retry(BUSY, NOW)


@pytest.mark.parametrize("jitter", [0.1, 0.25, 0.9])
def test_jitter_stays_within_its_bounds_and_uses_them(jitter: float) -> None:
    policy = CampaignPolicy(retry=RetryPolicy(jitter=jitter))
    rng = random.Random(1234)
    delays = []
    for _ in range(2000):
        decision = run(policy, "no-answer", rng=rng)
        assert isinstance(decision, Retry)
        delays.append((decision.at - NOW) / MIN)
    low, high = 30 * (1 - jitter), 30 * (1 + jitter)
    assert all(low <= d <= high for d in delays)
    span = high - low
    assert min(delays) < low + 0.05 * span
    assert max(delays) > high - 0.05 * span


def test_jitter_is_reproducible_from_the_seed() -> None:
    policy = CampaignPolicy()
    first = [run(policy, "busy", rng=random.Random(7), attempt=a) for a in (1, 2)]
    again = [run(policy, "busy", rng=random.Random(7), attempt=a) for a in (1, 2)]
    assert first == again
    assert run(policy, "busy", rng=random.Random(8)) != first[0]


def test_the_retry_time_goes_through_next_opening() -> None:
    seen: list[dt.datetime] = []

    def opening(t: dt.datetime) -> dt.datetime:
        seen.append(t)
        return t + dt.timedelta(hours=5)

    decision = run(OFF, "busy", opening=opening)
    assert seen == [NOW + 5 * MIN]
    assert decision == Retry(BUSY, NOW + 5 * MIN + dt.timedelta(hours=5))
    seen.clear()
    run(OFF, "busy", attempt=3, opening=opening)  # no retry, no window question
    assert seen == []


OFFICE = Planner(CallingPolicy(parse_weekly("mon-fri 09:00-20:00"), margin=0))
NY = Location(("America/New_York",), "csv")
NY_OR_LA = Location(("America/Los_Angeles", "America/New_York"), "number")


@pytest.mark.parametrize(
    ("now", "status", "where", "expected"),
    [
        # Friday 19:58 EST, busy +5m lands at 20:03: closed, so Monday 09:00 EST.
        ("2024-01-13T00:58", "busy", NY, "2024-01-15T14:00"),
        # Monday 10:00 EST, busy +5m is inside the window: unchanged.
        ("2024-01-08T15:00", "busy", NY, "2024-01-08T15:05"),
        # Monday 19:45 EST, no-answer +30m lands at 20:15: Tuesday 09:00 EST.
        ("2024-01-09T00:45", "no-answer", NY, "2024-01-09T14:00"),
        # ... and 09:00 in Los Angeles when the number may be there too.
        ("2024-01-09T00:45", "no-answer", NY_OR_LA, "2024-01-09T17:00"),
        ("2024-01-08T15:00", "busy", NY_OR_LA, "2024-01-08T17:00"),
    ],
)
def test_retries_outside_the_window_move_to_the_next_opening(
    now: str, status: str, where: Location, expected: str
) -> None:
    at = dt.datetime.fromisoformat(now).replace(tzinfo=dt.UTC)
    decision = decide(
        OFF,
        attempt_no=1,
        call_status=status,
        answered_by=None,
        sip_code=None,
        now=at,
        rng=random.Random(0),
        next_opening=lambda t: OFFICE.next_due(where, t),
    )
    assert decision == Retry(Outcome(status), dt.datetime.fromisoformat(expected + "+00:00"))


# --- RetryPolicy validation -------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_attempts": 21}, "max_attempts"),
        ({"max_attempts": True}, "max_attempts"),
        ({"max_attempts": 2.0}, "max_attempts"),
        ({"backoff": 0.99}, "backoff"),
        ({"backoff": float("nan")}, "backoff"),
        ({"backoff": float("inf")}, "backoff"),
        ({"backoff": "2"}, "backoff"),
        ({"jitter": -0.01}, "jitter"),
        ({"jitter": 1.0}, "jitter"),
        ({"busy_delay": dt.timedelta(seconds=-1)}, "busy_delay"),
        ({"no_answer_delay": MAX_RETRY_DELAY + dt.timedelta(seconds=1)}, "no_answer_delay"),
        ({"failed_delay": 600}, "failed_delay"),
        ({"machine_delay": None}, "machine_delay"),
        ({"canceled_delay": dt.timedelta(minutes=-5)}, "canceled_delay"),
    ],
)
def test_retry_policy_bounds(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        RetryPolicy(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 1},
        {"max_attempts": 20},
        {"backoff": 1},
        {"jitter": 0},
        {"jitter": 0.999},
        {"busy_delay": dt.timedelta(0), "canceled_delay": MAX_RETRY_DELAY},
    ],
)
def test_retry_policy_edges_are_valid(kwargs: dict[str, Any]) -> None:
    RetryPolicy(**kwargs)


# --- parse_duration ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90),
        ("0", 0),
        ("30s", 30),
        ("5m", 300),
        ("1h", 3600),
        ("1h30m", 5400),
        ("2d", 172800),
        ("1d2h3m4s", 93784),
        ("1h 30m", 5400),
        (" 45S ", 45),
        ("90m", 5400),
    ],
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == dt.timedelta(seconds=seconds)


@pytest.mark.parametrize(
    "text", ["", " ", "m", "-5", "5x", "1.5h", "30m1h", "1h1h", "5 minutes", "h30", "1e3"]
)
def test_parse_duration_errors(text: str) -> None:
    with pytest.raises(ValueError, match="bad duration"):
        parse_duration(text)


# --- JSON -------------------------------------------------------------------------------


def test_default_policy_as_json() -> None:
    assert retry_policy_to_json(RetryPolicy()) == {
        "max_attempts": 3,
        "busy_delay": 300,
        "no_answer_delay": 1800,
        "failed_delay": 600,
        "machine_delay": 3600,
        "canceled_delay": None,
        "backoff": 2.0,
        "jitter": 0.1,
    }


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({}, RetryPolicy()),  # the column's default '{}'
        ({"max_attempts": 5, "busy_delay": 60}, RetryPolicy(max_attempts=5, busy_delay=MIN)),
        ({"canceled_delay": 90.5}, RetryPolicy(canceled_delay=dt.timedelta(seconds=90.5))),
        ({"canceled_delay": None}, RetryPolicy()),
        ({"backoff": 3, "jitter": 0}, RetryPolicy(backoff=3.0, jitter=0.0)),
    ],
)
def test_retry_policy_from_json(data: dict[str, Any], expected: RetryPolicy) -> None:
    assert retry_policy_from_json(data) == expected


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"max_attempt": 3}, "unknown retry policy keys: max_attempt"),
        ({"busy_delay": "5m"}, "busy_delay must be a number of seconds"),
        ({"busy_delay": True}, "busy_delay must be a number of seconds"),
        ({"busy_delay": -1}, "busy_delay must be between"),
        ({"busy_delay": 1e20}, "busy_delay must be between"),
        ({"busy_delay": None}, "busy_delay must be a timedelta"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"backoff": "2"}, "backoff"),
        ([1, 2], "must be a JSON object"),
    ],
)
def test_retry_policy_from_bad_json(data: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        retry_policy_from_json(data)


SECONDS = st.integers(0, int(MAX_RETRY_DELAY.total_seconds())).map(
    lambda s: dt.timedelta(seconds=s)
)
POLICIES = st.builds(
    RetryPolicy,
    max_attempts=st.integers(1, 20),
    busy_delay=SECONDS,
    no_answer_delay=SECONDS,
    failed_delay=SECONDS,
    machine_delay=SECONDS,
    canceled_delay=st.none() | SECONDS,
    backoff=st.floats(1, 10),
    jitter=st.floats(0, 1, exclude_max=True),
)


@given(POLICIES)
def test_json_round_trip(policy: RetryPolicy) -> None:
    assert retry_policy_from_json(json.loads(json.dumps(retry_policy_to_json(policy)))) == policy


@settings(max_examples=300)
@given(
    policy=POLICIES,
    status=st.sampled_from(["completed", "busy", "no-answer", "failed", "canceled"]),
    answered_by=st.sampled_from(
        [None, "human", "machine_start", "machine_end_beep", "fax", "unknown"]
    ),
    sip=st.none() | st.integers(100, 699),
    attempt=st.integers(1, 25),
    amd=st.sampled_from(list(AmdMode)),
    machine=st.sampled_from(list(MachinePolicy)),
    seed=st.integers(0, 2**32),
)
def test_decisions_are_consistent(
    policy: RetryPolicy,
    status: str,
    answered_by: str | None,
    sip: int | None,
    attempt: int,
    amd: AmdMode,
    machine: MachinePolicy,
    seed: int,
) -> None:
    campaign = CampaignPolicy(retry=policy, amd_mode=amd, machine_policy=machine)
    decision = run(campaign, status, answered_by, sip, attempt, rng=random.Random(seed))
    assert decision.outcome is classify(campaign, status, answered_by, sip)
    if isinstance(decision, Retry):
        assert attempt < policy.max_attempts
        assert NOW <= decision.at <= NOW + MAX_RETRY_DELAY
    if attempt >= policy.max_attempts:
        assert not isinstance(decision, Retry)
