"""The Twilio accounts a dialer dials for, as data: their SIDs, labels and limits.

Each account (a Twilio account or subaccount: an agency's clients each have one) has
its own CPS, concurrent-call limit and REST requests in flight, kept in the
``accounts`` table by ``dialer account add|edit|remove``. Its secrets never are: they
come from ``dialer.credentials``. The account of ``DIALER_TWILIO_ACCOUNT_SID`` is the
default account: the settings give its limits (``DIALER_TWILIO_CPS`` and the rest),
as before there were others.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg

from dialer.campaigns import MAX_CONCURRENT as MAX_CONCURRENT
from dialer.config import Settings

SID = re.compile(r"AC[0-9a-fA-F]{32}")
LABEL = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")
MAX_CPS = 1000.0
MAX_IN_FLIGHT = 1000


def is_sid(text: str) -> bool:
    return SID.fullmatch(text) is not None


def check_sid(text: str) -> str:
    if not is_sid(text):
        raise ValueError("an account SID is AC followed by 32 hex digits")
    return text


def check_label(text: str) -> str:
    """A label names an account for operators; it cannot be mistaken for a SID."""
    if is_sid(text) or LABEL.fullmatch(text) is None:
        raise ValueError("a label is 1-64 letters, digits, '_', '.' or '-', starting with a "
                         "letter, and not an account SID")
    return text


def check_limits(*, cps: float | None = None, max_concurrent_calls: int | None = None,
                 max_in_flight: int | None = None) -> None:
    """The bounds the ``accounts`` table enforces, as messages naming the option."""
    if cps is not None and not 0 < cps <= MAX_CPS:
        raise ValueError(f"--cps: must be above 0 and at most {MAX_CPS:g}")
    if max_concurrent_calls is not None and not 0 < max_concurrent_calls <= MAX_CONCURRENT:
        raise ValueError(f"--max-concurrent: must be from 1 to {MAX_CONCURRENT}")
    if max_in_flight is not None and not 0 < max_in_flight <= MAX_IN_FLIGHT:
        raise ValueError(f"--max-in-flight: must be from 1 to {MAX_IN_FLIGHT}")


@dataclass(frozen=True, slots=True)
class Account:
    """One account's identity and limits, as a daemon applies them."""

    sid: str
    label: str | None
    cps: float
    max_concurrent_calls: int | None
    """Calls in progress at once over all its campaigns (Twilio refuses more: 10004)."""
    max_in_flight: int
    """REST requests in flight at once in one process (more get 20429)."""

    @property
    def name(self) -> str:
        """How logs and messages name it: its label, else its SID."""
        return self.label or self.sid

    @classmethod
    def from_row(cls, row: Mapping[str, Any] | asyncpg.Record, *,
                 default_in_flight: int) -> Account:
        return cls(
            sid=row["sid"], label=row["label"], cps=float(row["cps"]),
            max_concurrent_calls=row["max_concurrent_calls"],
            max_in_flight=row["max_in_flight"] or default_in_flight,
        )


def default_account(settings: Settings) -> Account | None:
    """The account the settings describe (``DIALER_TWILIO_ACCOUNT_SID``), if any."""
    if settings.twilio_account_sid is None:
        return None
    return Account(
        sid=settings.twilio_account_sid, label=None, cps=settings.twilio_cps,
        max_concurrent_calls=settings.twilio_max_concurrent_calls,
        max_in_flight=settings.twilio_max_in_flight,
    )
