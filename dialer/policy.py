"""What happens to a contact after a call: the campaign's rules as pure functions.

Twilio reports an ended call as a CallStatus, an AnsweredBy (when answering-machine
detection ran) and a SIP response code. ``classify`` folds those three into one
``Outcome``; ``decide`` turns an outcome into done, retry-at or failed under the
campaign's ``RetryPolicy``. Neither reads a clock nor draws its own random numbers:
``now``, the generator for jitter and the calling-window arithmetic are passed in, so
every row of the rules is a table test and a replayed event decides the same way.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from dialer.twilio_words import (
    ANSWERED_BY,
    FINAL_STATUSES,
    MACHINE_ANSWERS,
    MESSAGE_END_ANSWERS,
    UNKNOWN,
)

__all__ = [
    "BUSY_SIP_CODES",
    "MAX_RETRY_DELAY",
    "TRANSIENT_SIP_CODES",
    "AmdAction",
    "AmdMode",
    "CampaignPolicy",
    "Decision",
    "Done",
    "Fail",
    "MachinePolicy",
    "Outcome",
    "Retry",
    "RetryPolicy",
    "classify",
    "decide",
    "on_answered_by",
    "parse_duration",
    "retry_delay",
    "retry_policy_from_json",
    "retry_policy_to_json",
    "sip_is_transient",
]


class AmdMode(StrEnum):
    """Twilio's MachineDetection parameter (OFF: the parameter is not sent)."""

    OFF = "off"
    ENABLE = "Enable"
    DETECT_MESSAGE_END = "DetectMessageEnd"


class MachinePolicy(StrEnum):
    """What a campaign wants when a machine answers."""

    HANGUP_RETRY = "hangup_retry"
    VOICEMAIL = "voicemail"
    ACCEPT = "accept"


class Outcome(StrEnum):
    """One word per way a call can end; stored on the contact and used in reports."""

    HUMAN = "human"
    MACHINE = "machine"
    VOICEMAIL_LEFT = "voicemail_left"
    FAX = "fax"
    BUSY = "busy"
    NO_ANSWER = "no-answer"
    FAILED_TRANSIENT = "failed_transient"
    FAILED_PERMANENT = "failed_permanent"
    CANCELED = "canceled"
    COMPLETED = "completed"  # answered, with AMD off: nobody knows who answered
    # The person pressed the campaign's opt-out key: recorded by the Gather action
    # (dialer.optout) while the call is live, which also decides the contact (done) and
    # puts the number on a do-not-call list; the call's own end decides nothing more.
    OPTED_OUT = "opted_out"


class AmdAction(StrEnum):
    """What to do with a live call when its AMD result arrives."""

    HANG_UP = "hang_up"  # update the call with Status=completed
    CONTINUE = "continue"


# A ``failed`` call's SIP code says whether trying again later can help.
#   transient: 408 Request Timeout, 480 Temporarily Unavailable, 487 Request
#     Terminated (the INVITE was cancelled, e.g. ring timeout upstream) and every
#     5xx server failure (500, 502 Bad Gateway, 503 Service Unavailable, 504, ...);
#   busy: 486 Busy Here and 600 Busy Everywhere are the callee being busy, whatever
#     CallStatus Twilio chose, so they follow the busy rule;
#   permanent: every other 4xx and 6xx, e.g. 403 Forbidden, 404 Not Found, 410 Gone,
#     484 Address Incomplete, 488 Not Acceptable Here, 603 Decline, 604, 606.
# No SIP code, or one outside 400-699, tells nothing and counts as transient: a failed
# call without a reason is retried (within max_attempts) rather than written off.
TRANSIENT_SIP_CODES = frozenset({408, 480, 487, *range(500, 600)})
BUSY_SIP_CODES = frozenset({486, 600})

_SIP_PHRASES = {
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    410: "Gone",
    484: "Address Incomplete",
    485: "Ambiguous",
    488: "Not Acceptable Here",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}

