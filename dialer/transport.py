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
its ``Content-Length`` is complete and written at once. The connection's write hands
the bytes to the event loop's transport without yielding, so nothing comes between the
check and the bytes leaving.

The connections are the event loop's own transports (``_SocketStream``), not anyio's
streams as httpcore's default backend makes them: anyio costs, on every read and write,
a cancel scope for the timeout and, on every request start and end, a dictionary of
socket attributes built to ask each idle connection whether it is readable; with the
bytes already in hand from the protocol's callbacks, that answer costs nothing here.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import math
import socket
import ssl
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any, cast

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


# Reading pauses while this much has arrived unread (a long page of a list).
_READ_BUFFER_LIMIT = 256 * 1024


class _Connection(asyncio.Protocol):
    """What the event loop delivers on one connection, kept until ``_SocketStream``
    reads it; a waiting reader or writer is woken by a future of its own."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.received = bytearray()
        self.ended = False  # the far end sent EOF, or the connection is gone
        self.error: Exception | None = None  # why it is gone, when it did not end cleanly
        self.reading_paused = False
        self.writing_paused = False
        self.waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are no subclass of asyncio's: cast, not checked
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.received += data
        if len(self.received) > _READ_BUFFER_LIMIT and self.transport is not None:
            self.transport.pause_reading()
            self.reading_paused = True
        self._wake()

    def eof_received(self) -> bool:
        self.ended = True
        self._wake()
        return False  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.ended = True
        self.error = exc
        self.writing_paused = False
        self._wake()

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        self._wake()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def wait(self, timeout: float | None, expired: type[Exception]) -> None:
        """Until the next event on the connection; ``expired`` after ``timeout``."""
        loop = asyncio.get_running_loop()
        waiter = self.waiter = loop.create_future()
        timer = None if timeout is None else loop.call_later(
            timeout, _expire, waiter, expired)
        try:
            await waiter
        finally:
            self.waiter = None
            if timer is not None:
                timer.cancel()


def _expire(waiter: asyncio.Future[None], expired: type[Exception]) -> None:
    if not waiter.done():
        waiter.set_exception(expired())


class _SocketStream(httpcore.AsyncNetworkStream):
    """One connection on the event loop's transport, with httpcore's exceptions."""

    def __init__(self, transport: asyncio.Transport, connection: _Connection) -> None:
        self._transport = transport
        self._connection = connection

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        connection = self._connection
        while not connection.received and not connection.ended:
            await connection.wait(timeout, httpcore.ReadTimeout)
        if connection.received:
            data = bytes(connection.received[:max_bytes])
            del connection.received[:max_bytes]
            if connection.reading_paused and len(connection.received) <= _READ_BUFFER_LIMIT:
                connection.reading_paused = False
                self._transport.resume_reading()
            return data
        if connection.error is not None:
            raise httpcore.ReadError(repr(connection.error))
        return b""  # ended: httpcore tells a server disconnect from this

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        connection = self._connection
        if connection.ended or self._transport.is_closing():
            raise httpcore.WriteError(repr(connection.error or "connection closed"))
        self._transport.write(buffer)
        while connection.writing_paused and not connection.ended:
            await connection.wait(timeout, httpcore.WriteTimeout)
        if connection.error is not None:
            raise httpcore.WriteError(repr(connection.error))

    async def aclose(self) -> None:
        self._transport.close()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            transport = await loop.start_tls(
                self._transport, self._connection, ssl_context,
                server_hostname=server_hostname, ssl_handshake_timeout=timeout)
        except TimeoutError as exc:
            self._transport.close()
            raise httpcore.ConnectTimeout(repr(exc)) from exc
        except (OSError, ssl.SSLError) as exc:
            self._transport.close()
            raise httpcore.ConnectError(repr(exc)) from exc
        self._connection.transport = cast(asyncio.Transport, transport)
        return _SocketStream(self._connection.transport, self._connection)

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":  # an idle connection the far end closed, or broke
            return bool(self._connection.received) or self._connection.ended
        names = {"ssl_object": "ssl_object", "client_addr": "sockname",
                 "server_addr": "peername", "socket": "socket"}
        return self._transport.get_extra_info(names[info]) if info in names else None


async def _connected(
    connect: Callable[[], Any], timeout: float | None,
    socket_options: Iterable[httpcore.SOCKET_OPTION] | None,
) -> httpcore.AsyncNetworkStream:
    try:
        async with asyncio.timeout(timeout):
            transport, connection = await connect()
    except TimeoutError as exc:
        raise httpcore.ConnectTimeout(repr(exc)) from exc
    except OSError as exc:
        raise httpcore.ConnectError(repr(exc)) from exc
    sock = transport.get_extra_info("socket")
    for option in socket_options or ():
        sock.setsockopt(*option)
    return _DeadlineStream(_SocketStream(transport, connection))


class _DeadlineBackend(httpcore.AsyncNetworkBackend):
    """Connections on the event loop's transports, wrapped in ``_DeadlineStream``."""

    async def connect_tcp(
        self, host: str, port: int, timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        local = None if local_address is None else (local_address, 0)
        options = [*(socket_options or ()), (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
        return await _connected(
            lambda: loop.create_connection(_Connection, host, port, local_addr=local),
            timeout, options)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        return await _connected(lambda: loop.create_unix_connection(_Connection, path),
                                timeout, socket_options)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


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
