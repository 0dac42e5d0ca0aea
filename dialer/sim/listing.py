"""GET .../Calls.json: filters and Twilio-style paging over the simulator's calls.

Calls are listed newest first, like Twilio. Date filters compare UTC dates:
``StartTime=D`` started on D, ``StartTime<=D`` (the parameter ``StartTime<``)
started before D, ``StartTime>=D`` (``StartTime>``) started on or after D; the same
for EndTime. A call still queued (or canceled in the queue) has no start_time yet;
Twilio lists such calls too, and here they are matched by the date they were
created, so that a client reconciling an unanswered create finds its call even
before it leaves the queue. A call that has not ended matches no EndTime filter.

Paging: ``PageSize`` (default 50, at most 1000) and ``Page``; ``next_page_uri``
carries a ``PageToken`` (``PA`` + the last SID of the page) so that following it
stays correct while new calls are created; ``previous_page_uri`` carries ``PB`` +
the first SID of the page.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

from dialer.sim.calls import SimCall
from dialer.sim.params import ListParams


def _day(epoch: float | None) -> dt.date | None:
    return None if epoch is None else dt.datetime.fromtimestamp(epoch, dt.UTC).date()


def matches(call: SimCall, query: ListParams) -> bool:
    if query.parent_call_sid is not None:
        return False  # the simulator only makes parent calls
    return (
        (query.to is None or call.to == query.to)
        and (query.from_ is None or call.from_ == query.from_)
        and (query.status is None or call.status == query.status)
        and query.start.matches(_day(call.start_time or call.date_created))
        and query.end.matches(_day(call.end_time))
    )


def _window(calls: Sequence[SimCall], query: ListParams) -> int:
    """Index of the first call on the requested page."""
    token = query.page_token
    if token and token[:2] in ("PA", "PB"):
        for index, call in enumerate(calls):
            if call.sid == token[2:]:
                return index + 1 if token[:2] == "PA" else max(0, index - query.page_size)
    return query.page * query.page_size


def list_page(newest_first: Sequence[SimCall], query: ListParams, path: str) -> dict[str, Any]:
    """The list response for ``query`` (``path`` is the list URL path, for page URIs)."""
    calls = [call for call in newest_first if matches(call, query)]
    first = _window(calls, query)
    page = calls[first : first + query.page_size]
    size = query.page_size

    def uri(page_number: int, token: str | None = None) -> str:
        pairs = [*query.filters, ("PageSize", str(size)), ("Page", str(page_number))]
        if token is not None:
            pairs.append(("PageToken", token))
        return f"{path}?{urlencode(pairs)}"

    has_next = first + len(page) < len(calls)
    return {
        "calls": [call.resource() for call in page],
        "end": query.page * size + max(len(page), 1) - 1,
        "first_page_uri": uri(0),
        "next_page_uri": uri(query.page + 1, "PA" + page[-1].sid) if page and has_next else None,
        "page": query.page,
        "page_size": size,
        "previous_page_uri": (
            uri(query.page - 1, "PB" + page[0].sid) if page and query.page > 0 else None
        ),
        "start": query.page * size,
        "uri": uri(query.page, query.page_token),
    }
