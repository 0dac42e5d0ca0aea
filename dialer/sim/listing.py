"""Twilio-style lists: GET .../Calls.json (filters and paging) and the paging that
every list of the simulator shares (a call's Events.json too).

Calls are listed newest first, like Twilio. Date filters compare UTC dates:
``StartTime=D`` started on D, ``StartTime<=D`` (the parameter ``StartTime<``)
started before D, ``StartTime>=D`` (``StartTime>``) started on or after D; the same
for EndTime. A call still queued (or canceled in the queue) has no start_time yet;
Twilio lists such calls too, and here they are matched by the date they were
created, so that a client reconciling an unanswered create finds its call even
before it leaves the queue. A call that has not ended matches no EndTime filter.

Paging: ``PageSize`` (default 50, 1 to 1000, anything else refused) and ``Page``;
``next_page_uri`` carries a ``PageToken`` (``PA`` + the key of the last item of the
page) so that following it stays correct while new items arrive;
``previous_page_uri`` carries ``PB`` + the key of the first item of the page.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlencode

from dialer.sim.calls import SimCall
from dialer.sim.params import ListParams, Paging

Item = TypeVar("Item")


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


def _window(keys: Sequence[str], paging: Paging) -> int:
    """Index of the first item on the requested page."""
    token = paging.page_token
    if token and token[:2] in ("PA", "PB"):
        for index, key in enumerate(keys):
            if key == token[2:]:
                return index + 1 if token[:2] == "PA" else max(0, index - paging.page_size)
    return paging.page * paging.page_size


def page_of(
    items: Sequence[Item], *, paging: Paging, path: str, name: str,
    key: Callable[[Item], str], resource: Callable[[Item], dict[str, Any]],
    filters: Sequence[tuple[str, str]] = (),
) -> dict[str, Any]:
    """One page of ``items`` under ``name``, with Twilio's paging fields; ``key`` gives
    an item's stable identity for page tokens, ``filters`` go into the page URIs."""
    keys = [key(item) for item in items]
    first = _window(keys, paging)
    page = keys[first : first + paging.page_size]
    size, number = paging.page_size, paging.page

    def uri(page_number: int, token: str | None = None) -> str:
        pairs = [*filters, ("PageSize", str(size)), ("Page", str(page_number))]
        if token is not None:
            pairs.append(("PageToken", token))
        return f"{path}?{urlencode(pairs)}"

    has_next = first + len(page) < len(items)
    return {
        name: [resource(item) for item in items[first : first + size]],
        "end": number * size + max(len(page), 1) - 1,
        "first_page_uri": uri(0),
        "next_page_uri": uri(number + 1, "PA" + page[-1]) if page and has_next else None,
        "page": number,
        "page_size": size,
        "previous_page_uri": uri(number - 1, "PB" + page[0]) if page and number > 0 else None,
        "start": number * size,
        "uri": uri(number, paging.page_token),
    }


def list_page(newest_first: Sequence[SimCall], query: ListParams, path: str) -> dict[str, Any]:
    """The list response for ``query`` (``path`` is the list URL path, for page URIs)."""
    return page_of(
        [call for call in newest_first if matches(call, query)], paging=query.paging,
        path=path, name="calls", key=lambda call: call.sid, resource=SimCall.resource,
        filters=query.filters,
    )
