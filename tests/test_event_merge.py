"""Merging events into an attempt: forward only, whatever the arrival order; and what
one event does to its attempt and contact (``apply_event``, pure)."""

from __future__ import annotations

import datetime as dt
import itertools
import random
from dataclasses import replace

import pytest

from dialer.campaigns import Campaign, CampaignSpec
from dialer.outcomes import Applied, AttemptView, CallEvent, apply_event, merge
from dialer.policy import AmdMode, MachinePolicy
from dialer.testing import QUICK_RETRY
from dialer.windows import WeeklyHours

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


# ---- apply_event: the whole effect of one new event, without a database -----------------

RNG_SEED = 7


def _campaign(**spec: object) -> Campaign:
    values: dict[str, object] = {"name": "spring", "from_number": "+15005550006",
                                 "twiml": "<Response/>", "calendar": WeeklyHours.ALWAYS}
    values.update(spec)
    return Campaign(1, "spring", "running", "AC" + "a1" * 16,
                    CampaignSpec(**values))  # type: ignore[arg-type]


def _row(*, state: str = "live", attempt_no: int = 1, contact_attempts: int = 1,
         contact_state: str = "in_call") -> dict[str, object]:
    """The locked row ``apply_event`` reads: the attempt's contact, number and place."""
    return {"state": state, "contact_id": 42, "attempt_no": attempt_no,
            "contact_attempts": contact_attempts, "contact_state": contact_state,
            "zones": None, "states": None, "zone_source": None, "state_sources": None}


def _apply(campaign: Campaign, event: CallEvent, view: AttemptView = EMPTY,
           force: bool = False, **row: object) -> Applied:
    return apply_event(campaign, _row(**row), view, event,  # type: ignore[arg-type]
                       now=NOW, force_decision=force, rng=random.Random(RNG_SEED))


def test_a_completed_call_decides_its_contact() -> None:
    applied = _apply(_campaign(), _event("completed", duration=20), state="requested")
    assert applied.adopted and not applied.hang_up
    assert applied.decision is not None
    assert (applied.decision.contact_id, applied.decision.state) == (42, "done")
    assert applied.view.outcome == applied.decision.outcome
    assert (applied.view.state, applied.view.call_status) == ("final", "completed")


def test_a_busy_call_waits_for_a_retry_and_a_live_one_decides_nothing() -> None:
    retry = _apply(_campaign(retry=QUICK_RETRY), _event("busy"))
    assert retry.decision is not None and retry.decision.state == "retry_wait"
    assert retry.decision.due_at is not None and retry.decision.due_at > NOW
    assert not retry.adopted
    ringing = _apply(_campaign(), _event("ringing"))
    assert ringing.decision is None and ringing.view.outcome is None


def test_no_decision_for_an_old_attempt_or_an_outcome_already_recorded() -> None:
    ended = _event("completed", duration=20)
    assert _apply(_campaign(), ended, attempt_no=1, contact_attempts=2).decision is None
    assert _apply(_campaign(), ended, contact_state="retry_wait").decision is None
    opted_out = replace(EMPTY, outcome="opted_out")
    applied = _apply(_campaign(), ended, opted_out)
    assert applied.decision is None and applied.view.outcome == "opted_out"


def test_async_amd_waits_for_its_result_unless_forced() -> None:
    campaign = _campaign(amd_mode=AmdMode.ENABLE, amd_async=True)
    ended = _event("completed", duration=20)
    assert _apply(campaign, ended).decision is None
    forced = _apply(campaign, ended, force=True)
    assert forced.decision is not None  # decided with AnsweredBy unknown
    amd = CallEvent(call_sid=SID, source="amd", params={}, answered_by="human")
    after = _apply(campaign, amd, _apply(campaign, ended).view)
    assert after.decision is not None and after.view.answered_by == "human"


def test_a_machine_is_hung_up_once_while_the_call_is_live() -> None:
    campaign = _campaign(amd_mode=AmdMode.ENABLE, machine_policy=MachinePolicy.HANGUP_RETRY)
    machine = CallEvent(call_sid=SID, source="amd", params={}, answered_by="machine_start")
    live = merge(EMPTY, _event("in-progress"), NOW)
    first = _apply(campaign, machine, live)
    assert first.hang_up and first.view.hangup_requested_at == NOW
    assert not _apply(campaign, machine, first.view).hang_up
    ended = merge(live, _event("completed", duration=3), NOW)
    assert not _apply(campaign, machine, ended).hang_up
    assert not _apply(_campaign(amd_mode=AmdMode.ENABLE,
                                machine_policy=MachinePolicy.VOICEMAIL), machine, live).hang_up
