"""How the long-running processes (daemon, simulator) run: their event loop and heap."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed (it comes with uvicorn[standard]): the daemon spends its
    time in network I/O, where uvloop is about twice as fast as the default loop."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def settle_heap() -> None:
    """Take what is alive once a process is up (modules, pools, settings: it all lives
    as long as the process) out of the cyclic collector's full passes. Those passes
    scan every tracked object and stop the event loop for tens of milliseconds, which
    is enough to lose send slots; garbage from start-up is collected first."""
    gc.collect()
    gc.freeze()
