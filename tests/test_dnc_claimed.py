"""A number put on a do-not-call list after its contact was claimed, before the request
went out, is not called: every daemon is told by NOTIFY, sent by the table's trigger
however the entry was written (dnc add, or a program inserting the row)."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from dialer import repository
from dialer.sim.server import SimServer
from dialer.sim.trace import creates
from dialer.testing import (
    SIM_SID,
    daemon_settings,
    make_campaign,
    running_daemon,
    sim_config,
    wait_until,
)

PHONE = "+14155557000"
SLOT_AHEAD_SECONDS = 3.0


async def state_of(pool: asyncpg.Pool, campaign_id: int) -> str:
    state: str = await pool.fetchval("SELECT state FROM contacts WHERE campaign_id = $1",
                                     campaign_id)
    return state


@pytest.mark.parametrize("how", ["dnc add", "a plain INSERT"])
async def test_a_claimed_number_listed_before_its_send_is_not_called(
        dsn: str, pool: asyncpg.Pool, how: str) -> None:
    campaign_id = await make_campaign(pool, "claimed", [PHONE], cps=1, state="paused")
    async with SimServer(sim_config()) as sim:
        async with running_daemon(daemon_settings(sim.base_url, cps=1), dsn):
            # The account's next send slot is a few seconds away (from now: the daemon's
            # start may take seconds on a busy machine): the contact is claimed now and
            # waits for it in the daemon's memory.
            await pool.execute(
                "UPDATE accounts SET next_slot = now() + make_interval(secs => $2) "
                "WHERE sid = $1", SIM_SID, SLOT_AHEAD_SECONDS)
            await pool.execute("UPDATE campaigns SET state = 'running' WHERE id = $1",
                               campaign_id)
            await wait_until(lambda: _is(pool, campaign_id, "dialing"), timeout=10,
                             what="the claim")
            if how.startswith("dnc add"):
                await repository.dnc_add(pool, PHONE, None, "asked by email", source="cli")
            else:
                await pool.execute("INSERT INTO dnc_numbers (phone) VALUES ($1)", PHONE)
            await wait_until(lambda: _is(pool, campaign_id, "skipped"),
                             timeout=SLOT_AHEAD_SECONDS + 10, what="the claim handed back")
            await asyncio.sleep(SLOT_AHEAD_SECONDS)  # past the slot it had
        assert creates(sim.trace) == []
    row = await pool.fetchrow("SELECT state, reason, attempts FROM contacts")
    assert tuple(row) == ("skipped", "dnc", 0)
    assert await pool.fetchval("SELECT count(*) FROM call_attempts") == 0


async def _is(pool: asyncpg.Pool, campaign_id: int, state: str) -> bool:
    return await state_of(pool, campaign_id) == state
