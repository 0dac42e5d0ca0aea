"""What happens to each simulated call: pure functions from a request to a ``Fate``.

Two scenarios. The deterministic one lets tests elsewhere know every outcome in
advance from the number alone; the weighted one gives a demo a realistic mix that is
still reproducible from its seed.

Deterministic rule, by the LAST DIGIT of To (a To without a trailing digit, such as
``client:alice``, behaves as 0); ``n`` is how many times this To was called before:

====== ============================================================================
digit  fate
====== ============================================================================
0 1 2  human answers, talks ``talk_seconds``, call ``completed`` (AnsweredBy
       ``human`` when AMD is on)
3      answering machine: AnsweredBy ``machine_start`` with MachineDetection=Enable
       (completed after the greeting, ``GREETING_SECONDS``), ``machine_end_beep``
       with DetectMessageEnd (completed after the greeting plus a message of
       ``talk_seconds``); without AMD it completes like a human, no AnsweredBy
4      ``busy`` on the 1st call (n = 0), human on later calls
5      ``no-answer`` on the 1st and 2nd call (n < 2; rings until the request's
       Timeout), human on later calls
6      ``busy`` always
7      ``failed`` with SipResponseCode 503 on the 1st call, human on later calls
8      ``failed`` with SipResponseCode 404 always
9      fax: AnsweredBy ``fax`` when AMD is on; ``completed`` after ``FAX_SECONDS``
====== ============================================================================

Any answered fate whose ring time exceeds the request's Timeout becomes
``no-answer`` instead (it only matters for very short Timeouts). All times here are
simulated seconds; the engine multiplies them by the configured ``time_scale``.

A fate answered by a person (``human``) may press keys into the call's ``<Gather>``:
which keys, on which calls, is the configuration's (``SimConfig.press_digits``); the
person presses them ``GATHER_SECONDS`` into the call (or when about to hang up) and the
call ends ``SAY_SECONDS`` after the Gather action's answer.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Protocol, get_args

AmdMode = Literal["Enable", "DetectMessageEnd"] | None

RING_SECONDS = 4.0
"""How long a phone rings before someone (or something) picks up."""
BUSY_SECONDS = 1.0
"""How long until the far end reports busy."""
SETUP_FAILURE_SECONDS = 0.5
"""How long until a call that cannot be connected fails (no ringing)."""
GREETING_SECONDS = 10.0
"""An answering machine's greeting, up to the beep."""
FAX_SECONDS = 3.0
"""How long a fax machine stays on the line."""
DETECT_SECONDS = {"human": 2.0, "machine_start": 3.0, "fax": 2.5, "unknown": 5.0}
"""Answer to AMD verdict (MachineDetectionDuration); machine_end_* wait for the greeting."""
GATHER_SECONDS = 3.0
"""Answer to the keys pressed into a Gather (the prompt heard first)."""
SAY_SECONDS = 2.0
"""How long the TwiML a Gather action answers takes to play before the call ends."""

Outcome = Literal[
    "human", "machine_start", "machine_end_beep", "machine_end_silence", "machine_end_other",
    "unknown", "fax", "busy", "no-answer", "failed", "canceled",
]
OUTCOMES: tuple[Outcome, ...] = get_args(Outcome)
DEFAULT_WEIGHTS: Mapping[Outcome, float] = {
    "human": 0.55, "machine_start": 0.05, "machine_end_beep": 0.08,
    "machine_end_silence": 0.02, "machine_end_other": 0.02, "unknown": 0.02, "fax": 0.01,
    "busy": 0.08, "no-answer": 0.12, "failed": 0.04, "canceled": 0.01,
}
_FAILURE_SIP_CODES = (404, 480, 503)


@dataclass(frozen=True, slots=True)
class Fate:
    """How one call goes. ``status`` is its final CallStatus."""

    status: Literal["completed", "busy", "no-answer", "failed", "canceled"]
    answered_by: str | None
    """What AMD reports; None when AMD is off or nobody answered."""
    sip_response_code: int
    ring_seconds: float
    """From dialing to the answer (or to giving up); no ringing at all for ``failed``."""
    talk_seconds: float = 0.0
    """From the answer to the hang-up; 0 when nobody answered."""
    amd_seconds: float = 0.0
    """From the answer to the AMD verdict (MachineDetectionDuration)."""
    human: bool = False
    """A person answered: the one kind of callee that presses keys."""

    @property
    def answered(self) -> bool:
        return self.status == "completed"


def _verdict(kind: str, mode: Literal["Enable", "DetectMessageEnd"]) -> str:
    """What AMD says: Enable only ever reports machine_start for a machine; DetectMessageEnd
    waits for the greeting's end and reports how it ended."""
    if not kind.startswith("machine"):
        return kind
    if mode == "Enable":
        return "machine_start"
    return "machine_end_other" if kind == "machine_start" else kind


