"""The pooled httpx transport: its connections are all used, never exceeded, and a
pool's slot comes back however the response ends."""

from __future__ import annotations

import asyncio
import math
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpcore
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dialer.httpserver import EmbeddedServer
from dialer.testing import free_port
from dialer.transport import (
    LateSend,
    PooledTransport,
    _DeadlineBackend,
    _DeadlineStream,
    first_byte_between,
)


class SlowServer:
    """Answers each request after a pause; counts requests at once and client ports."""

    def __init__(self) -> None:
        self.now = 0
        self.most = 0
        self.ports: set[int] = set()

    async def handle(self, request: Request) -> Response:
        assert request.client is not None
        self.ports.add(request.client.port)
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            await asyncio.sleep(0.1)
        finally:
            self.now -= 1
        return Response(b"x" * 100_000)

    def reset(self) -> None:
        self.most = 0


@pytest.fixture
async def slow() -> AsyncIterator[tuple[SlowServer, str]]:
    server = SlowServer()
    app = Starlette(routes=[Route("/", server.handle)])
    port = free_port()
    http = EmbeddedServer(app, host="127.0.0.1", port=port)
    await http.start()
    try:
        yield server, f"http://127.0.0.1:{port}"
    finally:
        await http.stop()


async def test_all_connections_work_at_once_and_no_more(
    slow: tuple[SlowServer, str],
) -> None:
    server, url = slow
    transport = PooledTransport(connections=8, per_pool=3)  # pools of 3, 3 and 3
    async with httpx.AsyncClient(transport=transport, base_url=url, timeout=10) as client:
        answers = await asyncio.gather(*(client.get("/") for _ in range(30)))
        assert {a.status_code for a in answers} == {200}
        assert transport.requests_in_flight == (0, 0, 0)
        assert server.most == 9
        assert len(server.ports) == 9, "connections are kept alive and reused"


async def test_a_slot_comes_back_when_a_body_is_not_read_or_a_request_fails(
    slow: tuple[SlowServer, str],
) -> None:
    server, url = slow
    transport = PooledTransport(connections=4, per_pool=2)
    async with httpx.AsyncClient(transport=transport, base_url=url, timeout=10) as client:

        async def unread() -> None:
            async with client.stream("GET", "/"):
                pass  # closed without reading the body

        async def cancelled() -> None:
            with pytest.raises(httpx.TimeoutException):  # reading, or waiting for a pool
                await client.get("/", timeout=0.02)

        await asyncio.gather(*(unread() for _ in range(8)), *(cancelled() for _ in range(8)))
        assert transport.requests_in_flight == (0, 0)
        await asyncio.sleep(0.2)  # the timed-out requests finish on the server
        server.reset()
        await asyncio.gather(*(client.get("/") for _ in range(12)))
        assert server.most == 4, "every pool slot is free again"


