"""The table of Create Call refusals: whom each code concerns, and what an unknown
answer is taken to mean (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dialer import twilio_errors
from dialer.twilio_errors import CODES, Concern, classify


@pytest.mark.parametrize(
    ("status", "code", "concern"),
    [
        # the contact: it fails, the campaign goes on
        (400, 21211, Concern.CONTACT), (400, 21215, Concern.CONTACT),
        (400, 21216, Concern.CONTACT), (400, 13224, Concern.CONTACT),
        (400, 21214, Concern.CONTACT),
        # the campaign: it pauses
        (400, 21205, Concern.CAMPAIGN), (400, 21210, Concern.CAMPAIGN),
        (400, 21212, Concern.CAMPAIGN), (400, 21218, Concern.CAMPAIGN),
        (400, 20001, Concern.CAMPAIGN), (400, 29999, Concern.CAMPAIGN),
        (400, None, Concern.CAMPAIGN), (422, None, Concern.CAMPAIGN),
        # the account: every campaign of it pauses
        (401, 20003, Concern.ACCOUNT), (401, None, Concern.ACCOUNT),
        (403, 20005, Concern.ACCOUNT), (403, None, Concern.ACCOUNT),
        (404, 20404, Concern.ACCOUNT), (400, 10001, Concern.ACCOUNT),
        # not now
        (429, 20429, Concern.RATE_LIMITED), (429, None, Concern.RATE_LIMITED),
        (400, 10004, Concern.RETRY_LATER),
        (500, 20500, Concern.AMBIGUOUS), (503, 20503, Concern.AMBIGUOUS),
        (502, None, Concern.AMBIGUOUS),
        # a 5xx may have created the call, whatever code it carries
        (500, 21211, Concern.AMBIGUOUS),
    ],
)
def test_whom_a_refusal_concerns(status: int, code: int | None, concern: Concern) -> None:
    assert classify(status, code).concern is concern


def test_every_code_has_a_title_and_a_comment_with_twilios_wording() -> None:
    lines = Path(twilio_errors.__file__).read_text(encoding="utf-8").splitlines()
    for code, refusal in CODES.items():
        assert refusal.title
        at = next(i for i, line in enumerate(lines) if line.strip().startswith(f"{code}: "))
        comment = []
        while lines[at - 1].strip().startswith("#"):
            at -= 1
            comment.append(lines[at])
        assert any('"' in line for line in comment), f"{code} has no quoted title above it"
    assert {refusal.concern for refusal in CODES.values()} == set(Concern)
