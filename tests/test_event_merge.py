"""Merging events into an attempt: forward only, whatever the arrival order."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from dialer.callbacks import BadCallback, parse_event
from dialer.outcomes import AttemptView, CallEvent, merge

NOW = dt.datetime(2026, 1, 5, 15, 0, tzinfo=dt.UTC)
SID = "CA" + "b" * 32
EMPTY = AttemptView("live", SID, None, (), None, None, None, None, None, None)


def _event(status: str | None, **extra: object) -> CallEvent:
    return CallEvent(call_sid=SID, source="call-progress-events", params={},
                     call_status=status, **extra)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "order", list(itertools.permutations(["initiated", "ringing", "in-progress", "completed"]))
)
def test_any_order_ends_completed(order: tuple[str, ...]) -> None:
    view = EMPTY
    for status in order:
        view = merge(view, _event(status, duration=12 if status == "completed" else None), NOW)
    assert view.call_status == "completed"
    assert view.state == "final"
    assert view.duration == 12
    assert view.final_at == NOW
    assert set(view.statuses) == set(order)


def test_first_final_status_wins_and_final_time_is_kept() -> None:
    view = merge(EMPTY, _event("busy"), NOW)
    later = merge(view, _event("completed"), NOW + dt.timedelta(minutes=1))
    assert later.call_status == "busy"
    assert later.final_at == NOW


def test_amd_result_after_completion_is_kept() -> None:
    view = merge(EMPTY, _event("completed", duration=30), NOW)
    amd = CallEvent(call_sid=SID, source="amd", params={}, answered_by="machine_end_beep")
    view = merge(view, amd, NOW)
    assert (view.call_status, view.answered_by, view.duration) == ("completed",
                                                                   "machine_end_beep", 30)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "CallSid"),
        ({"CallSid": "CA123"}, "CallSid"),
        ({"CallSid": SID, "CallStatus": "exploded"}, "CallStatus"),
        ({"CallSid": SID}, "CallStatus missing"),
        ({"CallSid": SID, "CallStatus": "completed", "CallDuration": "ten"}, "CallDuration"),
        ({"CallSid": SID, "CallStatus": "completed", "AnsweredBy": "robot"}, "AnsweredBy"),
        ({"CallSid": SID, "CallStatus": "ringing", "SequenceNumber": "x"}, "SequenceNumber"),
    ],
)
def test_malformed_callbacks_name_the_field(params: dict[str, str], message: str) -> None:
    with pytest.raises(BadCallback, match=message):
        parse_event(params, source_hint="call-progress-events", query={}, idempotency_token=None)


def test_amd_callback_needs_answered_by() -> None:
    with pytest.raises(BadCallback, match="AnsweredBy missing"):
        parse_event({"CallSid": SID}, source_hint="amd", query={}, idempotency_token=None)


def test_well_formed_callback() -> None:
    event = parse_event(
        {"CallSid": SID, "CallStatus": "completed", "CallDuration": "7", "SequenceNumber": "3",
         "CallbackSource": "call-progress-events", "SipResponseCode": "200"},
        source_hint="call-progress-events", query={"a": "42"}, idempotency_token="tok",
    )
    assert (event.attempt_hint, event.sequence_number, event.duration, event.sip_code) == (
        42, 3, 7, 200)
    assert event.idempotency_token == "tok"
