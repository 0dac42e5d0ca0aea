"""The embedded server's bounds: slow clients are cut off, connections are capped."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import httpx
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from dialer.httpserver import EmbeddedServer
from dialer.testing import free_port

READ_TIMEOUT = 0.5


@contextlib.asynccontextmanager
async def server(*, max_connections: int = 100) -> AsyncIterator[tuple[int, list[str]]]:
    """A server whose one route reads the body; yields (port, what the app saw)."""
    seen: list[str] = []

    async def echo(request: Request) -> Response:
        try:
            body = await request.body()
        except ClientDisconnect:
            seen.append("disconnected")
            return Response(status_code=400)
        seen.append(body.decode())
        return PlainTextResponse(body.decode())

    port = free_port()
    embedded = EmbeddedServer(Starlette(routes=[Route("/echo", echo, methods=["POST"])]),
                              host="127.0.0.1", port=port, read_timeout=READ_TIMEOUT,
                              max_connections=max_connections)
    await embedded.start()
    try:
        yield port, seen
    finally:
        await embedded.stop()


async def closed_after(reader: asyncio.StreamReader) -> float:
    """Seconds until the server closes the connection (reading whatever it sends)."""
    started = time.monotonic()
    while await asyncio.wait_for(reader.read(1024), 10):
        pass
    return time.monotonic() - started


async def test_a_client_that_never_finishes_its_headers_is_cut_off() -> None:
    async with server() as (port, seen):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\n")
        for _ in range(3):  # a byte now and then does not extend the deadline
            await asyncio.sleep(READ_TIMEOUT / 4)
            writer.write(b"X")
        waited = await closed_after(reader)
        writer.close()
        assert waited < READ_TIMEOUT * 4
        assert seen == []


async def test_a_client_that_never_finishes_its_body_is_cut_off() -> None:
    async with server() as (port, seen):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nhalf")
        await closed_after(reader)
        writer.close()
        await asyncio.sleep(0.05)
        assert seen == ["disconnected"]


async def test_an_idle_connection_is_cut_off_and_whole_requests_are_served() -> None:
    async with server() as (port, seen):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await closed_after(reader) < READ_TIMEOUT * 4
        writer.close()
        async with httpx.AsyncClient() as http:
            for n in range(3):  # keep-alive: each request gets the whole deadline again
                answer = await http.post(f"http://127.0.0.1:{port}/echo", content=f"hi {n}")
                assert answer.text == f"hi {n}"
                await asyncio.sleep(READ_TIMEOUT * 0.6)
        assert seen == ["hi 0", "hi 1", "hi 2"]


async def test_past_the_connection_cap_requests_get_503_at_once() -> None:
    async with server(max_connections=8) as (port, _):
        idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(8)]
        async with httpx.AsyncClient() as http:
            answer = await http.post(f"http://127.0.0.1:{port}/echo", content="x")
        assert answer.status_code == 503
        for _, writer in idle:
            writer.close()
        await asyncio.sleep(0.1)
        async with httpx.AsyncClient() as http:
            answer = await http.post(f"http://127.0.0.1:{port}/echo", content="x")
        assert answer.status_code == 200