# Long enough for any sane campaign; bounds the backoff so ``now + delay`` cannot
# overflow and a misconfigured policy cannot park a contact for years.
MAX_RETRY_DELAY = timedelta(days=30)


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """When to try a contact again, per outcome.

    The delay for the retry after attempt n is ``delay * backoff ** (n - 1)``, spread
    by a uniform ``+-jitter`` fraction so contacts that failed together do not come
    back together, and capped at ``MAX_RETRY_DELAY``. ``max_attempts`` counts every
    call placed to the contact, the first one included. ``canceled_delay`` of None
    makes a canceled call final (cancelling is usually deliberate).
    """

    max_attempts: int = 3
    busy_delay: timedelta = timedelta(minutes=5)
    no_answer_delay: timedelta = timedelta(minutes=30)
    failed_delay: timedelta = timedelta(minutes=10)
    machine_delay: timedelta = timedelta(minutes=60)
    canceled_delay: timedelta | None = None
    backoff: float = 2.0
    jitter: float = 0.1

    def __post_init__(self) -> None:
        if type(self.max_attempts) is not int or not 1 <= self.max_attempts <= 20:
            raise ValueError(f"max_attempts must be an integer 1..20, got {self.max_attempts!r}")
        for name in _DELAY_FIELDS:
            value = getattr(self, name)
            if value is None and name == "canceled_delay":
                continue
            if not isinstance(value, timedelta):
                raise ValueError(f"{name} must be a timedelta, got {value!r}")
            if not timedelta(0) <= value <= MAX_RETRY_DELAY:
                raise ValueError(f"{name} must be between 0 and {MAX_RETRY_DELAY}, got {value}")
        if not _is_real(self.backoff) or self.backoff < 1.0:
            raise ValueError(f"backoff must be a number >= 1, got {self.backoff!r}")
        if not _is_real(self.jitter) or not 0.0 <= self.jitter < 1.0:
            raise ValueError(f"jitter must be a number with 0 <= jitter < 1, got {self.jitter!r}")


_DELAY_FIELDS = ("busy_delay", "no_answer_delay", "failed_delay", "machine_delay", "canceled_delay")


