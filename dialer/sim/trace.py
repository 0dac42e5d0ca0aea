"""The record of every API request the simulator received, so tests can check a client.

Times are ``time.monotonic()`` at arrival, the clock a client's pacer uses, so the
achieved rate and the gaps between creates can be measured from the trace alone.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass


@dataclass(frozen=True, slots=True)
class TraceRecord:
    t: float
    """``time.monotonic()`` when the request arrived."""
    method: str
    path: str
    params: dict[str, list[str]]
    """Form body for POST, query string for GET."""
    status: int | None
    """The HTTP status answered; None when the connection was dropped instead."""
    call_sid: str | None
    """The call this request created (also when its answer was dropped), else None."""

    @property
    def is_create(self) -> bool:
        return self.method == "POST" and self.path.endswith("/Calls.json")

    @property
    def account_sid(self) -> str | None:
        """The account in the path (``/2010-04-01/Accounts/{Sid}/...``), if any."""
        return account_in_path(self.path)


def account_in_path(path: str) -> str | None:
    parts = path.split("/")
    return parts[3].removesuffix(".json") if len(parts) > 3 and parts[2] == "Accounts" else None


def creates(records: Iterable[TraceRecord], *, accepted_only: bool = True,
            account_sid: str | None = None) -> list[TraceRecord]:
    """Create requests in arrival order; by default only those that made a call, of
    every account (or of ``account_sid``'s)."""
    return [
        record for record in records
        if record.is_create and (record.call_sid is not None or not accepted_only)
        and (account_sid is None or record.account_sid == account_sid)
    ]


def to_json(records: Iterable[TraceRecord]) -> str:
    return json.dumps([asdict(record) for record in records])
