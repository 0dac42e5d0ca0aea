"""One daemon, many accounts; many daemons, shared accounts: each account's CPS holds
on its own, and one account's 429s or refused token never slow or pause another.

Counted in exact one-second windows by a simulator in a process of its own (as Twilio
would be), answering as every account of one credentials file, the same file the
daemons read their tokens from."""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import time
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from dialer import repository, service
from dialer.sim.server import SimServer
from dialer.sim.trace import creates
from dialer.testing import (
    Simulator,
    account_sid,
    account_token,
    campaign_completed,
    campaign_in_state,
    change_account,
    clean_env,
    daemon_settings,
    daemons,
    humans,
    make_campaign,
    max_in_window,
    running_daemon,
    sim_config,
    simulator_process,
    wait_until,
    write_credentials,
)

SLOW, MIDDLE, FAST = account_sid(0), account_sid(1), account_sid(2)
CPS = {SLOW: 5.0, MIDDLE: 10.0, FAST: 20.0}
STORM = 12
"""Creates of the fast account answered 429/20429 in a row."""
SHARED_SECONDS = 6
"""How long the two daemons dial their shared accounts."""


def create_posts(trace: list[dict[str, Any]], sid: str) -> list[dict[str, Any]]:
    """Every create request of one account, whatever its answer (a 429 is a request
    too, and CPS counts requests)."""
    path = f"/2010-04-01/Accounts/{sid}/Calls.json"
    return [r for r in trace if r["method"] == "POST" and r["path"] == path]


def rate(times: list[float]) -> float:
    return (len(times) - 1) / (times[-1] - times[0])


async def add_accounts(pool: asyncpg.Pool, cps: dict[str, float]) -> None:
    for sid, rate_ in cps.items():
        assert await repository.insert_account(pool, sid, label=None, cps=rate_,
                                               max_concurrent_calls=None, max_in_flight=None)


async def created_by_each(pool: asyncpg.Pool, ids: dict[str, int], n: int) -> bool:
    rows = await pool.fetch(
        "SELECT campaign_id, count(*) FROM call_attempts WHERE call_sid IS NOT NULL"
        " GROUP BY 1")
    made = {r[0]: r[1] for r in rows}
    return all(made.get(campaign_id, 0) >= n for campaign_id in ids.values())


