"""``SimServer``: the simulator served by uvicorn inside the caller's event loop.

    async with SimServer(SimConfig(cps=10, time_scale=0.001)) as sim:
        ...  # point a client at sim.base_url with sim.account_sid / sim.auth_token

Leaving the block stops listening, answers held responses at once, cancels the
calls still under way (no further callbacks) and closes the callback client.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
import struct
import time
from collections.abc import Generator
from types import TracebackType

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from dialer.sim.accounts import SimAccount
from dialer.sim.app import ARRIVED, SimApi
from dialer.sim.callbacks import CallbackSender
from dialer.sim.calls import CallEngine, SimCall
from dialer.sim.config import SimConfig
from dialer.sim.errors import malformed_request
from dialer.sim.faults import Faults
from dialer.sim.stamps import StampedSocket, stamp_arrivals
from dialer.sim.trace import TraceRecord, to_json

_RESET_ON_CLOSE = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends a RST


class _StampingProtocol(HttpToolsProtocol):
    """Stamps each request with the time its first bytes arrived: the kernel's stamp
    (``dialer.sim.stamps``), else the time they were read. The handler runs later,
    after whatever else the loop has ready (callbacks going out, other requests): under
    load that is milliseconds, and pacing is measured from the stamp."""

    _read_at = 0.0
    _stamped: StampedSocket | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._stamped = stamp_arrivals(transport)
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        stamp = self._stamped.stamp if self._stamped is not None else None
        self._read_at = time.monotonic() if stamp is None else stamp
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope[ARRIVED] = self._read_at  # type: ignore[literal-required]

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request it cannot parse, as Twilio's error JSON."""
        error = malformed_request(msg)
        body = json.dumps(error.body()).encode()
        self.transport.write(b"".join((
            b"HTTP/1.1 400 Bad Request\r\n",
            b"content-type: application/json\r\n",
            b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
            b"connection: close\r\n\r\n",
            body,
        )))
        self.transport.close()


class _Server(uvicorn.Server):
    """uvicorn, leaving signals to the embedding program, and starting and stopping on
    events rather than by polling (its main loop looks at ``should_exit`` every 0.1 s,
    which adds up over a test suite that starts a simulator per test)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()
        self._stop = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.ready.set()

    async def main_loop(self) -> None:
        await self.on_tick(0)
        await self._stop.wait()

    def stop(self) -> None:
        self.should_exit = True
        self._stop.set()


class SimServer:
    """A running simulator; see the module docstring. Not reusable once exited."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        created = time.time()
        self._accounts = {
            account.account_sid: SimAccount(
                account, created=created,
                faults=Faults(rng=random.Random(self.config.seed + position)))
            for position, account in enumerate(self.config.accounts)
        }
        self.faults = self._accounts[self.config.account_sid].faults
        """The first account's faults (``faults_of`` gives any account's)."""
        self.trace: list[TraceRecord] = []
        """Every API request received, in arrival order."""
        self._closing = asyncio.Event()
        self._sender = CallbackSender(self.config)
        self._engine = CallEngine(self.config, self._sender)
        api = SimApi(config=self.config, engine=self._engine, accounts=self._accounts,
                     trace=self.trace, abort_connection=self._abort_connection,
                     closing=self._closing)
        self._server = _Server(uvicorn.Config(
            # log_config=None: uvicorn's records go through the logging set up by the
            # program (structlog's JSON under `dialer sim`), not its own handlers.
            api.app(), http=_StampingProtocol, lifespan="off", log_level="warning",
            log_config=None, access_log=False, ws="none",
            server_header=False, date_header=False,
        ))
        self._socket: socket.socket | None = None
        self._port: int | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def calls(self) -> dict[str, SimCall]:
        """Every call created, by SID, in creation order."""
        return self._engine.calls

    def faults_of(self, account_sid: str) -> Faults:
        """The faults injected into the creates of one account."""
        return self._accounts[account_sid].faults

    @property
    def account_sid(self) -> str:
        return self.config.account_sid

    @property
    def auth_token(self) -> str:
        return self.config.auth_token

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the simulator has not started")
        return self._port

    @property
    def base_url(self) -> str:
        host = self.config.host
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    def trace_json(self) -> str:
        return to_json(self.trace)

    async def __aenter__(self) -> SimServer:
        # Bound here rather than by uvicorn, so that a busy port raises OSError to the
        # caller instead of uvicorn's sys.exit(). The protocol must be given as TCP:
        # asyncio only sets TCP_NODELAY on such sockets, and without it every answer
        # (headers and body are two writes) waits ~40 ms for a delayed ACK.
        family, kind, proto, _, address = socket.getaddrinfo(
            self.config.host, self.config.port, type=socket.SOCK_STREAM,
            proto=socket.IPPROTO_TCP, flags=socket.AI_PASSIVE,
        )[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
        except OSError:
            sock.close()
            await self._sender.aclose()
            raise
        self._socket = sock
        self._port = int(sock.getsockname()[1])
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="dialer-sim")
        ready = asyncio.create_task(self._server.ready.wait())
        await asyncio.wait([self._task, ready], return_when=asyncio.FIRST_COMPLETED)
        if not ready.done():
            ready.cancel()
            sock.close()
            await self._task  # raises what stopped start-up
            raise RuntimeError("the simulator stopped during start-up")
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self._closing.set()
        if self._task is not None:
            self._server.stop()
            await self._task
        await self._engine.aclose()
        await self._sender.aclose()
        if self._socket is not None:
            self._socket.close()

    def _abort_connection(self, client: tuple[str, int] | None) -> None:
        for connection in self._server.server_state.connections:
            transport: asyncio.Transport | None = getattr(connection, "transport", None)
            if transport is not None and getattr(connection, "client", None) == client:
                sock = transport.get_extra_info("socket")
                if sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET_ON_CLOSE)
                transport.abort()
                return
