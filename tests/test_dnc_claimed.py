"""A number put on a do-not-call list after its contact was claimed, before the request
went out, is not called: every daemon is told by NOTIFY, sent by the table's trigger
however the entry was written (dnc add, or a program inserting the row)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from dialer import repository
from dialer.sim.server import SimServer
from dialer.sim.trace import creates
from dialer.testing import (
    SIM_SID,
    account_sid,
    account_token,
    daemon_settings,
    make_campaign,
    running_daemon,
    sim_config,
    wait_until,
    write_credentials,
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


async def test_numbers_listed_while_two_accounts_dial_are_called_by_neither(
        dsn: str, pool: asyncpg.Pool, tmp_path: Path) -> None:
    """Each account's dispatcher keeps a barrier of its own: a global entry reaches both
    runtimes that claimed the number, and an opt-out (the campaign-scoped row a key
    press writes) the runtime whose campaign it names."""
    accounts = [account_sid(0), account_sid(1)]
    tokens = write_credentials(tmp_path / "accounts", {sid: account_token(sid) for sid in accounts})
    shared = "+14155557000"
    ids = {}
    for i, sid in enumerate(accounts):
        assert await repository.insert_account(pool, sid, label=None, cps=10,
                                               max_concurrent_calls=None, max_in_flight=None)
        ids[sid] = await make_campaign(pool, f"client-{i}", [shared, f"+1415555710{i}"],
                                       account_sid=sid, state="paused")
    async with SimServer(sim_config(more_accounts=accounts)) as sim:
        settings = daemon_settings(sim.base_url, cps=1, account_sid=None, auth_token=None,
                                   credentials_file=tokens)
        async with running_daemon(settings, dsn):
            await pool.execute("UPDATE accounts SET next_slot = now() + make_interval(secs => $1)",
                               SLOT_AHEAD_SECONDS)
            await pool.execute("UPDATE campaigns SET state = 'running'")
            await wait_until(lambda: _all(pool, "dialing"), timeout=10, what="the claims")
            await repository.dnc_add(pool, shared, None, "asked by email", source="cli")
            for i, sid in enumerate(accounts):
                await repository.dnc_add(pool, f"+1415555710{i}", ids[sid], "pressed 9",
                                         source="opt-out", origin_campaign_id=ids[sid])
            await wait_until(lambda: _all(pool, "skipped"), timeout=SLOT_AHEAD_SECONDS + 10,
                             what="every claim handed back")
            await asyncio.sleep(SLOT_AHEAD_SECONDS)  # past the slots they had
        assert creates(sim.trace) == []
    assert await pool.fetchval("SELECT count(*) FROM call_attempts") == 0


async def _all(pool: asyncpg.Pool, state: str) -> bool:
    states = await pool.fetch("SELECT DISTINCT state FROM contacts")
    return [r[0] for r in states] == [state]
