"""An httpx transport made of several small connection pools instead of one large one.

httpcore's pool, each time a request starts or ends, walks every connection it holds
and asks each idle one whether its socket has become readable (a poll per
connection, through anyio's attribute lookup). With the 32+ connections the dialer
keeps open towards Twilio, that walk was most of the CPU the daemon spent on a call
and capped one process near 300 creates/s. Pools of a few connections keep the walk
short; each request goes to the pool with the fewest requests in flight, so slow
answers on one pool do not hold up the others.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable

import httpx

CONNECTIONS_PER_POOL = 4


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
        limits = httpx.Limits(max_connections=per_pool, max_keepalive_connections=per_pool)
        tls = httpx.create_ssl_context()  # one for all: each takes milliseconds to build
        self._pools = [
            httpx.AsyncHTTPTransport(verify=tls, limits=limits)
            for _ in range(max(1, math.ceil(connections / per_pool)))
        ]
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
