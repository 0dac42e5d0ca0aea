"""The accounts the simulator serves: each one's Account resource (``GET
/Accounts/{Sid}.json``), the phone numbers it owns (``IncomingPhoneNumbers.json``),
its verified caller IDs (``OutgoingCallerIds.json``), what its status does to
requests, and its own request state: who it authenticates, its requests in flight,
its recent creates (strict mode) and its faults. Accounts share nothing but the
server: one account's 429s or refused credentials are that account's alone.

Status (``SimConfig.account_status``): a suspended or closed account still
authenticates and still answers reads, so that a client can fetch the Account
resource and see why it cannot call; updates of existing calls still work (Twilio's
subaccount guide: a suspension does not end calls in progress, they are ended by
updating them). Every Create Call is refused with 401 and Twilio's code 20005
"Account not active". Twilio's page for 20005 gives the code and its text but not
the HTTP status: 401 is the simulator's choice, the status of Twilio's other 200xx
authentication errors, and what the dialer treats as an authentication failure
either way (the code is in its AUTH_CODES). Not verified against a suspended Twilio
account; reports differ on whether such an account's credentials are refused
outright (20003), which the simulator shows with a wrong token instead.

Lists, as in Twilio's OpenAPI description: ``PhoneNumber`` on IncomingPhoneNumbers
matches partial numbers, ``*`` standing for any digit ("+1415" finds every number
containing it); on OutgoingCallerIds it matches the whole number. ``FriendlyName``
matches exactly on both. Both page like the calls list (``PageSize``, ``Page``,
``PageToken``). Numbers are listed in the order configured; their SIDs are derived
from the number, so they stay the same across restarts.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from dialer.sim.calls import formatted, rfc2822
from dialer.sim.config import SimAccountConfig
from dialer.sim.faults import Faults
from dialer.sim.listing import page_of
from dialer.sim.params import Form, Paging, last, parse_paging
from dialer.twilio_words import API_VERSION

ACTIVE = "active"
# What the simulator serves under an account: the Account resource lists only these,
# so that a client following ``subresource_uris`` never meets a 404.
_SUBRESOURCES = {
    "calls": "Calls",
    "incoming_phone_numbers": "IncomingPhoneNumbers",
    "outgoing_caller_ids": "OutgoingCallerIds",
}


def _sid(kind: str, number: str) -> str:
    """A stable PN SID per number and kind (an owned number and a caller ID differ)."""
    return "PN" + hashlib.sha256(f"{kind}:{number}".encode()).hexdigest()[:32]


def number_matches(number: str, pattern: str) -> bool:
    """Twilio's partial match: ``pattern`` occurs in ``number``, ``*`` being any digit."""
    expression = "".join(r"\d" if char == "*" else re.escape(char) for char in pattern)
    return re.search(expression, number) is not None


@dataclass(frozen=True, slots=True)
class NumberQuery:
    """A validated IncomingPhoneNumbers or OutgoingCallerIds list request."""

    phone_number: str | None
    friendly_name: str | None
    paging: Paging
    filters: tuple[tuple[str, str], ...]
    """The filtering pairs as sent, for the page URIs."""


def parse_number_query(form: Form) -> NumberQuery:
    phone_number = last(form, "PhoneNumber") or None
    friendly_name = last(form, "FriendlyName") or None
    return NumberQuery(
        phone_number=phone_number,
        friendly_name=friendly_name,
        paging=parse_paging(form),
        filters=tuple(
            (name, value) for name, value in (("PhoneNumber", phone_number),
                                              ("FriendlyName", friendly_name)) if value
        ),
    )


class SimAccount:
    """One account's resources and request state, read from its config at every
    request (a test may change the token, status or numbers of a running simulator)."""

    def __init__(self, config: SimAccountConfig, *, created: float, faults: Faults) -> None:
        self._config = config
        self._created = created
        self.faults = faults
        self.in_flight = 0
        self._recent_creates: collections.deque[float] = collections.deque()

    @property
    def sid(self) -> str:
        return self._config.account_sid

    @property
    def config(self) -> SimAccountConfig:
        return self._config

    def authenticates(self, password: str) -> bool:
        """The primary token, or the secondary one while a rotation is under way."""
        tokens = (self._config.auth_token, self._config.secondary_auth_token)
        return any(token is not None and hmac.compare_digest(password.encode(), token.encode())
                   for token in tokens)

    def over_concurrent_requests(self) -> bool:
        limit = self._config.strict_max_concurrent_requests
        return limit is not None and self.in_flight > limit

    def over_strict_rate(self) -> bool:
        """Whether a create now makes more than ``strict_window_limit`` creates accepted
        in one second (the create is counted when it is not)."""
        now = time.monotonic()
        recent = self._recent_creates
        while recent and recent[0] <= now - 1.0:
            recent.popleft()
        if len(recent) >= self._config.strict_window_limit:
            return True
        recent.append(now)
        return False

    @property
    def active(self) -> bool:
        return self._config.account_status == ACTIVE

    @property
    def _path(self) -> str:
        return f"/{API_VERSION}/Accounts/{self._config.account_sid}"

    def resource(self) -> dict[str, Any]:
        config, date = self._config, rfc2822(self._created)
        return {
            # Twilio includes the token; the client has just authenticated with it.
            "auth_token": config.auth_token,
            "date_created": date,
            "date_updated": date,
            "friendly_name": "dialer simulator",
            "owner_account_sid": config.account_sid,
            "sid": config.account_sid,
            "status": config.account_status,
            "subresource_uris": {
                name: f"{self._path}/{path}.json" for name, path in _SUBRESOURCES.items()
            },
            "type": "Full",
            "uri": f"{self._path}.json",
        }

    def _number_resource(self, kind: str, number: str) -> dict[str, Any]:
        """The fields IncomingPhoneNumber and OutgoingCallerId share."""
        sid, date = _sid(kind, number), rfc2822(self._created)
        return {
            "account_sid": self._config.account_sid,
            "date_created": date,
            "date_updated": date,
            "friendly_name": formatted(number),
            "phone_number": number,
            "sid": sid,
            "uri": f"{self._path}/{kind}/{sid}.json",
        }

    def incoming_number(self, number: str) -> dict[str, Any]:
        return {
            **self._number_resource("IncomingPhoneNumbers", number),
            "address_requirements": "none",
            "address_sid": None,
            "api_version": API_VERSION,
            "beta": False,
            "bundle_sid": None,
            "capabilities": {"voice": True, "sms": True, "mms": False, "fax": False},
            "emergency_address_sid": None,
            "emergency_address_status": "unregistered",
            "emergency_status": "Inactive",
            "identity_sid": None,
            "origin": "twilio",
            "sms_application_sid": None,
            "sms_fallback_method": "POST",
            "sms_fallback_url": None,
            "sms_method": "POST",
            "sms_url": None,
            "status": "in-use",
            "status_callback": None,
            "status_callback_method": "POST",
            "trunk_sid": None,
            "type": "local",
            "voice_application_sid": None,
            "voice_caller_id_lookup": False,
            "voice_fallback_method": "POST",
            "voice_fallback_url": None,
            "voice_method": "POST",
            "voice_receive_mode": "voice",
            "voice_url": None,
        }

    def caller_id(self, number: str) -> dict[str, Any]:
        return self._number_resource("OutgoingCallerIds", number)

    @staticmethod
    def _page(numbers: Sequence[str], query: NumberQuery, *, path: str, name: str,
              resource: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
        wanted = [number for number in numbers
                  if query.friendly_name is None or formatted(number) == query.friendly_name]
        return page_of(wanted, paging=query.paging, path=path, name=name,
                       key=lambda number: number, resource=resource, filters=query.filters)

    def incoming_numbers_page(self, form: Form, path: str) -> dict[str, Any]:
        query = parse_number_query(form)
        pattern = query.phone_number
        numbers = [n for n in self._config.phone_numbers
                   if pattern is None or number_matches(n, pattern)]
        return self._page(numbers, query, path=path, name="incoming_phone_numbers",
                          resource=self.incoming_number)

    def caller_ids_page(self, form: Form, path: str) -> dict[str, Any]:
        query = parse_number_query(form)
        numbers = [n for n in self._config.caller_ids
                   if query.phone_number is None or n == query.phone_number]
        return self._page(numbers, query, path=path, name="outgoing_caller_ids",
                          resource=self.caller_id)
