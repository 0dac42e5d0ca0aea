"""structlog set-up, called once by the CLI (library modules only get a logger).

Every line carries timestamp, level, event and whatever context was bound
(campaign, contact, call_sid). Phone numbers are masked unless allowed.

Libraries that log through the standard library (uvicorn, asyncpg) are routed
through the same processors and renderer, so a JSON log stays one JSON object per
line: their message is the event, the logger's name a field, and a traceback the
``exception`` field rather than lines of its own.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, Literal

import structlog

from dialer.phone import mask

_PHONE_KEYS = frozenset({"to", "from_", "from", "phone", "number"})


def _mask_phones(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key in _PHONE_KEYS & event.keys():
        value = event[key]
        if isinstance(value, str):
            event[key] = mask(value)
    return event


class _Stderr:
    """Whatever ``sys.stderr`` is at the time of writing (test runners swap it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


class _StdlibHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The root logger's handler that renders other libraries' records (one only)."""


def _route_stdlib(chain: list[Any], renderer: Any, level: int) -> None:
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name, *chain],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = _StdlibHandler(_Stderr())
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StdlibHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)


def configure(
    *, log_format: Literal["console", "json"] | None, level: str = "info", show_phones: bool = False
) -> None:
    """Console lines on a terminal, JSON lines otherwise (journald, files, CI)."""
    if log_format is None:
        log_format = "console" if sys.stderr.isatty() else "json"
    chain: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
    ]
    if not show_phones:
        chain.append(_mask_phones)
    renderer: Any
    if log_format == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    numeric_level = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[*chain, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=structlog.PrintLoggerFactory(file=_Stderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )
    _route_stdlib(chain, renderer, numeric_level)
