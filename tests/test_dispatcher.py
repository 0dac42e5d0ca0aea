"""The dispatcher against the simulator and real Postgres: pacing, sharing, claims,
windows, and every way Twilio can refuse or leave us unsure."""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import math
import time

import asyncpg
import pytest
from prometheus_client import REGISTRY

from dialer.pacer import Slot
from dialer.sim.server import SimServer
from dialer.sim.trace import creates
from dialer.testing import (
    called_numbers,
    campaign_completed,
    campaign_in_state,
    contact_states,
    daemon_settings,
    humans,
    make_campaign,
    max_in_window,
    running_daemon,
    sim_config,
    simulator_process,
    wait_until,
)
from dialer.windows import parse_weekly


async def test_200_contacts_at_20_cps(dsn: str, pool: asyncpg.Pool) -> None:
    """Counted in exact one-second windows: the simulator runs in a process of its own
    (as Twilio would), so its arrival stamps are not delayed by this test's loop."""
    phones = humans(200)
    campaign_id = await make_campaign(pool, "cps20", phones, cps=20)
    async with simulator_process() as sim:
        settings = daemon_settings(sim.base_url, cps=20)
        async with running_daemon(settings, dsn):
            await wait_until(lambda: campaign_completed(pool, campaign_id), timeout=40,
                             what="campaign completion")
        created = await asyncio.to_thread(sim.create_records)
    assert collections.Counter(r["params"]["To"][0] for r in created) == \
        collections.Counter(phones)
    times = [r["t"] for r in created]
    assert max_in_window(times) <= 20
    # Never above the CPS, nor far below it: slots a busy machine wakes late for are
    # skipped, which costs rate, never bursts. How close to 20 it gets is a timing
    # figure (bench/pacing.py: within 1 % on a quiet machine; 13/s once in a full run
    # with a load average of 5 on 2 cores).
    rate = (len(times) - 1) / (times[-1] - times[0])
    assert 10 < rate <= 20
    assert await contact_states(pool, campaign_id) == {"done": 200}


async def test_weights_share_the_account_cps(dsn: str, pool: asyncpg.Pool) -> None:
    await make_campaign(pool, "light", humans(150), cps=40, weight=1)
    await make_campaign(pool, "heavy", humans(150, start=1000), cps=40, weight=3)
    async with SimServer(sim_config()) as sim:
        settings = daemon_settings(sim.base_url, cps=40)
        async with running_daemon(settings, dsn):
            await wait_until(lambda: _count_creates(sim, 120), timeout=20, what="120 creates")
    first = creates(sim.trace)[:120]
    light_phones = set(humans(150))
    light_calls = sum(1 for r in first if r.params["To"][0] in light_phones)
    assert light_calls / (len(first) - light_calls) == pytest.approx(1 / 3, rel=0.2)


async def _count_creates(sim: SimServer, n: int) -> bool:
    return len(creates(sim.trace)) >= n


async def test_contacts_outside_the_window_wait_for_its_opening(
    dsn: str, pool: asyncpg.Pool
) -> None:
    # 06:00 in New York: before the 09:00 opening. The clock is injected.
    now = [dt.datetime(2026, 3, 4, 11, 0, tzinfo=dt.UTC)]
    ny, tokyo = humans(5), humans(5, start=100)
    campaign_id = await make_campaign(
        pool, "windows", [], cps=20, calendar=parse_weekly("all 09:00-20:00"))
    await pool.executemany(
        "INSERT INTO contacts (campaign_id, phone, zones, zone_source, states, state_sources)"
        " VALUES ($1, $2, $3, 'csv', '{}', '{}')",
        [(campaign_id, p, ["America/New_York"]) for p in ny]
        + [(campaign_id, p, ["Asia/Tokyo"]) for p in tokyo],  # 20:00 there: closed too
    )
    async with SimServer(sim_config()) as sim:
        settings = daemon_settings(sim.base_url, cps=20)
        async with running_daemon(settings, dsn, clock=lambda: now[0]):
            await asyncio.sleep(1.5)
            assert not creates(sim.trace)
            deferred = await pool.fetch(
                "SELECT zones[1] AS zone, next_attempt_at FROM contacts WHERE campaign_id = $1",
                campaign_id)
            openings = {r["zone"]: r["next_attempt_at"] for r in deferred}
            assert openings["America/New_York"] == dt.datetime(2026, 3, 4, 14, 0, tzinfo=dt.UTC)
            assert openings["Asia/Tokyo"] == dt.datetime(2026, 3, 5, 0, 0, tzinfo=dt.UTC)
            now[0] = dt.datetime(2026, 3, 4, 14, 0, 1, tzinfo=dt.UTC)  # New York opens
            await wait_until(lambda: _count_creates(sim, 5), timeout=10, what="NY calls")
            await asyncio.sleep(0.5)
            assert set(called_numbers(sim)) == set(ny)
            now[0] = dt.datetime(2026, 3, 5, 0, 0, 1, tzinfo=dt.UTC)  # Tokyo opens
            await wait_until(lambda: campaign_completed(pool, campaign_id), timeout=10,
                             what="completion")
    assert set(called_numbers(sim)) == set(ny) | set(tokyo)
    assert max(called_numbers(sim).values()) == 1


