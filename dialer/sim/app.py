"""The simulator's HTTP API: the Calls endpoints of Twilio's 2010-04-01 REST API
(create, list, fetch, update, delete, and a call's Events list), and the account's
own resources (fetch the Account, list its IncomingPhoneNumbers and
OutgoingCallerIds: see ``accounts``).

Every API request is authenticated (HTTP Basic: an account's SID and auth token: the
simulator serves every account of its config, each with its own token, CPS queue,
limits, numbers and faults), checked against that account's strict-mode limits,
recorded in the trace, and answered with Twilio's JSON,
errors included: also what the framework itself refuses (an unknown path 404/20404,
a method the path lacks 405/20004, a body that is not a form 415, a crash 500/20500)
and the HTTP parser's 400 (see server.py). Create requests also pass through the
configured faults.

Order of checks: credentials (401/20003), the account in the path (404/20404: it must
be the authenticated one), strict concurrency (429/20429); then, for a create, the
account's status (401/20005), the strict rate (429/20429), the faults, validation
(400) and the concurrent-call limit (400/10004). A call of another account is not
found (404/20404), and lists hold the authenticated account's calls only.

``GET /sim/trace`` (no authentication: it is the simulator's, not Twilio's) answers
the request trace as JSON. ``POST /sim/accounts/{Sid}`` changes one account of a
running simulator process, as a test changes the config of one in its own process:
form fields ``rate_limited`` (that many creates answered 429/20429: a storm),
``auth_token`` (the token it accepts from now on: the old one gets 401/20003) and
``cps``; 204, or 400 naming a bad field, 404 for an account it does not serve.

The hot path (a create) parses the body with ``urllib.parse`` rather than a
multipart parser and logs nothing: the simulator must outrun the clients it tests.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from dialer.sim import errors
from dialer.sim.accounts import SimAccount
from dialer.sim.calls import CallEngine, SimCall
from dialer.sim.config import SimConfig
from dialer.sim.errors import ApiError
from dialer.sim.faults import Refusal
from dialer.sim.listing import list_page, page_of
from dialer.sim.params import Form, parse_create, parse_list, parse_paging, parse_update
from dialer.sim.trace import TraceRecord, to_json
from dialer.twilio_words import API_VERSION

AbortConnection = Callable[[tuple[str, int] | None], None]
"""Resets the TCP connection of the given client address, without an HTTP answer."""

ACCOUNT_PATH = f"/{API_VERSION}/Accounts/{{account_sid}}"
# Scope key: time.monotonic() when the server read the request's first bytes (set by
# SimServer's protocol, see server.py): the trace's arrival time.
ARRIVED = "dialer.sim.arrived"
FORM_TYPE = "application/x-www-form-urlencoded"


@dataclass(frozen=True, slots=True)
class _Outcome:
    status: int | None
    """None: reset the connection instead of answering."""
    body: dict[str, Any] | None = None
    call_sid: str | None = None


def _parse_form(raw: bytes | str) -> Form:
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    form: Form = {}
    for name, value in parse_qsl(text, keep_blank_values=True):
        form.setdefault(name, []).append(value)
    return form


Action = Callable[[Request, Form, SimAccount], Awaitable["_Outcome"]]


class SimApi:
    """Request handling; state lives in the engine, accounts, trace and config it is
    given."""

    def __init__(self, *, config: SimConfig, engine: CallEngine,
                 accounts: dict[str, SimAccount], trace: list[TraceRecord],
                 abort_connection: AbortConnection, closing: asyncio.Event) -> None:
        self._config = config
        self._engine = engine
        self._accounts = accounts
        self._trace = trace
        self._abort_connection = abort_connection
        self._closing = closing

    def app(self) -> Starlette:
        calls = f"{ACCOUNT_PATH}/Calls.json"
        call = f"{ACCOUNT_PATH}/Calls/{{sid}}.json"
        events = f"{ACCOUNT_PATH}/Calls/{{sid}}/Events.json"
        return Starlette(
            routes=[
                Route(calls, self._api(self._create), methods=["POST"]),
                Route(calls, self._api(self._list), methods=["GET"]),
                Route(call, self._api(self._fetch), methods=["GET"]),
                Route(call, self._api(self._update), methods=["POST"]),
                Route(call, self._api(self._delete), methods=["DELETE"]),
                Route(events, self._api(self._events), methods=["GET"]),
                Route(f"/{API_VERSION}/Accounts/{{account_sid}}.json",
                      self._api(self._fetch_account), methods=["GET"]),
                Route(f"{ACCOUNT_PATH}/IncomingPhoneNumbers.json",
                      self._api(self._incoming_numbers), methods=["GET"]),
                Route(f"{ACCOUNT_PATH}/OutgoingCallerIds.json",
                      self._api(self._caller_ids), methods=["GET"]),
                Route("/sim/trace", self._dump_trace, methods=["GET"]),
                Route("/sim/accounts/{account_sid}", self._change_account, methods=["POST"]),
            ],
            # Whatever the framework refuses (no route, a method a route lacks, a
            # crash) is answered as Twilio answers: its error JSON.
            exception_handlers={HTTPException: self._framework_error,
                                Exception: self._crash},
        )

    def _api(self, action: Action) -> Callable[[Request], Awaitable[Response]]:
        """Wraps an action with authentication, limits, tracing and error JSON."""

        async def endpoint(request: Request) -> Response:
            arrived: float = request.scope[ARRIVED]
            # Requests in flight are counted for the account in the path, as Twilio's
            # Twilio-Concurrent-Requests header counts the account's.
            counted = self._accounts.get(request.path_params.get("account_sid", ""))
            if counted is not None:
                counted.in_flight += 1
            form: Form = {}
            in_flight = 1
            try:
                if request.method == "POST":
                    body = await request.body()
                    _check_form_type(request, body)
                    form = _parse_form(body)
                else:
                    form = _parse_form(request.scope["query_string"])
                outcome = await action(request, form, self._authorize(request))
            except ApiError as error:
                outcome = _Outcome(error.status, error.body())
            finally:
                if counted is not None:
                    in_flight = counted.in_flight
                    counted.in_flight -= 1
            self._trace.append(TraceRecord(
                arrived, request.method, request.url.path, form, outcome.status, outcome.call_sid
            ))
            if outcome.status is None:
                client = request.client
                self._abort_connection((client.host, client.port) if client else None)
                await asyncio.sleep(0)  # let the server see the loss before it would answer
                return Response(status_code=500)
            headers = {"Twilio-Concurrent-Requests": str(in_flight)}
            if outcome.status == 401:
                headers["WWW-Authenticate"] = 'Basic realm="Twilio API"'
            if outcome.body is None:
                return Response(status_code=outcome.status, headers=headers)
            return JSONResponse(outcome.body, status_code=outcome.status, headers=headers)

        return endpoint

    def _authorize(self, request: Request) -> SimAccount:
        """The account whose credentials the request carries, when they are right and
        the path is that account's."""
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise errors.unauthorized() from None
        account = self._accounts.get(user)
        if scheme.lower() != "basic" or account is None or not account.authenticates(password):
            raise errors.unauthorized()
        if request.path_params["account_sid"] != account.sid:
            raise errors.not_found(request.url.path)
        if self._config.strict and account.over_concurrent_requests():
            raise errors.too_many_requests()
        return account

    def _call(self, request: Request, account: SimAccount) -> SimCall:
        call = self._engine.calls.get(request.path_params["sid"])
        if call is None or call.account_sid != account.sid:
            raise errors.not_found(request.url.path)
        return call

    async def _create(self, request: Request, form: Form, account: SimAccount) -> _Outcome:
        if not account.active:
            raise errors.account_not_active()
        if self._config.strict and account.over_strict_rate():
            raise errors.too_many_requests()
        faults = account.faults
        refusal = faults.refusal()
        if refusal is Refusal.RESET:
            return _Outcome(None)
        if refusal is Refusal.RATE_LIMITED:
            raise errors.too_many_requests()
        if refusal is Refusal.SERVER_ERROR:
            raise errors.server_error(faults.server_error_status)
        call = self._engine.create(parse_create(form), account.config)
        if faults.reset_after():
            return _Outcome(None, call_sid=call.sid)
        body = call.resource()  # as it was when created, however long the answer is held
        if faults.response_delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), faults.response_delay)
        return _Outcome(201, body, call.sid)

    async def _list(self, request: Request, form: Form, account: SimAccount) -> _Outcome:
        newest_first = [call for call in reversed(self._engine.calls.values())
                        if call.account_sid == account.sid]
        return _Outcome(200, list_page(newest_first, parse_list(form), request.url.path))

    async def _fetch(self, request: Request, form: Form, account: SimAccount) -> _Outcome:
        call = self._call(request, account)
        return _Outcome(200, call.resource(), None)

    async def _update(self, request: Request, form: Form, account: SimAccount) -> _Outcome:
        call = self._call(request, account)
        self._engine.update(call, parse_update(form), form)
        return _Outcome(200, call.resource(), None)

    async def _delete(self, request: Request, form: Form, account: SimAccount) -> _Outcome:
        self._engine.delete(self._call(request, account))
        return _Outcome(204)

    async def _events(self, request: Request, form: Form, account: SimAccount) -> _Outcome:
        call = self._call(request, account)
        page = page_of(
            list(enumerate(call.events())), paging=parse_paging(form), path=request.url.path,
            name="events", key=lambda item: str(item[0]), resource=lambda item: item[1],
        )
        return _Outcome(200, page)

    async def _fetch_account(self, request: Request, form: Form, account: SimAccount
                             ) -> _Outcome:
        return _Outcome(200, account.resource())

    async def _incoming_numbers(self, request: Request, form: Form, account: SimAccount
                                ) -> _Outcome:
        return _Outcome(200, account.incoming_numbers_page(form, request.url.path))

    async def _caller_ids(self, request: Request, form: Form, account: SimAccount
                          ) -> _Outcome:
        return _Outcome(200, account.caller_ids_page(form, request.url.path))

    async def _dump_trace(self, request: Request) -> Response:
        return Response(to_json(self._trace), media_type="application/json")

    async def _change_account(self, request: Request) -> Response:
        account = self._accounts.get(request.path_params["account_sid"])
        if account is None:
            return PlainTextResponse("no such account", status_code=404)
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
        config = account.config
        try:
            storm = int(form.get("rate_limited", "0"))
            cps = float(form.get("cps", config.cps))
            token = form.get("auth_token", config.auth_token)
            if storm < 0 or not cps > 0 or not token:
                raise ValueError("rate_limited >= 0, cps > 0 and a token are required")
        except ValueError as exc:
            return PlainTextResponse(f"bad field: {exc}", status_code=400)
        account.faults.rate_limited += storm
        config.cps, config.auth_token = cps, token
        return Response(status_code=204)

    async def _framework_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        error = errors.for_status(exc.status_code, request.method, request.url.path)
        return JSONResponse(error.body(), status_code=error.status, headers=exc.headers)

    async def _crash(self, request: Request, exc: Exception) -> Response:
        error = errors.server_error(500)
        return JSONResponse(error.body(), status_code=error.status)


def _check_form_type(request: Request, body: bytes) -> None:
    """Twilio's API takes form-encoded bodies only (its OpenAPI description's one
    request content type); an empty body may come without a type."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == FORM_TYPE or (not body and not content_type):
        return
    raise errors.unsupported_media_type(content_type)