class ByteCounter:
    """A raw HTTP/1.1 server: counts every byte received, answers each request after
    ``delay`` s (keep-alive), so a test sees whether anything at all was sent."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.received = 0
        self.requests = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buffer = b""
        while chunk := await reader.read(65536):
            self.received += len(chunk)
            buffer += chunk
            while b"\r\n\r\n" in buffer:
                _, buffer = buffer.split(b"\r\n\r\n", 1)
                self.requests += 1
                await asyncio.sleep(self.delay)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        writer.close()


async def test_a_request_that_cannot_start_by_its_deadline_sends_nothing() -> None:
    counter = ByteCounter(delay=0.2)
    server = await asyncio.start_server(counter.serve, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
    transport = PooledTransport(connections=1, per_pool=1)
    try:
        async with httpx.AsyncClient(transport=transport) as client:
            with first_byte_between(-math.inf, time.monotonic() - 0.001), pytest.raises(LateSend):
                await client.get(url)
            assert counter.received == 0
            # The one connection is busy for 0.2 s; a request with 50 ms to start waits
            # inside httpx for it, past its deadline, and goes nowhere.
            first = asyncio.create_task(client.get(url))
            await asyncio.sleep(0.02)
            before = counter.received
            with first_byte_between(-math.inf, time.monotonic() + 0.05), pytest.raises(LateSend):
                await client.get(url)
            assert (await first).status_code == 200
            assert counter.received == before and counter.requests == 1
            # Nothing spoiled: a request with time to start, and one without a deadline.
            # and one that waits at the socket for its moment.
            at = time.monotonic() + 0.1
            with first_byte_between(at, at + 1):
                assert (await client.get(url)).status_code == 200
            assert time.monotonic() >= at
            assert (await client.get(url)).status_code == 200
            assert counter.requests == 3
    finally:
        server.close()
        await server.wait_closed()


class RecordedStream(httpcore.AsyncNetworkStream):
    """A connection's far end that keeps what each write carried, and answers 200."""

    def __init__(self) -> None:
        self.writes: list[tuple[float, bytes]] = []
        self._answer = b""

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        answer, self._answer = self._answer, b""
        return answer

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if buffer:
            self.writes.append((time.monotonic(), buffer))
        self._answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    async def aclose(self) -> None:
        pass


async def test_a_paced_request_is_written_whole_at_its_moment() -> None:
    """httpcore writes a request's head and body apart, with a turn of the event loop
    between; a paced create goes in one write, so its body cannot trail its slot."""
    far_end = RecordedStream()
    connection = httpcore.AsyncHTTP11Connection(
        origin=httpcore.Origin(b"http", b"twilio", 80), stream=_DeadlineStream(far_end))
    body = b"To=%2B14155550100&From=%2B15005550006&Url=http%3A%2F%2Fx%2Ftwiml"

    async def create() -> int:
        response = await connection.handle_async_request(httpcore.Request(
            "POST", "http://twilio/2010-04-01/Calls.json", content=body,
            headers=[(b"Host", b"twilio"), (b"Content-Length", str(len(body)).encode())]))
        await response.aread()
        await response.aclose()
        return response.status

    at = time.monotonic() + 0.05
    with first_byte_between(at, at + 1):
        assert await create() == 200
    ((written_at, whole),) = far_end.writes
    assert written_at >= at
    assert whole.startswith(b"POST /2010-04-01/Calls.json") and whole.endswith(body)
    far_end.writes.clear()
    assert await create() == 200
    assert [buffer for _, buffer in far_end.writes][1:] == [body]  # unpaced: as httpcore writes


TLS = Path(__file__).parent / "data" / "tls"  # a self-signed localhost certificate


async def test_connections_speak_tls_and_see_the_far_end_close() -> None:
    """The event loop's transports carry TLS (Twilio is HTTPS), keep a connection alive
    across requests, and an idle connection the server closed is not used again."""
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(TLS / "cert.pem", TLS / "key.pem")
    answers: list[Any] = []  # the server's transports (uvloop's are not asyncio's)

    class Answer(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            answers.append(transport)

        def data_received(self, data: bytes) -> None:
            answers[-1].write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    server = await asyncio.get_running_loop().create_server(
        Answer, "127.0.0.1", 0, ssl=served)
    port = server.sockets[0].getsockname()[1]
    trusted = ssl.create_default_context(cafile=TLS / "cert.pem")
    pool = httpcore.AsyncConnectionPool(ssl_context=trusted, network_backend=_DeadlineBackend())
    try:
        for _ in range(2):
            response = await pool.request("GET", f"https://127.0.0.1:{port}/")
            assert (response.status, response.content) == (200, b"ok")
        assert len(answers) == 1  # kept alive
        answers[0].close()
        await asyncio.sleep(0.1)
        response = await pool.request("GET", f"https://127.0.0.1:{port}/")
        assert (response.status, response.content, len(answers)) == (200, b"ok", 2)
    finally:
        await pool.aclose()
        server.close()
