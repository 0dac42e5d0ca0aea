"""Arrival stamps taken by the kernel, not by the event loop.

Pacing is judged by when each create reached the simulator, as Twilio's edge would
count it. Stamping when the event loop gets round to reading the socket adds the loop's
own delays (other requests, callbacks going out, a collection) to the arrival, and on a
loaded two-core machine those bunched the stamps by several milliseconds: a window the
sender kept within its CPS measured one over. With ``SO_TIMESTAMPNS`` the kernel stamps
each segment as it is received, and ``recvmsg`` hands the stamp over with the bytes,
however late they are read (socket(7): SO_TIMESTAMP, tcp(7)).

The stdlib event loop's transports read with ``sock.recv``; the accepted socket is
wrapped so that ``recv`` is a ``recvmsg`` that keeps the stamp. uvloop's transports read
inside libuv, which drops ancillary data, so under uvloop (or on a system without the
option) ``stamp`` is None and the protocol falls back to the time it read the bytes.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import sys
import time
from typing import Any

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux's value; Python omits it
_TIMESPEC = struct.Struct("@qq")
_ANCILLARY = socket.CMSG_SPACE(_TIMESPEC.size)


class StampedSocket:
    """A connected socket whose ``recv`` keeps the kernel's stamp of what it read, on
    the ``time.monotonic()`` clock (the stamp is CLOCK_REALTIME; the offset between the
    two clocks is read at each recv, so a clock step moves no stamp by more than it)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.stamp: float | None = None

    def recv(self, size: int, flags: int = 0) -> bytes:
        data, ancillary, _, _ = self._sock.recvmsg(size, _ANCILLARY, flags)
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                seconds, nanoseconds = _TIMESPEC.unpack_from(payload)
                self.stamp = seconds + nanoseconds / 1e9 - (time.time() - time.monotonic())
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def stamp_arrivals(transport: asyncio.BaseTransport) -> StampedSocket | None:
    """Have the kernel stamp what ``transport`` receives; None where it cannot be had."""
    sock = getattr(transport, "_sock", None)  # the stdlib selector transport's socket
    if not sys.platform.startswith("linux") or not isinstance(sock, socket.socket):
        return None
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    except OSError:
        return None
    stamped = StampedSocket(sock)
    transport._sock = stamped  # type: ignore[attr-defined]
    return stamped
