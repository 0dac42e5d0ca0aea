"""Opt-out during the call: what a key press sent to the Gather action means, and the
TwiML answered. Pure functions; the endpoint is in dialer.callbacks.

A campaign with an opt-out key (``--opt-out-digit 9``) offers its TwiML the URL
``${opt_out_url}`` (``/twilio/attempts/{id}/gather`` under the public base URL, signed
like every callback), for ``<Gather action="${opt_out_url}" numDigits="1">``. Twilio
requests it with the keys pressed in ``Digits``. The opt-out key alone puts the number
on the do-not-call list (every campaign's, or with ``--opt-out-scope campaign`` this
campaign's) at once, records the attempt's outcome ``opted_out``, and is answered with
TwiML that says the campaign's confirmation and hangs up. Any other input is answered
with an empty ``<Response/>``, which ends the call as the end of a document does.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "DEFAULT_MESSAGE",
    "LOWERCASE_FIELDS",
    "NOTHING",
    "OPT_OUT_PLACEHOLDER",
    "READ_FIELDS",
    "BadPress",
    "OptOutScope",
    "Pressed",
    "confirmation",
    "is_opt_out",
    "parse_pressed",
]

OPT_OUT_PLACEHOLDER = "opt_out_url"
DEFAULT_MESSAGE = "You will not be called again. Goodbye."
# The fields of a Gather action request the dialer reads (dialer.callbacks checks that
# no other field's boundary was moved onto them, as for status callbacks).
READ_FIELDS = ("AccountSid", "CallSid", "Digits")
# Twilio's Gather action requests carry one parameter whose name is not CamelCase:
# ``msg=Gather End``.
LOWERCASE_FIELDS = frozenset({"msg"})
# What a keypad sends: digits, * and #; Twilio strips the finishing key.
_DIGITS = re.compile(r"[0-9*#]{0,64}")
_CALL_SID = re.compile(r"CA[0-9a-fA-F]{32}")
NOTHING = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


class OptOutScope(StrEnum):
    """Which do-not-call list an opt-out goes on."""

    GLOBAL = "global"
    CAMPAIGN = "campaign"


class BadPress(ValueError):
    """A Gather action request whose fields cannot be used; the message names the field."""


@dataclass(frozen=True, slots=True)
class Pressed:
    """What a Gather action request says: which call, and the keys pressed."""

    call_sid: str
    digits: str


def _one(form: Mapping[str, str | Sequence[str]], name: str) -> str:
    value = form.get(name, "")
    values = [value] if isinstance(value, str) else list(value)
    if len(values) > 1:
        raise BadPress(f"{name} given {len(values)} times")
    return values[0] if values else ""


def parse_pressed(form: Mapping[str, str | Sequence[str]]) -> Pressed:
    """The call and the keys of a signed Gather action request (BadPress otherwise)."""
    call_sid = _one(form, "CallSid")
    if not _CALL_SID.fullmatch(call_sid):
        raise BadPress(f"CallSid missing or malformed: {call_sid[:40]!r}")
    digits = _one(form, "Digits")
    if not _DIGITS.fullmatch(digits):
        raise BadPress(f"Digits are not keypad keys: {digits[:40]!r}")
    return Pressed(call_sid, digits)


def is_opt_out(digits: str, key: str | None) -> bool:
    """Whether the keys pressed are the campaign's opt-out key (None: it has none)."""
    return key is not None and digits == key


def confirmation(message: str) -> str:
    """TwiML that says ``message`` (escaped: it is operator text) and hangs up."""
    return ('<?xml version="1.0" encoding="UTF-8"?><Response>'
            f"<Say>{html.escape(message, quote=False)}</Say><Hangup/></Response>")