async def test_three_accounts_hold_their_own_cps_through_a_storm_and_a_bad_token(
    dsn: str, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    tokens = write_credentials(tmp_path / "accounts", {sid: account_token(sid) for sid in CPS})
    await add_accounts(pool, CPS)
    ids = {sid: await make_campaign(pool, f"client-{i}", humans(400, start=1000 * i),
                                    account_sid=sid, state="paused")
           for i, sid in enumerate(CPS)}
    async with simulator_process(accounts_file=tokens) as sim:
        settings = daemon_settings(sim.base_url, cps=1, account_sid=None, auth_token=None,
                                   credentials_file=tokens)
        async with running_daemon(settings, dsn) as daemon:
            pacers = {rt.sid: rt.pacer for rt in daemon.accounts or []}
            assert sorted(pacers) == sorted(CPS)
            await pool.execute("UPDATE campaigns SET state = 'running'")
            await wait_until(lambda: created_by_each(pool, ids, 5), timeout=20,
                             what="every account dialing")
            await asyncio.sleep(1.5)
            storm_at = time.monotonic()  # the trace's clock (CLOCK_MONOTONIC)
            skipped = {sid: pacer.skipped_slots for sid, pacer in pacers.items()}
            await asyncio.to_thread(change_account, sim, FAST, rate_limited=STORM)
            await wait_until(lambda: _answered(sim, FAST, 429, STORM), timeout=20,
                             what="the storm of 20429s")
            await asyncio.sleep(1)
            refused_at = time.monotonic()
            await asyncio.to_thread(change_account, sim, FAST, auth_token="rotated-elsewhere")
            await wait_until(lambda: campaign_in_state(pool, ids[FAST], "paused"), timeout=10,
                             what="the refused account's campaign paused")
            await asyncio.sleep(1.5)
            ended_at = time.monotonic()
            lost = {sid: pacer.skipped_slots - skipped[sid] for sid, pacer in pacers.items()}
            rates = {sid: pacer.current_rate for sid, pacer in pacers.items()}
            trace = await asyncio.to_thread(sim.trace)
            states = dict(await pool.fetch("SELECT id, state FROM campaigns"))
    for sid, cps in CPS.items():
        posts = create_posts(trace, sid)
        assert max_in_window([r["t"] for r in posts]) <= cps, sid
    fast = create_posts(trace, FAST)
    assert sum(r["status"] == 429 for r in fast) == STORM
    assert any(r["status"] == 401 for r in fast)
    for sid in (SLOW, MIDDLE):
        made = [r["t"] for r in create_posts(trace, sid) if r["call_sid"] is not None]
        assert all(r["status"] == 201 for r in create_posts(trace, sid)), sid
        during = [t for t in made if storm_at <= t <= ended_at]
        # Full rate through the storm and the refusals on the other account: never
        # backed off, and its schedule ran at its CPS. The slots a loaded machine woke
        # too late for are counted by its pacer (skipped, never sent late); on a quiet
        # machine there are none, and the sends alone make the rate.
        assert rates[sid] == CPS[sid], sid
        slots = len(during) + lost[sid]
        assert slots / (ended_at - storm_at) == pytest.approx(CPS[sid], rel=0.05), sid
        assert states[ids[sid]] == "running", sid
    assert states[ids[FAST]] == "paused" and rates[FAST] < CPS[FAST]
    reason = await pool.fetchval("SELECT pause_reason FROM campaigns WHERE id = $1", ids[FAST])
    assert FAST in reason and "20003" in reason
    assert refused_at > storm_at


async def test_two_daemons_share_two_accounts(
    dsn: str, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    cps = {SLOW: 5.0, MIDDLE: 10.0}
    tokens = write_credentials(tmp_path / "accounts", {sid: account_token(sid) for sid in cps})
    await add_accounts(pool, cps)
    ids = {sid: await make_campaign(pool, f"client-{i}",
                                    humans(int(SHARED_SECONDS * rate_), start=1000 * i),
                                    account_sid=sid, state="paused")
           for i, (sid, rate_) in enumerate(cps.items())}
    async with simulator_process(accounts_file=tokens) as sim:
        env = clean_env({
            "DIALER_DATABASE_URL": dsn, "DIALER_CREDENTIALS_FILE": str(tokens),
            "DIALER_TWILIO_API_BASE": sim.base_url, "DIALER_LOG_FORMAT": "json",
            "DIALER_LOG_LEVEL": "warning", "DIALER_POLL_SECONDS": "0.2",
            "DIALER_HEARTBEAT_SECONDS": "0.5",
        })
        async with daemons(2, env) as procs:
            await wait_until(lambda: _workers(pool, 2), timeout=30, what="two workers")
            await pool.execute("UPDATE campaigns SET state = 'running'")
            for campaign_id in ids.values():
                await wait_until(lambda c=campaign_id: campaign_completed(pool, c),
                                 timeout=60, what="completion")
            assert all(p.poll() is None for p in procs)
        assert [p.returncode for p in procs] == [0, 0]
        trace = await asyncio.to_thread(sim.trace)
    for sid, rate_ in cps.items():
        posts = create_posts(trace, sid)
        assert len(posts) == int(SHARED_SECONDS * rate_), sid
        assert all(r["status"] == 201 for r in posts), sid
        assert max_in_window([r["t"] for r in posts]) <= rate_, sid
    workers = await pool.fetch(
        "SELECT campaign_id, count(DISTINCT worker_id) FROM call_attempts GROUP BY 1")
    assert {r[0]: r[1] for r in workers} == {campaign_id: 2 for campaign_id in ids.values()}


async def _answered(sim: Simulator, sid: str, status: int, n: int) -> bool:
    trace = await asyncio.to_thread(sim.trace)
    return sum(r["status"] == status for r in create_posts(trace, sid)) >= n


async def _workers(pool: asyncpg.Pool, n: int) -> bool:
    return int(await pool.fetchval("SELECT count(*) FROM workers")) >= n


async def test_a_token_rotated_in_the_file_applies_on_sighup_without_a_restart(
    dsn: str, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    """Twilio's rotation: a secondary token is made, the dialer is given it, then it is
    promoted and the old one stops working. No request and no callback is refused."""
    sid, new = MIDDLE, "the-new-token"
    tokens = write_credentials(tmp_path / "accounts", {sid: account_token(sid)})
    await add_accounts(pool, {sid: 50})
    campaign_id = await make_campaign(pool, "rotating", humans(150), account_sid=sid)
    async with SimServer(sim_config(more_accounts=[sid])) as sim:
        account = sim.config.account(sid)
        assert account is not None
        settings = daemon_settings(sim.base_url, cps=1, account_sid=None, auth_token=None,
                                   credentials_file=tokens)
        daemon = service.Daemon(settings, dsn=dsn)
        running = asyncio.create_task(service.serve(daemon))
        await wait_until(lambda: _created(sim, sid, 20), timeout=30, what="20 calls")
        account.secondary_auth_token = new
        await asyncio.to_thread(write_credentials, tokens, {sid: new})
        os.kill(os.getpid(), signal.SIGHUP)
        await wait_until(lambda: _uses(daemon, sid, new), timeout=15, what="the new token")
        account.auth_token, account.secondary_auth_token = new, None  # promoted
        await wait_until(lambda: campaign_completed(pool, campaign_id), timeout=60,
                         what="completion")
        daemon.stop.set()
        assert await asyncio.wait_for(running, 30) == 0
        statuses = collections.Counter(r.status for r in creates(sim.trace, accepted_only=False))
    assert statuses == {201: 150}
    assert dict(await pool.fetch("SELECT state, count(*) FROM contacts GROUP BY 1")) == {
        "done": 150}


async def _created(sim: SimServer, sid: str, n: int) -> bool:
    return len(creates(sim.trace, account_sid=sid)) >= n


async def _uses(daemon: service.Daemon, sid: str, token: str) -> bool:
    accounts = daemon.accounts
    return accounts is not None and accounts.keys[sid].auth_token == token


async def test_accounts_added_edited_and_removed_apply_to_a_running_daemon(
    dsn: str, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    tokens = write_credentials(tmp_path / "accounts", {SLOW: account_token(SLOW)})
    await add_accounts(pool, {SLOW: 20})
    await make_campaign(pool, "first", humans(20), account_sid=SLOW)
    async with SimServer(sim_config(more_accounts=[SLOW, MIDDLE])) as sim:
        settings = daemon_settings(sim.base_url, cps=1, account_sid=None, auth_token=None,
                                   credentials_file=tokens)
        daemon = service.Daemon(settings, dsn=dsn)
        running = asyncio.create_task(service.serve(daemon))
        await wait_until(lambda: _created(sim, SLOW, 20), timeout=30, what="the first account")
        fleet = daemon.accounts
        assert fleet is not None
        # A new account's row (NOTIFY) is not dialed until its token comes (SIGHUP).
        await add_accounts(pool, {MIDDLE: 20})
        second = await make_campaign(pool, "second", humans(20, start=500), account_sid=MIDDLE)
        await asyncio.sleep(1)
        assert sorted(fleet.runtimes) == [SLOW]
        await asyncio.to_thread(write_credentials, tokens,
                                {sid: account_token(sid) for sid in (SLOW, MIDDLE)})
        os.kill(os.getpid(), signal.SIGHUP)
        await wait_until(lambda: campaign_completed(pool, second), timeout=30,
                         what="the added account's campaign")
        # A changed CPS applies in place; a removed account's runtime stops.
        assert await repository.update_account(pool, SLOW, label="slow", cps=7.5,
                                               max_concurrent_calls=None, max_in_flight=None)
        await wait_until(lambda: _retuned(daemon, SLOW, 7.5), timeout=15, what="new CPS")
        await pool.execute("DELETE FROM call_attempts")
        await pool.execute("DELETE FROM contacts")
        await pool.execute("DELETE FROM campaigns WHERE account_sid = $1", MIDDLE)
        assert await repository.delete_account(pool, MIDDLE)
        await wait_until(lambda: _gone(daemon, MIDDLE), timeout=15, what="runtime stopped")
        assert running.done() is False, "a retired runtime is no failure"
        daemon.stop.set()
        assert await asyncio.wait_for(running, 30) == 0


async def _retuned(daemon: service.Daemon, sid: str, cps: float) -> bool:
    accounts = daemon.accounts
    if accounts is None:
        return False
    runtime = accounts.runtimes[sid]
    return runtime.account.cps == cps and runtime.pacer.current_rate == cps


async def _gone(daemon: service.Daemon, sid: str) -> bool:
    accounts = daemon.accounts
    return accounts is not None and sid not in accounts.runtimes and sid not in accounts.keys
