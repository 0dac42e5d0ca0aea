"""The Twilio Voice REST client: create, fetch, list and update calls; fetch the
account and look up its numbers (for ``dialer check``).

Everything the dispatcher must react to differently is a distinct exception, decided
here once from the HTTP status, Twilio's error code (whom it concerns is the table in
``dialer.twilio_errors``) and *when* a transport error happened: a request that never
left cannot have created a call and is safe to resend, one that did may have, and
must be reconciled instead.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import email.utils
import math
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import structlog

from dialer.transport import PooledTransport, first_byte_between
from dialer.twilio_errors import Concern, classify
from dialer.twilio_words import API_VERSION

log = structlog.get_logger(__name__)


class TwilioError(Exception):
    """Base class; ``code`` is Twilio's error code when the API gave one."""

    def __init__(
        self, message: str, *, status: int | None = None, code: int | None = None,
        title: str | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.title = title  # what the code means, from dialer.twilio_errors


class RateLimited(TwilioError):
    """429/20429: not processed; back off and resend the same request."""


class PermanentError(TwilioError):
    """The number is refused for good; do not retry this contact."""


class CampaignError(TwilioError):
    """The campaign's settings are refused (its Url, its caller ID, a parameter): every
    contact of the campaign would be refused the same way."""


class AuthError(TwilioError):
    """Credentials or account refused; every request of the account would fail too."""


class RetryLater(TwilioError):
    """Refused before anything was created (the account's concurrent calls, 10004, or a
    request that never reached Twilio): safe to resend later."""


class AmbiguousError(TwilioError):
    """The request may have created a call: reconcile before doing anything else."""


class NotFound(TwilioError):
    """No such call."""


@dataclass(frozen=True, slots=True)
class CallInfo:
    """The parts of a Call resource the dialer uses."""

    sid: str
    status: str
    to: str
    from_: str
    date_created: dt.datetime | None
    start_time: dt.datetime | None
    duration: int | None
    answered_by: str | None
    queue_time_ms: int | None

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> CallInfo:
        duration = body.get("duration")
        queue_time = body.get("queue_time")
        return cls(
            sid=str(body["sid"]),
            status=str(body["status"]),
            to=str(body.get("to") or ""),
            from_=str(body.get("from") or ""),
            date_created=parse_rfc2822(body.get("date_created")),
            start_time=parse_rfc2822(body.get("start_time")),
            duration=int(duration) if duration not in (None, "") else None,
            answered_by=body.get("answered_by") or None,
            queue_time_ms=int(queue_time) if queue_time not in (None, "") else None,
        )


@dataclass(frozen=True, slots=True)
class AccountInfo:
    """The parts of the Account resource the checks use (never its auth_token)."""

    sid: str
    status: str
    """``active``, ``suspended`` or ``closed``."""
    type: str | None
    """``Trial`` or ``Full``."""

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> AccountInfo:
        return cls(sid=str(body["sid"]), status=str(body["status"]),
                   type=body.get("type") or None)


def parse_rfc2822(value: object) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    return email.utils.parsedate_to_datetime(value)


_ERROR_FOR: dict[Concern, type[TwilioError]] = {
    Concern.CONTACT: PermanentError,
    Concern.CAMPAIGN: CampaignError,
    Concern.ACCOUNT: AuthError,
    Concern.RATE_LIMITED: RateLimited,
    Concern.RETRY_LATER: RetryLater,
    Concern.AMBIGUOUS: AmbiguousError,
}


def _error_from_response(response: httpx.Response, *, creating: bool = False) -> TwilioError:
    """The exception for an error answer, its class decided by whom a refused Create
    Call concerns (``dialer.twilio_errors``). Only on Create Call is a 404 the
    account's problem (no Calls list for this SID); elsewhere it means no such
    resource. Other requests' callers tell ``NotFound`` and ``AuthError`` apart and
    treat the rest alike."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    code = body.get("code") if isinstance(body, dict) else None
    message = str(body.get("message") if isinstance(body, dict) else "") or response.reason_phrase
    status = response.status_code
    code = code if isinstance(code, int) and not isinstance(code, bool) else None
    if status == 404 and not creating:
        return NotFound(message, status=status, code=code)
    refusal = classify(status, code)
    return _ERROR_FOR[refusal.concern](message, status=status, code=code, title=refusal.title)


_FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _form(data: Sequence[tuple[str, str]]) -> bytes:
    """A form body; encoded here, as httpx's ``data`` takes a mapping and
    StatusCallbackEvent repeats."""
    return urllib.parse.urlencode(data).encode()


class TwilioClient:
    """One account's client: one HTTP connection pool per process, and at most
    ``max_in_flight`` requests at once.

    The in-flight cap matters as much as the rate: Twilio answers 20429 to accounts
    with too many concurrent REST requests, whatever their CPS. ``in_flight`` is that
    cap, the one semaphore of the account: every request takes a permit of it, except
    ``create_call``, whose caller holds one already (the dispatcher takes it before
    the call's send slot, so that nothing can make the request wait once the slot
    has come, and gives it back when the send is done).
    """

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        api_base: str,
        timeout: float,
        max_in_flight: int,
    ) -> None:
        self.account_sid = account_sid
        self._calls_path = f"/{API_VERSION}/Accounts/{account_sid}/Calls"
        self.in_flight = asyncio.Semaphore(max_in_flight)
        self._http = httpx.AsyncClient(
            base_url=api_base,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            transport=PooledTransport(connections=max_in_flight),
            headers={"User-Agent": "dialer/0.1", "Accept": "application/json"},
        )
        # The Create Call request is built from parts made once (set_auth_token makes its
        # headers): build_request would merge URL, headers, cookies and parameters anew
        # for every call.
        template = self._http.build_request("POST", f"{self._calls_path}.json")
        self._create_url, self._create_extensions = template.url, template.extensions
        self._form_headers = httpx.Headers()
        self.set_auth_token(auth_token)

    async def aclose(self) -> None:
        await self._http.aclose()

    def set_auth_token(self, token: str) -> None:
        """The token requests authenticate with (a rotated one on SIGHUP). Basic auth as
        a header of the client's: httpx's auth flow would run a generator and encode it
        again for every request."""
        credentials = base64.b64encode(f"{self.account_sid}:{token}".encode()).decode("ascii")
        self._http.headers["Authorization"] = f"Basic {credentials}"
        self._form_headers = httpx.Headers({**self._http.headers, **_FORM})

    async def _request(
        self, method: str, path: str, *, data: Sequence[tuple[str, str]] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        content = None if data is None else _form(data)
        request = self._http.build_request(method, path, content=content, params=params,
                                           headers=None if data is None else _FORM)
        async with self.in_flight:
            return await self._send(request)

    async def _send(self, request: httpx.Request, *, creating: bool = False) -> httpx.Response:
        """One request, its permit of ``in_flight`` held by the caller."""
        try:
            response = await self._http.send(request)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # Nothing reached Twilio: no call can exist.
            raise RetryLater(f"could not connect: {exc!r}") from exc
        except httpx.TransportError as exc:
            raise AmbiguousError(f"no answer to a sent request: {exc!r}") from exc
        if response.is_success:
            return response
        raise _error_from_response(response, creating=creating)

    async def warm_up(self) -> None:
        """Open a connection before the first create. A create that must connect first
        (TCP and TLS: about 100 ms to Twilio) arrives late, just before the next one
        on time, and Twilio counts both in one second. Listing one call costs nothing
        against the CPS, and it finds refused credentials before a campaign does."""
        await self._request("GET", f"{self._calls_path}.json", params={"PageSize": "1"})

    async def create_call(self, params: Sequence[tuple[str, str]], *,
                          not_before: float = -math.inf, not_after: float = math.inf,
                          ) -> CallInfo:
        """POST /Calls.json; params is a list of pairs because StatusCallbackEvent repeats.
        The caller holds a permit of ``in_flight`` (see the class docstring). The request
        starts between ``not_before`` and ``not_after`` (monotonic), or raises LateSend
        with nothing sent.
        """
        with first_byte_between(not_before, not_after):
            response = await self._send(httpx.Request(
                "POST", self._create_url, headers=self._form_headers, content=_form(params),
                extensions=self._create_extensions), creating=True)
        return CallInfo.from_json(response.json())

    async def fetch_call(self, sid: str) -> CallInfo:
        response = await self._request("GET", f"{self._calls_path}/{sid}.json")
        return CallInfo.from_json(response.json())

    async def update_call(self, sid: str, *, status: str) -> CallInfo:
        """Status=completed hangs up a live call; Status=canceled drops a queued one."""
        response = await self._request(
            "POST", f"{self._calls_path}/{sid}.json", data=[("Status", status)]
        )
        return CallInfo.from_json(response.json())

    async def list_calls(
        self, *, to: str, from_: str, started_on_or_after: dt.date | None = None,
        status: str | None = None,
    ) -> list[CallInfo]:
        """Every page of calls matching the filter (Twilio filters StartTime by date)."""
        params = {"To": to, "From": from_, "PageSize": "100"}
        if started_on_or_after is not None:
            params["StartTime>"] = started_on_or_after.isoformat()
        if status is not None:
            params["Status"] = status
        items = await self._list_all(f"{self._calls_path}.json", "calls", params)
        return [CallInfo.from_json(item) for item in items]

    async def _list_all(
        self, path: str, key: str, params: Mapping[str, str]
    ) -> list[dict[str, Any]]:
        """Every item of a Twilio list, following ``next_page_uri`` to the last page."""
        items: list[dict[str, Any]] = []
        response = await self._request("GET", path, params=params)
        while True:
            body = response.json()
            items.extend(body.get(key, []))
            next_uri = body.get("next_page_uri")
            if not next_uri:
                return items
            response = await self._request("GET", next_uri)

    @property
    def _account_path(self) -> str:
        return f"/{API_VERSION}/Accounts/{self.account_sid}"

    async def fetch_account(self) -> AccountInfo:
        """GET /Accounts/{Sid}.json: proves the credentials and tells whether the account
        may call (AuthError when the credentials are refused)."""
        response = await self._request("GET", f"{self._account_path}.json")
        return AccountInfo.from_json(response.json())

    async def owns_number(self, number: str) -> bool:
        """Whether ``number`` is one of the account's phone numbers."""
        return await self._lists_number("IncomingPhoneNumbers", "incoming_phone_numbers", number)

    async def is_verified_caller_id(self, number: str) -> bool:
        """Whether ``number`` is a verified caller ID (OutgoingCallerIds) of the account."""
        return await self._lists_number("OutgoingCallerIds", "outgoing_caller_ids", number)

    async def _lists_number(self, resource: str, key: str, number: str) -> bool:
        """Twilio's PhoneNumber filter also matches partial numbers (on
        IncomingPhoneNumbers), so what it lists is compared in full."""
        items = await self._list_all(f"{self._account_path}/{resource}.json", key,
                                     {"PhoneNumber": number})
        return any(item.get("phone_number") == number for item in items)
