"""The figures of a campaign's HTML report, read through the named report queries.

The summary row is the text report's (the campaign_summary view); the breakdowns are
the queries the views of migration 0006 read (outcomes by local hour, zone and country,
the retry funnel); the timelines are bucketed so that a campaign of a minute and one of
a month both give a readable number of bars. Plain values only (no drawing here), so
the page can embed them as data and a test can compare them with the tables.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

import asyncpg

from dialer import repository

# Bucket widths a reader recognises, in seconds (1 s ... 1 week).
NICE_BUCKETS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800,
                21600, 43200, 86400, 604800)
# About this many bars at most across a timeline: enough to see a trend, few enough to
# read each one.
MAX_BARS = 60


def bucket_seconds(first: dt.datetime | None, last: dt.datetime | None,
                   bars: int = MAX_BARS) -> int:
    """The narrowest nice bucket that spreads [first, last] over at most ``bars`` bars."""
    if first is None or last is None:
        return NICE_BUCKETS[0]
    span = (last - first).total_seconds()
    for width in NICE_BUCKETS:
        if span / width < bars:
            return width
    return NICE_BUCKETS[-1]


def plain(value: Any) -> Any:
    """A database value as JSON has it: numbers as numbers, times in ISO-8601."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


def _rows(records: Iterable[asyncpg.Record]) -> list[dict[str, Any]]:
    return [{key: plain(value) for key, value in record.items()} for record in records]


@dataclass(frozen=True)
class Figures:
    """Everything the page shows, each list one query's rows (column -> value)."""

    name: str
    generated_at: str
    summary: dict[str, Any]
    bucket_seconds: int
    attempts_over_time: list[dict[str, Any]]
    sends_over_time: list[dict[str, Any]]
    account_cps: float | None
    queue_time: list[dict[str, Any]]
    by_local_hour: list[dict[str, Any]]
    by_zone: list[dict[str, Any]]
    by_country: list[dict[str, Any]]
    retry_funnel: list[dict[str, Any]]
    outcomes: list[dict[str, Any]]
    rule_packs: list[dict[str, Any]]
    waiting: list[dict[str, Any]]

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


async def load(db: repository.Executor, summary: Mapping[str, Any],
               now: dt.datetime) -> Figures:
    """The figures of the campaign whose summary row (campaign_summary) is given."""
    campaign_id = int(summary["campaign_id"])
    first, last, _ = await repository.attempt_span(db, campaign_id)
    width = bucket_seconds(first, last)
    sends: list[dict[str, Any]] = []
    if first is not None and last is not None:
        sends = _rows(await repository.sends_over_time(
            db, campaign_id, width, first, last + dt.timedelta(seconds=1)))
    cps = sends[0].pop("account_cps") if sends else None
    for row in sends[1:]:
        row.pop("account_cps")
    return Figures(
        name=str(summary["name"]),
        generated_at=now.isoformat(),
        summary={key: plain(value) for key, value in summary.items()},
        bucket_seconds=width,
        attempts_over_time=_rows(await repository.attempts_over_time(db, campaign_id, width)),
        sends_over_time=sends,
        account_cps=cps,
        queue_time=_rows(await repository.queue_time_over_time(db, campaign_id, width)),
        by_local_hour=_rows(await repository.outcomes_by_local_hour(db, campaign_id)),
        by_zone=_rows(await repository.outcomes_by_zone(db, campaign_id)),
        by_country=_rows(await repository.outcomes_by_country(db, campaign_id)),
        retry_funnel=_rows(await repository.retry_funnel(db, campaign_id)),
        outcomes=_rows(await repository.campaign_outcomes(db, campaign_id)),
        rule_packs=_rows(await repository.calls_by_rule_pack(db, campaign_id)),
        waiting=_rows(await repository.contacts_waiting(db, campaign_id, now)),
    )