async def test_strict_mode_429s_are_absorbed(dsn: str, pool: asyncpg.Pool) -> None:
    phones = humans(60)
    campaign_id = await make_campaign(pool, "strict", phones, cps=30)
    # The simulator's account allows 15 CPS while we were told 30: 429s follow.
    async with SimServer(sim_config(cps=15, strict=True)) as sim:
        settings = daemon_settings(sim.base_url, cps=30)
        async with running_daemon(settings, dsn):
            await wait_until(lambda: campaign_completed(pool, campaign_id), timeout=40,
                             what="completion")
    refused = [r for r in creates(sim.trace, accepted_only=False) if r.status == 429]
    assert refused, "the test needs the simulator to have refused some requests"
    assert called_numbers(sim) == collections.Counter(phones)
    attempts = await pool.fetchval(
        "SELECT max(attempt_no) FROM call_attempts WHERE campaign_id = $1", campaign_id)
    assert attempts == 1


async def test_a_send_that_misses_its_slot_goes_on_a_later_one_and_is_not_timed(
    dsn: str, pool: asyncpg.Pool
) -> None:
    """The first three slots come past their deadline (what a busy loop does to a
    send): nothing goes out for them, each attempt goes on a later slot, every number is
    called once, and the Twilio latency and slot wait histograms count the requests
    Twilio got, not the ones held back (they counted them, and the metrics test failed
    under load)."""
    phones = humans(5)
    async with simulator_process() as sim:
        settings = daemon_settings(sim.base_url, cps=20)
        async with running_daemon(settings, dsn) as daemon:
            runtime = next(iter(daemon.accounts or []))
            given, late = runtime.pacer.next_slot, 3

            async def next_slot() -> Slot:
                nonlocal late
                slot = await given()
                if late:
                    late -= 1
                    return Slot(slot.at - 1.0, slot.at - 0.5)
                return slot

            runtime.pacer.next_slot = next_slot  # type: ignore[method-assign]
            timed = _requests_timed(sim.account_sid)
            campaign_id = await make_campaign(pool, "late", phones, cps=20)
            await wait_until(lambda: campaign_completed(pool, campaign_id), timeout=30,
                             what="campaign completion")
            timed = _requests_timed(sim.account_sid) - timed
        created = await asyncio.to_thread(sim.create_records)
    assert late == 0 and runtime.pacer.skipped_slots >= 3
    assert collections.Counter(r["params"]["To"][0] for r in created) == \
        collections.Counter(phones)
    assert timed == len(created) == len(phones)


def _requests_timed(account_sid: str) -> float:
    """The requests the Twilio latency histogram and the slot wait histogram timed (the
    same requests, so counted once here only when both agree)."""
    label = {"account": account_sid}
    timed = REGISTRY.get_sample_value("dialer_twilio_request_seconds_count", label) or 0.0
    waited = REGISTRY.get_sample_value("dialer_bucket_wait_seconds_count", label) or 0.0
    return timed if timed == waited else math.nan


async def test_ambiguous_creates_are_adopted_not_resent(dsn: str, pool: asyncpg.Pool) -> None:
    phones = humans(30)
    campaign_id = await make_campaign(pool, "ambiguous", phones, cps=20)
    async with SimServer(sim_config(drop_callbacks=False)) as sim:
        sim.faults.reset_after_create = 6
        settings = daemon_settings(sim.base_url, cps=20)
        async with running_daemon(settings, dsn):
            await wait_until(lambda: campaign_completed(pool, campaign_id), timeout=30,
                             what="completion")
    assert called_numbers(sim) == collections.Counter(phones)
    recorded = dict(await pool.fetch(
        """SELECT k.phone, a.call_sid FROM call_attempts a JOIN contacts k ON k.id = a.contact_id
           WHERE a.campaign_id = $1 AND a.state <> 'void'""", campaign_id))
    placed = {r.params["To"][0]: r.call_sid for r in creates(sim.trace)}
    assert recorded == placed


