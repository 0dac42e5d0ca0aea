"""Serve an ASGI app with uvicorn inside the caller's event loop, with bounds that
slow or numerous clients cannot get round.

uvicorn's ``Server.serve`` installs its own SIGINT/SIGTERM handlers; the daemon owns
signals (they start its staged shutdown), so this server leaves them alone.

uvicorn closes a connection that stays idle after a response (``timeout_keep_alive``),
but has no deadline for reading a request: a client that sends a few bytes now and
then holds a connection, and a task waiting for the body, for ever. Here every request
must arrive whole (headers and body) within ``read_timeout`` of the connection being
opened or of its first byte, or the connection is closed. ``max_connections`` is
uvicorn's ``limit_concurrency``: past that many connections or requests at once, a
request is answered 503 at once (Twilio retries it) instead of queueing without end.

uvicorn's own log records go to the standard library's logging, which dialer.logs
routes through structlog; uvicorn is told not to install handlers of its own.

The daemon's supervisor owns the serving task (``start(spawn)``), so a server that
dies stops the daemon; ``last_tick`` is when uvicorn's main loop last went round
(every 0.1 s), which is what the watchdog reads as the endpoint making progress.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine, Generator
from typing import Any

import structlog
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = structlog.get_logger(__name__)


class _DeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline for reading each request."""

    read_timeout = 10.0
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()  # no-op on a new connection: its first request had the clock running

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(self.read_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            log.warning("http_request_too_slow", client=self.client, seconds=self.read_timeout)
            self.transport.close()


def _protocol(read_timeout: float) -> type[HttpToolsProtocol]:
    return type("DeadlineProtocol", (_DeadlineProtocol,), {"read_timeout": read_timeout})


Spawn = Callable[[str, Coroutine[Any, Any, Any]], "asyncio.Task[Any]"]


def _own_task(name: str, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
    """A task of the server's own, for a server nothing supervises (tests, tools)."""
    return asyncio.create_task(coro, name=name)


class _QuietServer(uvicorn.Server):
    last_tick = 0.0

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    async def on_tick(self, counter: int) -> bool:
        self.last_tick = time.monotonic()
        return await super().on_tick(counter)


class EmbeddedServer:
    """``await start()`` returns once the socket listens; ``port`` is the bound port."""

    TASK_NAME = "callback-server"

    def __init__(
        self, app: Any, *, host: str, port: int, read_timeout: float = 10.0,
        max_connections: int = 500,
    ) -> None:
        config = uvicorn.Config(
            app, host=host, port=port, lifespan="off", log_level="warning", log_config=None,
            access_log=False, server_header=False, date_header=False, ws="none",
            http=_protocol(read_timeout), limit_concurrency=max_connections,
        )
        self._server = _QuietServer(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self, spawn: Spawn = _own_task) -> None:
        """Serve in a task made by ``spawn`` (the daemon's supervisor)."""
        self._task = spawn(self.TASK_NAME, self._server.serve())
        while not self._server.started:
            if self._task.done():
                await self._task  # raises the start-up error (port in use, ...)
                raise RuntimeError("HTTP server stopped during start-up")
            await asyncio.sleep(0.005)

    @property
    def port(self) -> int:
        sockets = self._server.servers[0].sockets
        return int(sockets[0].getsockname()[1])

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def last_tick(self) -> float:
        """``time.monotonic()`` when the server's main loop last went round."""
        return self._server.last_tick

    async def stop(self) -> None:
        """Stop serving; idempotent. A server whose task died (its supervisor then stops
        the daemon) did not close its socket and connections itself: closed here."""
        task, self._task = self._task, None
        if task is None:
            return
        self._server.should_exit = True
        if not task.done():
            await task
            return
        self._server.force_exit = True
        with contextlib.suppress(Exception):
            await self._server.shutdown()
