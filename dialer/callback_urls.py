"""The callback URLs the dialer gives Twilio, and the forms it accepts back.

The signed string is the URL followed by the parameters' names and values with no
separators, so a URL that ends in the attempt id (``/twilio/status?a=15753``) can be
re-split: ``?a=1575`` with a first parameter ``3AccountSid...`` signs the same. The
URLs the dialer gives now end in a fixed segment after the id
(``/twilio/attempts/15753/status``), so the boundary between URL and parameters
cannot move. The old form is still understood, but the endpoint accepts it only for
attempts placed with it (migration 0003 marks them).

A StatusCallback may end in a fragment of connection overrides (``#rc=3&rp=all``:
retries, and retry on every failure). It comes from the dialer's settings, so the
endpoint knows the one fragment it may have been signed with (see dialer.signature).

Pure functions, no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

# status: StatusCallback; amd: AsyncAmdStatusCallback; gather: the opt-out Gather action
# (dialer.optout), offered to the campaign's TwiML as ${opt_out_url}.
Kind = Literal["status", "amd", "gather"]

MAX_ATTEMPT_ID = 2**63 - 1  # call_attempts.id is a bigint
# ASCII digits only ([0-9], not \d), no leading zero, at most 19 of them.
_ID = r"(?P<id>[1-9][0-9]{0,18})"
_PATH = re.compile(rf"/twilio/attempts/{_ID}/(?P<kind>status|amd|gather)")
_LEGACY_PATHS: dict[str, Kind] = {"/twilio/status": "status", "/twilio/amd": "amd"}
_LEGACY_QUERY = re.compile(rf"a={_ID}")


class NotACallbackUrl(ValueError):
    """A path and query the dialer never gives Twilio; the message says why."""


@dataclass(frozen=True, slots=True)
class CallbackTarget:
    """What a callback's path names: the attempt, the kind of report, and whether the
    URL has the old re-splittable form."""

    attempt_id: int
    kind: Kind
    legacy: bool = False


def overrides_fragment(retries: int) -> str:
    """The connection overrides asked of Twilio: ``retries`` retries (0: none, and no
    fragment at all) on every kind of failure."""
    return f"#rc={retries}&rp=all" if retries else ""


def callback_url(public_base_url: str, attempt_id: int, kind: Kind, *, retries: int) -> str:
    """The StatusCallback (``kind="status"``), AsyncAmdStatusCallback (``"amd"``) or opt-out
    Gather action (``"gather"``) URL of an attempt."""
    return f"{public_base_url}/twilio/attempts/{attempt_id}/{kind}{overrides_fragment(retries)}"


def _attempt_id(digits: str) -> int:
    value = int(digits)
    if value > MAX_ATTEMPT_ID:
        raise NotACallbackUrl(f"attempt id out of range: {digits}")
    return value


def parse_target(path: str, query: str) -> CallbackTarget:
    """The attempt a request's raw path and query string name, or NotACallbackUrl."""
    match = _PATH.fullmatch(path)
    if match is not None:
        if query:
            raise NotACallbackUrl("unexpected query string")
        return CallbackTarget(_attempt_id(match["id"]), match["kind"])  # type: ignore[arg-type]
    kind = _LEGACY_PATHS.get(path)
    if kind is None:
        raise NotACallbackUrl("not a callback path")
    legacy = _LEGACY_QUERY.fullmatch(query)
    if legacy is None:
        raise NotACallbackUrl(f"attempt id missing or not a number: {query[:40]!r}")
    return CallbackTarget(_attempt_id(legacy["id"]), kind, legacy=True)


def signed_urls(public_base_url: str, path: str, query: str, *, retries: int) -> tuple[str, ...]:
    """The URLs a genuine callback to ``path?query`` may have been signed over: as
    requested, and with the fragment the dialer appended when it gave the URL."""
    url = public_base_url + path + (f"?{query}" if query else "")
    fragment = overrides_fragment(retries)
    return (url, url + fragment) if fragment else (url,)


def attempt_id_of(url: str) -> int:
    """The attempt a callback URL the dialer gave names (either form, after any path
    prefix of the public base URL)."""
    split = urlsplit(url)
    path = split.path[max(split.path.rfind("/twilio/"), 0):]
    return parse_target(path, split.query).attempt_id
