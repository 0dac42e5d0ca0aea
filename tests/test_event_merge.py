"""Merging events into an attempt: forward only, whatever the arrival order."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

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
