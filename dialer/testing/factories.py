"""Rows and numbers for tests and benchmarks: campaigns with contacts written straight
into the database (the CLI has its own tests), numbers whose fate in the simulator's
deterministic scenario is known in advance, and counts read back."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import asyncpg

from dialer import repository
from dialer.campaigns import CampaignSpec
from dialer.compliance import locate
from dialer.phone import InvalidNumber, normalize_with_location
from dialer.policy import RetryPolicy
from dialer.windows import WeeklyHours

SIM_SID = "AC" + "a1" * 16
"""The account the tests' simulators serve first and their daemons dial for."""
SIM_TOKEN = "sim-auth-token"


def account_sid(index: int) -> str:
    """The index-th of distinct account SIDs, for tests with several accounts."""
    return f"AC{index + 1:032x}"


def account_token(sid: str) -> str:
    return f"token-of-{sid}"

FROM_NUMBER = "+15005550006"
TWIML_URL = "https://example.com/twiml"

QUICK = dt.timedelta(milliseconds=300)
QUICK_RETRY = RetryPolicy(max_attempts=3, busy_delay=QUICK, no_answer_delay=QUICK,
                          failed_delay=QUICK, machine_delay=QUICK, backoff=1.0, jitter=0.0)
"""Retries a test does not wait for."""
MIX = {0: (1, "done"), 4: (2, "done"), 6: (3, "failed"), 8: (1, "failed")}
"""Last digit -> (calls placed, final contact state) under QUICK_RETRY, from the scenario
table in dialer.sim.scenario: human; busy then human; busy always; SIP 404 always."""


def human_number(index: int) -> str:
    """The index-th of distinct US numbers (up to 800,000) that the deterministic
    scenario answers as a human on the first call (last digit 0-2)."""
    return f"+1415{2_000_000 + index * 10 + index % 3:07d}"


def humans(count: int, start: int = 0) -> list[str]:
    """Numbers answered by a human on the first call, so each needs exactly one call."""
    return [human_number(start + i) for i in range(count)]


def mixed(per_digit: int) -> list[str]:
    """``per_digit`` numbers of each fate in MIX."""
    return [f"+1415{4000000 + i * 10 + digit:07d}" for digit in MIX for i in range(per_digit)]


def located(phone: str, timezone: str | None) -> tuple[Any, ...]:
    """(zones, zone source, states, state sources) as an import stores them: the zone
    of a timezone column, else every zone of the number, and the number's US state.
    A number the library cannot place (a simulator test number) gets the column's zone
    alone, or nothing: the claim works it out as for a contact from before migration
    0005."""
    try:
        _, zones, state = normalize_with_location(phone, "ZZ")
    except InvalidNumber:
        return ([timezone], "csv", None, None) if timezone else (None, None, None, None)
    where = locate(csv_zone=timezone, number_zones=zones, csv_state=None, number_state=state)
    return list(where.zones), where.zone_source, list(where.states), list(where.state_sources)


async def make_campaign(
    pool: asyncpg.Pool, name: str = "spring", phones: Sequence[str] = (), *,
    state: str = "running", account_sid: str = SIM_SID, cps: float = 10,
    timezone: str | None = None, locate_contacts: bool = True, **spec: Any,
) -> int:
    """A campaign with contacts, straight into the database, callable at any time
    unless ``spec`` says otherwise; its account is created (at ``cps``) unless it
    exists. The contacts are located as an import would (``timezone`` as if from a
    CSV column); with ``locate_contacts`` false they have no location, as contacts
    from before migration 0005."""
    values: dict[str, Any] = {
        "name": name, "from_number": FROM_NUMBER,
        "twiml": "<Response><Say>hi</Say></Response>", "calendar": WeeklyHours.ALWAYS,
    }
    values.update(spec)
    row = CampaignSpec(**values).to_row()
    if await repository.account_by_key(pool, account_sid) is None:
        await repository.upsert_account(pool, account_sid, cps, None)
    campaign_id = await repository.insert_campaign(pool, row, account_sid)
    assert campaign_id is not None, f"a campaign named {name} exists already"
    await pool.executemany(
        "INSERT INTO contacts (campaign_id, phone, zones, zone_source, states, state_sources)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        [(campaign_id, phone, *(located(phone, timezone) if locate_contacts
                                else (None, None, None, None)))
         for phone in phones],
    )
    await pool.execute("UPDATE campaigns SET state = $2 WHERE id = $1", campaign_id, state)
    return campaign_id


async def campaign_state(pool: asyncpg.Pool, campaign_id: int) -> str:
    state: str = await pool.fetchval("SELECT state FROM campaigns WHERE id = $1", campaign_id)
    return state


async def campaign_in_state(pool: asyncpg.Pool, campaign_id: int, state: str) -> bool:
    return await campaign_state(pool, campaign_id) == state


async def campaign_completed(pool: asyncpg.Pool, campaign_id: int) -> bool:
    return await campaign_in_state(pool, campaign_id, "completed")


async def workers_at_least(pool: asyncpg.Pool, count: int) -> bool:
    """Whether ``count`` daemons (or more) have registered their worker row."""
    return int(await pool.fetchval("SELECT count(*) FROM workers")) >= count


async def contact_states(pool: asyncpg.Pool, campaign_id: int) -> dict[str, int]:
    rows = await pool.fetch(
        "SELECT state, count(*) FROM contacts WHERE campaign_id = $1 GROUP BY state", campaign_id
    )
    return {r[0]: r[1] for r in rows}