def _answered(kind: str, mode: AmdMode, talk_seconds: float, ring_seconds: float) -> Fate:
    """A call something picked up; the AMD verdict and the time on the line follow ``kind``."""
    human = kind == "human"
    if mode is None:
        on_line = FAX_SECONDS if kind == "fax" else talk_seconds
        return Fate(status="completed", answered_by=None, sip_response_code=200,
                    ring_seconds=ring_seconds, talk_seconds=on_line, human=human)
    verdict = _verdict(kind, mode)
    if verdict == "machine_start":
        on_line, detect = GREETING_SECONDS, DETECT_SECONDS[verdict]
    elif verdict.startswith("machine_end"):
        on_line, detect = GREETING_SECONDS + talk_seconds, GREETING_SECONDS
    else:
        on_line = FAX_SECONDS if verdict == "fax" else talk_seconds
        detect = DETECT_SECONDS[verdict]
    return Fate(status="completed", answered_by=verdict, sip_response_code=200,
                ring_seconds=ring_seconds, talk_seconds=on_line, amd_seconds=detect, human=human)


def _unanswered(outcome: Outcome, timeout: int, sip_code: int = 503) -> Fate:
    if outcome == "busy":
        return Fate(status="busy", answered_by=None, sip_response_code=486,
                    ring_seconds=BUSY_SECONDS)
    if outcome == "failed":
        return Fate(status="failed", answered_by=None, sip_response_code=sip_code,
                    ring_seconds=SETUP_FAILURE_SECONDS)
    if outcome == "canceled":
        return Fate(status="canceled", answered_by=None, sip_response_code=487,
                    ring_seconds=min(RING_SECONDS, float(timeout)))
    return Fate(status="no-answer", answered_by=None, sip_response_code=487,
                ring_seconds=float(timeout))


def _within_timeout(fate: Fate, timeout: int) -> Fate:
    """Nobody answers after the caller stopped waiting."""
    if fate.answered and fate.ring_seconds > timeout:
        return _unanswered("no-answer", timeout)
    return fate


def deterministic_fate(
    to: str, previous_calls: int, machine_detection: AmdMode, *,
    talk_seconds: float = 20.0, timeout: int = 60,
) -> Fate:
    """The documented table (module docstring): a pure function of its arguments."""
    digit = to[-1] if to and to[-1].isdigit() else "0"
    human = _answered("human", machine_detection, talk_seconds, RING_SECONDS)
    fate: Fate
    if digit == "3":
        kind = "machine_end_beep" if machine_detection == "DetectMessageEnd" else "machine_start"
        fate = _answered(kind, machine_detection, talk_seconds, RING_SECONDS)
    elif digit == "4":
        fate = _unanswered("busy", timeout) if previous_calls == 0 else human
    elif digit == "5":
        fate = _unanswered("no-answer", timeout) if previous_calls < 2 else human
    elif digit == "6":
        fate = _unanswered("busy", timeout)
    elif digit == "7":
        fate = _unanswered("failed", timeout, 503) if previous_calls == 0 else human
    elif digit == "8":
        fate = _unanswered("failed", timeout, 404)
    elif digit == "9":
        fate = _answered("fax", machine_detection, talk_seconds, RING_SECONDS)
    else:
        fate = human
    return _within_timeout(fate, timeout)


class Scenario(Protocol):
    """Decides a call's fate when it is created."""

    def fate(self, to: str, previous_calls: int, machine_detection: AmdMode,
             timeout: int) -> Fate: ...


@dataclass(frozen=True, slots=True)
class DeterministicScenario:
    """The per-number table, with the configured talk time."""

    talk_seconds: float = 20.0

    def fate(self, to: str, previous_calls: int, machine_detection: AmdMode,
             timeout: int) -> Fate:
        return deterministic_fate(to, previous_calls, machine_detection,
                                  talk_seconds=self.talk_seconds, timeout=timeout)


class WeightedScenario:
    """Outcomes drawn from ``weights`` with a seeded generator, in creation order.

    Ring time (2-8 s) and talk time (half to one and a half ``talk_seconds``) vary
    too, so a demo's report has spread; the same seed and order give the same fates.
    """

    def __init__(self, weights: Mapping[Outcome, float], *, seed: int,
                 talk_seconds: float = 20.0) -> None:
        unknown = set(weights) - set(OUTCOMES)
        if unknown:
            raise ValueError(f"unknown outcomes in weights: {sorted(unknown)}")
        if any(weight < 0 for weight in weights.values()) or sum(weights.values()) <= 0:
            raise ValueError("weights must be non-negative and not all zero")
        self._outcomes = list(weights)
        self._weights = list(weights.values())
        self._rng = random.Random(seed)
        self._talk_seconds = talk_seconds

    def fate(self, to: str, previous_calls: int, machine_detection: AmdMode,
             timeout: int) -> Fate:
        rng = self._rng
        outcome = rng.choices(self._outcomes, self._weights)[0]
        if outcome in ("busy", "no-answer", "failed", "canceled"):
            return _unanswered(outcome, timeout, rng.choice(_FAILURE_SIP_CODES))
        fate = _answered(outcome, machine_detection,
                         self._talk_seconds * rng.uniform(0.5, 1.5), rng.uniform(2.0, 8.0))
        return _within_timeout(fate, timeout)

