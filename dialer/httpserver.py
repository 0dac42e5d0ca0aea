"""Serve an ASGI app with uvicorn inside the caller's event loop.

uvicorn's ``Server.serve`` installs its own SIGINT/SIGTERM handlers; the daemon owns
signals (they start its staged shutdown), so this server leaves them alone.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Generator
from typing import Any

import uvicorn


class _QuietServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class EmbeddedServer:
    """``await start()`` returns once the socket listens; ``port`` is the bound port."""

    def __init__(self, app: Any, *, host: str, port: int) -> None:
        config = uvicorn.Config(
            app, host=host, port=port, lifespan="off", log_level="warning",
            access_log=False, server_header=False, date_header=False,
        )
        self._server = _QuietServer(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve(), name="http-server")
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

    async def stop(self) -> None:
        if self._task is None:
            return
        self._server.should_exit = True
        await self._task
