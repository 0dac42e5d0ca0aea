"""Scenarios: the documented per-number table, seeded weights, and calls that follow them."""

from __future__ import annotations

import collections

import pytest

from dialer.sim import SimConfig, deterministic_fate
from dialer.sim.scenario import (
    FAX_SECONDS,
    GREETING_SECONDS,
    AmdMode,
    Fate,
    Outcome,
    WeightedScenario,
)
from dialer.testing import wait_until
from tests.sim.support import (
    Receiver,
    fast_config,
    running,
)

MODES: list[AmdMode] = [None, "Enable", "DetectMessageEnd"]
HUMAN = ("completed", "human", 200)


def outcome(fate: Fate) -> tuple[str, str | None, int]:
    return fate.status, fate.answered_by, fate.sip_response_code


# (digit, previous calls, AMD mode) -> (status, AnsweredBy, SipResponseCode)
TABLE: list[tuple[str, int, AmdMode, tuple[str, str | None, int]]] = [
    ("0", 0, "Enable", HUMAN),
    ("1", 5, "DetectMessageEnd", HUMAN),
    ("2", 0, None, ("completed", None, 200)),
    ("3", 0, "Enable", ("completed", "machine_start", 200)),
    ("3", 0, "DetectMessageEnd", ("completed", "machine_end_beep", 200)),
    ("3", 0, None, ("completed", None, 200)),
    ("4", 0, "Enable", ("busy", None, 486)),
    ("4", 1, "Enable", HUMAN),
    ("5", 0, "Enable", ("no-answer", None, 487)),
    ("5", 1, "Enable", ("no-answer", None, 487)),
    ("5", 2, "Enable", HUMAN),
    ("6", 0, "Enable", ("busy", None, 486)),
    ("6", 9, None, ("busy", None, 486)),
    ("7", 0, "Enable", ("failed", None, 503)),
    ("7", 1, "Enable", HUMAN),
    ("8", 0, None, ("failed", None, 404)),
    ("8", 3, "Enable", ("failed", None, 404)),
    ("9", 0, "Enable", ("completed", "fax", 200)),
    ("9", 0, None, ("completed", None, 200)),
]


@pytest.mark.parametrize(("digit", "previous", "mode", "expected"), TABLE)
def test_deterministic_table(digit: str, previous: int, mode: AmdMode,
                             expected: tuple[str, str | None, int]) -> None:
    fate = deterministic_fate(f"+1415555010{digit}", previous, mode)
    assert outcome(fate) == expected


def test_deterministic_times() -> None:
    assert deterministic_fate("+14155550100", 0, None, talk_seconds=7).talk_seconds == 7
    assert deterministic_fate("+14155550103", 0, "Enable").talk_seconds == GREETING_SECONDS
    assert deterministic_fate("+14155550103", 0, "DetectMessageEnd", talk_seconds=5
                              ).talk_seconds == GREETING_SECONDS + 5
    assert deterministic_fate("+14155550109", 0, None).talk_seconds == FAX_SECONDS
    assert deterministic_fate("+14155550105", 0, None, timeout=25).ring_seconds == 25
    assert deterministic_fate("+14155550106", 0, None).talk_seconds == 0


def test_a_short_timeout_turns_an_answer_into_no_answer() -> None:
    fate = deterministic_fate("+14155550100", 0, "Enable", timeout=2)
    assert (fate.status, fate.ring_seconds, fate.answered_by) == ("no-answer", 2, None)


def test_numbers_without_a_last_digit_behave_as_zero() -> None:
    assert deterministic_fate("client:alice", 0, "Enable") == deterministic_fate(
        "+14155550100", 0, "Enable")


def test_weighted_scenario_is_reproducible_and_follows_weights() -> None:
    def draw(seed: int) -> list[Fate]:
        scenario = WeightedScenario(SimConfig().weights, seed=seed)
        return [scenario.fate("+14155550100", 0, "Enable", 60) for _ in range(2000)]

    first = draw(7)
    assert first == draw(7) and first != draw(8)
    counts = collections.Counter(fate.status for fate in first)
    assert 0.45 < counts["completed"] / 2000 < 0.85
    assert {"busy", "no-answer", "failed", "canceled"} <= set(counts)
    verdicts = {fate.answered_by for fate in first if fate.answered}
    assert verdicts == {"human", "machine_start", "unknown", "fax"}  # Enable: no machine_end_*


def test_weighted_machine_verdicts_follow_the_amd_mode() -> None:
    only_machines: dict[Outcome, float] = {"machine_start": 1.0, "machine_end_silence": 1.0}
    scenario = WeightedScenario(only_machines, seed=1)
    message_end = {scenario.fate("+1", 0, "DetectMessageEnd", 60).answered_by for _ in range(50)}
    assert message_end == {"machine_end_other", "machine_end_silence"}
    assert {scenario.fate("+1", 0, None, 60).answered_by for _ in range(20)} == {None}


@pytest.mark.parametrize("weights", [{"human": -1.0}, {"human": 0.0}, {"martian": 1.0}])
def test_bad_weights_are_refused(weights: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="weights"):
        SimConfig(scenario="weighted", weights=weights)  # type: ignore[arg-type]


async def test_calls_end_as_the_table_says(receiver: Receiver) -> None:
    """Every digit over HTTP, with AMD, twice: callbacks report what the table predicts."""
    async with running(fast_config()) as (sim, api):
        expected: dict[str, Fate] = {}
        for attempt in range(2):
            for digit in "0123456789":
                to = f"+1415555020{digit}"
                sid = await api.create_sid(to, StatusCallback=receiver.url(),
                                           MachineDetection="Enable", Timeout="30")
                expected[sid] = deterministic_fate(to, attempt, "Enable", timeout=30)
        await wait_until(lambda: len(receiver.requests) == 20, timeout=10)
    for received in receiver.requests:
        params = received.params
        fate = expected[params["CallSid"]]
        assert params["CallStatus"] == fate.status
        assert params.get("AnsweredBy") == fate.answered_by
        assert params["SipResponseCode"] == str(fate.sip_response_code)
        assert params["CallDuration"] == str(round(fate.talk_seconds))
        assert sim.calls[params["CallSid"]].answered_by == fate.answered_by


async def test_send_digits_switches_amd_off() -> None:
    async with running(fast_config()) as (sim, api):
        sid = await api.create_sid("+14155550103", MachineDetection="Enable", SendDigits="1234#")
        await wait_until(lambda: not sim.calls[sid].live)
        assert sim.calls[sid].answered_by is None


async def test_weighted_simulator_mixes_outcomes() -> None:
    async with running(fast_config(scenario="weighted", seed=3, time_scale=0.0001)) as (sim, api):
        for _ in range(60):
            await api.create_sid(MachineDetection="DetectMessageEnd", Timeout="10")
        await wait_until(lambda: not any(call.live for call in sim.calls.values()), timeout=10)
    statuses = collections.Counter(call.status for call in sim.calls.values())
    assert len(statuses) >= 3 and statuses["completed"] > 20