async def test_ambiguous_without_callbacks_is_reconciled_by_listing(
    dsn: str, pool: asyncpg.Pool
) -> None:
    """No callback can adopt the call: reconciliation lists calls and adopts the match,
    and a reset before the call was created is voided and called again."""
    phones = humans(10)
    campaign_id = await make_campaign(pool, "listing", phones, cps=20)
    async with SimServer(sim_config(drop_callbacks=True)) as sim:
        sim.faults.reset_after_create = 3
        settings = daemon_settings(sim.base_url, cps=20, stale_call_seconds=1.0)
        async with running_daemon(settings, dsn):
            await wait_until(lambda: campaign_completed(pool, campaign_id), timeout=30,
                             what="completion")
    assert called_numbers(sim) == collections.Counter(phones)
    states = await pool.fetch(
        "SELECT state, count(*) FROM call_attempts WHERE campaign_id = $1 GROUP BY state",
        campaign_id)
    assert dict(states) == {"final": 10}


async def test_reset_before_create_is_retried_once_reconciled(
    dsn: str, pool: asyncpg.Pool
) -> None:
    phones = humans(10)
    campaign_id = await make_campaign(pool, "resets", phones, cps=20)
    async with SimServer(sim_config()) as sim:
        sim.faults.reset_before_create = 3
        sim.faults.server_errors = 2
        settings = daemon_settings(sim.base_url, cps=20)
        async with running_daemon(settings, dsn):
            await wait_until(lambda: campaign_completed(pool, campaign_id), timeout=30,
                             what="completion")
    assert called_numbers(sim) == collections.Counter(phones)
    void = await pool.fetchval(
        "SELECT count(*) FROM call_attempts WHERE campaign_id = $1 AND state = 'void'",
        campaign_id)
    assert void == 5


async def test_permanent_and_auth_errors(dsn: str, pool: asyncpg.Pool) -> None:
    # Twilio's magic test number for "invalid To" (21211), which the simulator honours.
    campaign_id = await make_campaign(pool, "perm", ["+15005550001", *humans(2)], cps=20)
    async with SimServer(sim_config()) as sim:
        settings = daemon_settings(sim.base_url, cps=20)
        async with running_daemon(settings, dsn):
            await wait_until(lambda: campaign_completed(pool, campaign_id), timeout=20,
                             what="completion")
    failed = await pool.fetchrow(
        "SELECT state, reason FROM contacts WHERE campaign_id = $1 AND phone = '+15005550001'",
        campaign_id)
    assert failed is not None
    assert failed["state"] == "failed"
    assert "21211" in failed["reason"]

    # Credentials refused at start stop the start (tests/test_check_cli.py); a token
    # rotated while the daemon runs pauses the campaign instead of burning the list.
    wrong = await make_campaign(pool, "auth", humans(3), cps=20, state="draft")
    async with SimServer(sim_config()) as sim:
        settings = daemon_settings(sim.base_url, cps=20)
        async with running_daemon(settings, dsn):
            sim.config.auth_token = "rotated"
            await pool.execute("UPDATE campaigns SET state = 'running' WHERE id = $1", wrong)
            await wait_until(lambda: campaign_in_state(pool, wrong, "paused"), timeout=10,
                             what="pause")
    assert await contact_states(pool, wrong) == {"pending": 3}


async def test_pause_and_resume_take_effect_within_a_second(
    dsn: str, pool: asyncpg.Pool
) -> None:
    campaign_id = await make_campaign(pool, "pausable", humans(100), cps=20)
    async with SimServer(sim_config()) as sim:
        # Polling slower than the goal: the NOTIFY is what makes it quick.
        settings = daemon_settings(sim.base_url, cps=20, poll_seconds=5.0)
        async with running_daemon(settings, dsn):
            await wait_until(lambda: _count_creates(sim, 10), timeout=10, what="10 creates")
            await _set_state(pool, campaign_id, "paused")
            paused_at = time.monotonic()
            await asyncio.sleep(1.0)
            count = len(creates(sim.trace))
            await asyncio.sleep(1.5)
            assert len(creates(sim.trace)) == count, "calls went on after the pause"
            assert max(r.t for r in creates(sim.trace)) - paused_at < 1.0
            states = await contact_states(pool, campaign_id)
            assert "dialing" not in states
            assert states.get("pending", 0) == 100 - count
            await _set_state(pool, campaign_id, "running")
            await wait_until(lambda: _count_creates(sim, count + 5), timeout=2,
                             what="calls after resume")


async def _set_state(pool: asyncpg.Pool, campaign_id: int, state: str) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("UPDATE campaigns SET state = $2 WHERE id = $1", campaign_id, state)
        await conn.execute("SELECT pg_notify('dialer_campaigns', $1)", str(campaign_id))
