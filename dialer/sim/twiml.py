"""The little of TwiML the simulator runs: a ``<Gather>`` with an ``action`` in a call's
inline TwiML, and the keys a callee presses into it. Pure functions.

Twilio's ``<Gather>`` (docs: TwiML Voice, ``<Gather>``) collects keys until
``numDigits`` are in (default: unlimited), ``finishOnKey`` is pressed (default ``#``,
and not part of ``Digits``) or a timeout passes, then requests ``action`` with
``method`` (default POST) and the keys in ``Digits``; the TwiML it answers replaces the
rest of the document, and the call ends when that runs out. A relative ``action``
(resolved against the document's URL) cannot occur in inline TwiML and is not followed.
The XML is parsed with the standard library: with expat 2.4.1 or newer (Python 3.11
ships it) entity expansion is bounded and external entities are not fetched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit
from xml.etree import ElementTree

__all__ = ["Gather", "find_gather", "keys_sent"]

_KEYS = frozenset("0123456789*#")


@dataclass(frozen=True, slots=True)
class Gather:
    action: str
    method: Literal["GET", "POST"] = "POST"
    num_digits: int | None = None
    finish_on_key: str = "#"


def find_gather(twiml: str | None) -> Gather | None:
    """The first ``<Gather>`` of the document with an absolute http(s) ``action``, or
    None (no document, not XML, no such Gather)."""
    if not twiml:
        return None
    try:
        root = ElementTree.fromstring(twiml)
    except ElementTree.ParseError:
        return None
    for element in root.iter("Gather"):
        action = element.get("action", "")
        split = urlsplit(action)
        if split.scheme not in ("http", "https") or not split.hostname:
            continue
        method: Literal["GET", "POST"] = (
            "GET" if element.get("method", "POST").upper() == "GET" else "POST")
        digits = element.get("numDigits", "")
        finish = element.get("finishOnKey", "#")
        return Gather(action, method, int(digits) if digits.isdigit() and int(digits) > 0
                      else None, finish if finish in _KEYS or finish == "" else "#")
    return None


def keys_sent(gather: Gather, pressed: str) -> tuple[str, str]:
    """(Digits, FinishedOnKey) for keys pressed into ``gather``: collection stops at the
    finishing key (which is not part of Digits) or once ``numDigits`` are in."""
    digits = ""
    for key in pressed:
        if gather.finish_on_key and key == gather.finish_on_key:
            return digits, key
        digits += key
        if gather.num_digits is not None and len(digits) >= gather.num_digits:
            break
    return digits, ""