def _is_real(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class CampaignPolicy:
    """The parts of a campaign that decide outcomes.

    ``unknown_is_machine`` is the campaign's answer to AnsweredBy=unknown (AMD could
    not tell): a machine when true, else a human, since hanging up on a person is
    the worse mistake for most campaigns.
    """

    retry: RetryPolicy = field(default_factory=RetryPolicy)
    amd_mode: AmdMode = AmdMode.OFF
    machine_policy: MachinePolicy = MachinePolicy.HANGUP_RETRY
    unknown_is_machine: bool = False


@dataclass(frozen=True, slots=True)
class Done:
    """The contact is finished successfully (reached, or as good as)."""

    outcome: Outcome


@dataclass(frozen=True, slots=True)
class Retry:
    """Call again at ``at`` (already moved into the calling window)."""

    outcome: Outcome
    at: datetime


@dataclass(frozen=True, slots=True)
class Fail:
    """The contact is finished without success; ``reason`` is for people to read."""

    outcome: Outcome
    reason: str


Decision = Done | Retry | Fail


def sip_is_transient(sip_code: int | None) -> bool:
    """Whether a ``failed`` call with this SIP code is worth retrying."""
    if sip_code is None or not 400 <= sip_code <= 699:
        return True
    return sip_code in TRANSIENT_SIP_CODES or sip_code in BUSY_SIP_CODES


def _answered_by(policy: CampaignPolicy, answered_by: str | None) -> str:
    """AnsweredBy with the gaps filled: values Twilio may add later, and a missing
    value on an AMD call, mean AMD could not tell, which is the campaign's choice."""
    if answered_by is None:
        return "none" if policy.amd_mode is AmdMode.OFF else "unknown"
    return answered_by if answered_by in ANSWERED_BY else "unknown"


def _is_machine(policy: CampaignPolicy, answered_by: str) -> bool:
    return answered_by in MACHINE_ANSWERS or (
        answered_by == UNKNOWN and policy.unknown_is_machine)


def classify(
    policy: CampaignPolicy, call_status: str, answered_by: str | None, sip_code: int | None
) -> Outcome:
    """The outcome of an ended call. AnsweredBy only matters for a ``completed`` call."""
    if call_status == "completed":
        who = _answered_by(policy, answered_by)
        if who == "none":
            return Outcome.COMPLETED
        if who == "fax":
            return Outcome.FAX
        if _is_machine(policy, who):
            if policy.machine_policy is MachinePolicy.VOICEMAIL and who in MESSAGE_END_ANSWERS:
                return Outcome.VOICEMAIL_LEFT
            return Outcome.MACHINE
        return Outcome.HUMAN
    if call_status == "busy":
        return Outcome.BUSY
    if call_status == "no-answer":
        return Outcome.NO_ANSWER
    if call_status == "canceled":
        return Outcome.CANCELED
    if call_status == "failed":
        if sip_code in BUSY_SIP_CODES:
            return Outcome.BUSY
        return Outcome.FAILED_TRANSIENT if sip_is_transient(sip_code) else Outcome.FAILED_PERMANENT
    raise ValueError(
        f"call status {call_status!r} is not a final status "
        f"(expected one of {', '.join(sorted(FINAL_STATUSES))})"
    )


def on_answered_by(policy: CampaignPolicy, answered_by: str) -> AmdAction:
    """Whether to end a live call when AMD reports who answered.

    Only a campaign that retries machines hangs up on one; with ``voicemail`` the
    call must stay up for the message, and with ``accept`` the machine is the
    audience. A fax line is never worth the minutes.
    """
    who = _answered_by(policy, answered_by)
    if who == "fax":
        return AmdAction.HANG_UP
    if _is_machine(policy, who) and policy.machine_policy is MachinePolicy.HANGUP_RETRY:
        return AmdAction.HANG_UP
    return AmdAction.CONTINUE


def retry_delay(
    retry: RetryPolicy, base: timedelta, attempt_no: int, rng: random.Random
) -> timedelta:
    """``base`` grown by backoff for attempt ``attempt_no``, jittered, capped."""
    try:
        factor = retry.backoff ** (attempt_no - 1)
    except OverflowError:
        factor = math.inf
    spread = rng.uniform(-retry.jitter, retry.jitter)
    if not base:
        return timedelta(0)
    seconds = base.total_seconds() * factor * (1.0 + spread)
    return timedelta(seconds=min(seconds, MAX_RETRY_DELAY.total_seconds()))


def _plural(n: int) -> str:
    return f"{n} attempt" if n == 1 else f"{n} attempts"


def decide(
    policy: CampaignPolicy,
    *,
    attempt_no: int,
    call_status: str,
    answered_by: str | None,
    sip_code: int | None,
    now: datetime,
    rng: random.Random,
    next_opening: Callable[[datetime], datetime] = lambda t: t,
) -> Decision:
    """The contact's fate after attempt ``attempt_no`` (1-based) ended.

    A retry is only offered while attempts remain; the last allowed attempt turns a
    would-be retry into ``Fail("<outcome> after N attempts")``. The retry time is
    passed through ``next_opening`` so a contact never becomes due outside its
    calling window.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now must be timezone-aware, got naive {now.isoformat()}")
    if attempt_no < 1:
        raise ValueError(f"attempt_no starts at 1, got {attempt_no}")
    outcome = classify(policy, call_status, answered_by, sip_code)
    retry = policy.retry
    base: timedelta | None
    match outcome:
        case Outcome.HUMAN | Outcome.COMPLETED | Outcome.VOICEMAIL_LEFT | Outcome.OPTED_OUT:
            return Done(outcome)
        case Outcome.MACHINE:
            if policy.machine_policy is not MachinePolicy.HANGUP_RETRY:
                return Done(outcome)
            base = retry.machine_delay
        case Outcome.FAX:
            return Fail(outcome, "fax")
        case Outcome.FAILED_PERMANENT:
            assert sip_code is not None
            phrase = _SIP_PHRASES.get(sip_code)
            return Fail(outcome, f"SIP {sip_code} {phrase}" if phrase else f"SIP {sip_code}")
        case Outcome.BUSY:
            base = retry.busy_delay
        case Outcome.NO_ANSWER:
            base = retry.no_answer_delay
        case Outcome.FAILED_TRANSIENT:
            base = retry.failed_delay
        case Outcome.CANCELED:
            base = retry.canceled_delay
            if base is None:
                return Fail(outcome, "canceled")
    if attempt_no >= retry.max_attempts:
        reason = f"{outcome.value} after {_plural(attempt_no)}"
        if sip_code is not None and outcome is Outcome.FAILED_TRANSIENT:
            reason += f" (last SIP {sip_code})"
        return Fail(outcome, reason)
    delay = retry_delay(retry, base, attempt_no, rng)
    return Retry(outcome, next_opening(now + delay))


_DURATION = re.compile(
    r"(?:(?P<d>[0-9]+)\s*d)?\s*(?:(?P<h>[0-9]+)\s*h)?\s*"
    r"(?:(?P<m>[0-9]+)\s*m)?\s*(?:(?P<s>[0-9]+)\s*s)?"
)


# No duration an operator types is longer (a larger one is a typo, and would
# overflow timedelta at some size).
MAX_DURATION = timedelta(days=365)


def parse_duration(text: str) -> timedelta:
    """A duration from CLI shorthand: "90" (seconds), "30s", "5m", "1h30m", "2d"; at
    most ``MAX_DURATION``."""
    cleaned = text.strip().lower()
    if len(cleaned) > 40:
        raise ValueError(f"bad duration {text[:40]!r}...: too long")
    if re.fullmatch(r"[0-9]+", cleaned):
        parts = {"d": 0, "h": 0, "m": 0, "s": int(cleaned)}
    else:
        match = _DURATION.fullmatch(cleaned)
        if not cleaned or match is None or not any(match.groupdict().values()):
            raise ValueError(
                f"bad duration {text!r}: use seconds (90) or units d/h/m/s (30s, 5m, 1h30m)"
            )
        parts = {unit: int(value or 0) for unit, value in match.groupdict().items()}
    seconds = parts["d"] * 86400 + parts["h"] * 3600 + parts["m"] * 60 + parts["s"]
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"duration {text.strip()!r} is longer than a year")
    return timedelta(seconds=seconds)


def _seconds(value: timedelta) -> int | float:
    seconds = value.total_seconds()
    return int(seconds) if seconds.is_integer() else seconds


def retry_policy_to_json(policy: RetryPolicy) -> dict[str, Any]:
    """The policy as a JSON object (durations in seconds) for the campaigns row."""
    out: dict[str, Any] = {}
    for f in fields(policy):
        value = getattr(policy, f.name)
        out[f.name] = _seconds(value) if isinstance(value, timedelta) else value
    return out


def retry_policy_from_json(data: Mapping[str, Any]) -> RetryPolicy:
    """The inverse of ``retry_policy_to_json``; missing keys take the defaults.

    Unknown keys are an error rather than ignored, so a typo in hand-edited JSON
    does not silently fall back to a default.
    """
    if not isinstance(data, Mapping):
        raise ValueError(f"retry policy must be a JSON object, got {type(data).__name__}")
    known = {f.name for f in fields(RetryPolicy)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown retry policy keys: {', '.join(map(str, unknown))}")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        if name in _DELAY_FIELDS and value is not None:
            if not _is_real(value):
                raise ValueError(f"{name} must be a number of seconds, got {value!r}")
            if not 0 <= value <= MAX_RETRY_DELAY.total_seconds():
                raise ValueError(f"{name} must be between 0 and {MAX_RETRY_DELAY}, got {value}s")
            value = timedelta(seconds=value)
        elif name in {"backoff", "jitter"} and _is_real(value):
            value = float(value)
        kwargs[name] = value
    return RetryPolicy(**kwargs)
