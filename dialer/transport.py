"""An httpx transport made of several small connection pools instead of one large one.

httpcore's pool, each time a request starts or ends, walks every connection it holds
and asks each idle one whether its socket has become readable (a poll per
connection, through anyio's attribute lookup). With the 32+ connections the dialer
keeps open towards Twilio, that walk was most of the CPU the daemon spent on a call
and capped one process near 300 creates/s. Pools of a few connections keep the walk
short; each request goes to the pool with the fewest requests in flight, so slow
answers on one pool do not hold up the others.

A request may carry the moments between which it must leave (``first_byte_between``):
the pacer's guarantee is about when requests reach Twilio, and between a wake-up in the
dispatcher and the socket, httpx builds the request and yields to the event loop (its
pool's locks), where other work can hold it for milliseconds. So the wait for the slot
happens where the request is written, and a request that could not be written by its
deadline raises ``LateSend`` with nothing sent. httpcore writes a request's head and its
body separately, with a turn of the event loop between them, which on a busy loop let
the body follow milliseconds after the slot; a paced request is therefore held until
its ``Content-Length`` is complete and written at once. anyio's ``send`` writes to the
transport before it yields, so nothing comes between the check and the bytes leaving.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import math
import ssl
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any

import httpcore
import httpx

CONNECTIONS_PER_POOL = 4


# (not before, not after): monotonic moments between which the current task's next
# request must start.
_first_byte_between: contextvars.ContextVar[tuple[float, float] | None] = (
    contextvars.ContextVar("first_byte_between", default=None))


class LateSend(Exception):
    """The request's first byte would have left after its deadline; nothing was sent."""


@contextlib.contextmanager
def first_byte_between(not_before: float, not_after: float) -> Iterator[None]:
    """The next request of this task inside the block starts in that interval (it waits
    for ``not_before`` at the socket) or raises LateSend."""
    token = _first_byte_between.set((not_before, not_after))
    try:
        yield
    finally:
        _first_byte_between.reset(token)


def _content_length(head: bytes) -> int:
    """The body length a request head (as h11 writes it) announces; 0 without one, and
    for a chunked body, which is then written as it comes."""
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


class _DeadlineStream(httpcore.AsyncNetworkStream):
    """A connection that writes each paced request whole, between its two moments."""

    def __init__(self, stream: httpcore.AsyncNetworkStream) -> None:
        self._stream = stream
        self._held = bytearray()  # a paced request's bytes until it is complete
        self._length = 0  # how many bytes that request has in all
        self._between = (0.0, 0.0)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._stream.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        between = _first_byte_between.get()
        if between is not None:  # the head of a paced request: its first write
            _first_byte_between.set(None)  # later requests of the task are not paced
            self._between, self._held = between, bytearray(buffer)
            self._length = len(buffer) + _content_length(buffer)
        elif self._held:
            self._held += buffer
        else:
            await self._stream.write(buffer, timeout)
            return
        if len(self._held) < self._length:
            return
        whole, self._held = bytes(self._held), bytearray()
        not_before, not_after = self._between
        # Timers may fire up to a millisecond early: sleep again until it is time.
        while (delay := not_before - time.monotonic()) > 0:  # noqa: ASYNC110 (a deadline, not an event)
            await asyncio.sleep(delay)
        if (late := time.monotonic() - not_after) > 0:
            raise LateSend(f"{late:.4f} s after its deadline")
        await self._stream.write(whole, timeout)

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        return _DeadlineStream(await self._stream.start_tls(ssl_context, server_hostname,
                                                            timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.AsyncNetworkBackend):
    """httpcore's own backend, its connections wrapped in ``_DeadlineStream``."""

    def __init__(self) -> None:
        self._backend = httpcore.AnyIOBackend()

    async def connect_tcp(
        self, host: str, port: int, timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return _DeadlineStream(await self._backend.connect_tcp(
            host, port, timeout, local_address, socket_options))

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return _DeadlineStream(await self._backend.connect_unix_socket(
            path, timeout, socket_options))

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


def _pool(tls: ssl.SSLContext, per_pool: int) -> httpx.AsyncHTTPTransport:
    """httpx's transport over an httpcore pool with the deadline backend. httpx takes no
    network backend, so its pool is replaced by one made as httpx makes it."""
    limits = httpx.Limits(max_connections=per_pool, max_keepalive_connections=per_pool)
    transport = httpx.AsyncHTTPTransport(verify=tls, limits=limits)
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=tls, max_connections=per_pool, max_keepalive_connections=per_pool,
        keepalive_expiry=limits.keepalive_expiry, network_backend=_DeadlineBackend(),
    )
    return transport


class _ReleasingStream(httpx.AsyncByteStream):
    """A response body that gives its pool's slot back once it is closed (read or not)."""

    def __init__(self, stream: httpx.AsyncByteStream, release: Callable[[], None]) -> None:
        self._stream = stream
        self._release: Callable[[], None] | None = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            if self._release is not None:
                self._release()
                self._release = None


class PooledTransport(httpx.AsyncBaseTransport):
    """``connections`` keep-alive connections spread over pools of ``per_pool``."""

    def __init__(self, *, connections: int, per_pool: int = CONNECTIONS_PER_POOL) -> None:
        tls = httpx.create_ssl_context()  # one for all: each takes milliseconds to build
        self._pools = [_pool(tls, per_pool)
                       for _ in range(max(1, math.ceil(connections / per_pool)))]
        self._busy = [0] * len(self._pools)

    @property
    def requests_in_flight(self) -> tuple[int, ...]:
        """Per pool: requests sent whose response has not been closed yet."""
        return tuple(self._busy)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        index = min(range(len(self._pools)), key=self._busy.__getitem__)
        self._busy[index] += 1

        def release() -> None:
            self._busy[index] -= 1

        try:
            response = await self._pools[index].handle_async_request(request)
        except BaseException:
            release()
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _ReleasingStream(response.stream, release)
        return response

    async def aclose(self) -> None:
        for pool in self._pools:
            await pool.aclose()
