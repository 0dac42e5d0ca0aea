"""Helpers for the simulator's tests: an API client, a callback receiver, schemas, signing.

Everything here is written independently of ``dialer.sim`` so that the tests check
the simulator against Twilio's description, not against itself.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import socket
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import uvicorn
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from dialer.commands import sim as sim_command
from dialer.sim import SimConfig, SimServer
from dialer.testing import wait_until

DATA = Path(__file__).parents[1] / "data"
FROM = "+15005550006"
TWIML_URL = "https://example.com/twiml"
Params = Mapping[str, str | Sequence[str]] | Sequence[tuple[str, str]]


def fast_config(**overrides: Any) -> SimConfig:
    """A simulator that does not make tests wait: high CPS, calls a thousand times faster."""
    values: dict[str, Any] = {"cps": 1000.0, "time_scale": 0.001}
    values.update(overrides)
    return SimConfig(**values)


ERROR_KEYS = {"code", "message", "more_info", "status"}


def assert_error(response: httpx.Response, status: int, code: int) -> None:
    """Twilio's error JSON with this status and code."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == ERROR_KEYS
    assert (body["status"], body["code"]) == (status, code)
    assert body["more_info"] == f"https://www.twilio.com/docs/errors/{code}"
    assert body["message"]


def parse(*argv: str) -> argparse.Namespace:
    """``dialer sim``'s options as its command line would give them."""
    parser = argparse.ArgumentParser()
    sim_command.add_arguments(parser)
    return parser.parse_args(argv)


def twilio_signature(url: str, params: Mapping[str, Sequence[str]], token: str) -> str:
    """Twilio's algorithm, written from its documentation, independent of dialer.signature."""
    payload = url + "".join(
        name + value for name in sorted(params) for value in sorted(set(params[name]))
    )
    return base64.b64encode(hmac.new(token.encode(), payload.encode(), hashlib.sha1).digest()
                            ).decode()


# --- The OpenAPI description as JSON Schema -------------------------------------------

def _json_schema(node: Any) -> Any:
    """OpenAPI 3.0 -> JSON Schema: ``nullable: true`` becomes a null-admitting type."""
    if isinstance(node, list):
        return [_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: _json_schema(value) for key, value in node.items() if key != "nullable"}
    if node.get("nullable") and "type" in node:
        converted["type"] = [node["type"], "null"]
    return converted


@cache
def openapi() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(
        (DATA / "twilio_api_v2010.subset.json").read_text()
    )
    return loaded


def _validator(schema: Mapping[str, Any]) -> Draft202012Validator:
    components = _json_schema(openapi()["components"])
    return Draft202012Validator({**_json_schema(schema), "components": components})


@cache
def call_validator() -> Draft202012Validator:
    return _validator({"$ref": "#/components/schemas/api.v2010.account.call"})


@cache
def account_validator() -> Draft202012Validator:
    return _validator({"$ref": "#/components/schemas/api.v2010.account"})


@cache
def list_validator(resource: str = "Calls") -> Draft202012Validator:
    """The 200 answer of GET /2010-04-01/Accounts/{AccountSid}/<resource>.json."""
    get = openapi()["paths"][f"/2010-04-01/Accounts/{{AccountSid}}/{resource}.json"]["get"]
    return _validator(get["responses"]["200"]["content"]["application/json"]["schema"])


# --- Talking to the simulator ----------------------------------------------------------

class Api:
    """The Calls API of one simulator over real HTTP."""

    def __init__(self, sim: SimServer, http: httpx.AsyncClient) -> None:
        self.sim = sim
        self.http = http
        self.calls_path = f"/2010-04-01/Accounts/{sim.account_sid}/Calls.json"

    def call_path(self, sid: str) -> str:
        return f"/2010-04-01/Accounts/{self.sim.account_sid}/Calls/{sid}.json"

    async def create(self, to: str = "+14155550100", **params: str | Sequence[str]
                     ) -> httpx.Response:
        data: dict[str, str | Sequence[str]] = {"To": to, "From": FROM, "Url": TWIML_URL}
        data.update(params)
        return await self.http.post(self.calls_path, data=data)

    async def create_sid(self, to: str = "+14155550100", **params: str | Sequence[str]) -> str:
        response = await self.create(to, **params)
        assert response.status_code == 201, response.text
        sid: str = response.json()["sid"]
        return sid

    async def fetch(self, sid: str) -> httpx.Response:
        return await self.http.get(self.call_path(sid))

    async def update(self, sid: str, **params: str) -> httpx.Response:
        return await self.http.post(self.call_path(sid), data=params)

    async def list(self, **params: str) -> httpx.Response:
        return await self.http.get(self.calls_path, params=params)


@contextlib.asynccontextmanager
async def api_for(sim: SimServer, **client: Any) -> AsyncIterator[Api]:
    async with httpx.AsyncClient(
        base_url=sim.base_url, auth=(sim.account_sid, sim.auth_token), trust_env=False,
        **client,
    ) as http:
        yield Api(sim, http)


@contextlib.asynccontextmanager
async def running(config: SimConfig) -> AsyncIterator[tuple[SimServer, Api]]:
    async with SimServer(config) as sim, api_for(sim) as api:
        yield sim, api


# --- Receiving callbacks ---------------------------------------------------------------

@dataclass(frozen=True)
class Received:
    t: float
    method: str
    url: str
    """As requested, query string included."""
    headers: Mapping[str, str]
    form: dict[str, list[str]]

    @property
    def params(self) -> dict[str, str]:
        return {name: values[-1] for name, values in self.form.items()}


@dataclass
class Receiver:
    """A webhook endpoint on loopback that records what it is sent.

    ``fail_next`` requests are answered ``fail_status``; ``delay`` holds every answer;
    the others are answered ``answer``.
    """

    base_url: str = ""
    requests: list[Received] = field(default_factory=list)
    fail_next: int = 0
    fail_status: int = 500
    delay: float = 0.0
    answer: str = "ok"

    def reset(self) -> None:
        self.requests.clear()
        self.fail_next, self.fail_status, self.delay, self.answer = 0, 500, 0.0, "ok"

    def url(self, path: str = "/status") -> str:
        return self.base_url + path

    def at(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.url.split("?")[0].endswith(path)]

    async def _handle(self, request: Request) -> Response:
        body = (await request.body()).decode()
        form: dict[str, list[str]] = {}
        for name, value in parse_qsl(body, keep_blank_values=True):
            form.setdefault(name, []).append(value)
        self.requests.append(Received(
            time.monotonic(), request.method, str(request.url), dict(request.headers), form
        ))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_next > 0:
            self.fail_next -= 1
            return PlainTextResponse("failing on purpose", status_code=self.fail_status)
        return PlainTextResponse(self.answer)

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/{path:path}", self._handle, methods=["GET", "POST"]),
        ])


class _QuietServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Any:
        yield


@contextlib.asynccontextmanager
async def serving(receiver: Receiver) -> AsyncIterator[Receiver]:
    # IPPROTO_TCP so that asyncio sets TCP_NODELAY (else ~40 ms per answer).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    server = _QuietServer(uvicorn.Config(
        receiver.app(), lifespan="off", log_level="warning", access_log=False, ws="none",
    ))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    await wait_until(lambda: server.started, interval=0.005, what="receiver start")
    receiver.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        yield receiver
    finally:
        server.should_exit = True
        await task
        sock.close()


def events(received: Iterable[Received]) -> list[str]:
    return [r.params["CallStatus"] for r in received]
