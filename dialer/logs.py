"""structlog set-up, called once by the CLI (library modules only get a logger).

Every line carries timestamp, level, event and whatever context was bound
(campaign, contact, call_sid). Phone numbers are masked unless allowed, and values
that look like secrets are never rendered.
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


def configure(
    *, log_format: Literal["console", "json"] | None, level: str = "info", show_phones: bool = False
) -> None:
    """Console lines on a terminal, JSON lines otherwise (journald, files, CI)."""
    if log_format is None:
        log_format = "console" if sys.stderr.isatty() else "json"
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
    ]
    if not show_phones:
        processors.append(_mask_phones)
    if log_format == "json":
        processors.append(structlog.processors.JSONRenderer())
    else:
        processors.append(structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()))
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=_Stderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )
