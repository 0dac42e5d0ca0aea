"""kill -9 at any point and restart: no contact dialed twice for one attempt, no
outcome lost (DESIGN.md, "Crash").

A campaign of humans (each answers the first call) is dialed by real `dialer run`
processes, each killed with SIGKILL a random moment after it became ready and
replaced by a new one on the same callback port. A last process runs the campaign
to completion. Then the simulator's record of every call it placed is held against
the database. The kill times come from ``CHAOS_SEED`` (printed; set it to replay).
"""

from __future__ import annotations

import collections
import os
import random
import time
from pathlib import Path

import asyncpg
import pytest

from dialer.sim.server import SimServer
from dialer.sim.trace import creates
from dialer.testing import (
    campaign_completed,
    daemon_env,
    free_port,
    humans,
    make_campaign,
    sim_config,
    wait_until,
)
from tests.chaos.killer import DaemonRunner, Kill, kill_at_random

CPS = 100


def chaos_seed() -> int:
    seed = int(os.environ.get("CHAOS_SEED") or random.SystemRandom().randrange(2**32))
    print(f"CHAOS_SEED={seed}")
    return seed


def recovery_env(dsn: str, api_base: str, port: int) -> dict[str, str]:
    """Short recovery times, and one callback URL for every process of the run."""
    return daemon_env(
        dsn, api_base, cps=CPS,
        DIALER_CALLBACK_BIND=f"127.0.0.1:{port}",
        DIALER_PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        DIALER_HEARTBEAT_SECONDS="0.3",
        DIALER_DEAD_WORKER_SECONDS="1.5",
        DIALER_RECONCILE_AFTER_SECONDS="0.5",
        DIALER_STALE_CALL_SECONDS="2",
        DIALER_DRAIN_SECONDS="2",
    )


async def run_with_kills(
    dsn: str, pool: asyncpg.Pool, log_path: Path, *, contacts: int, kills: int,
    finish_timeout: float,
) -> None:
    seed = chaos_seed()
    rng = random.Random(seed)
    phones = humans(contacts)
    campaign_id = await make_campaign(pool, "chaos", phones, cps=CPS)
    port = free_port()
    done: list[Kill] = []
    async with SimServer(sim_config(time_scale=0.002)) as sim:
        env = recovery_env(dsn, sim.base_url, port)
        with DaemonRunner(env, port, log_path) as runner:
            started = time.monotonic()
            for _ in range(kills):
                done.append(await kill_at_random(runner, pool, sim, rng))
            killing = time.monotonic() - started
            called = len(creates(sim.trace))
            await runner.start(pool)
            await wait_until(
                lambda: campaign_completed(pool, campaign_id), timeout=finish_timeout,
                what=f"completion after the kills (CHAOS_SEED={seed}, logs {log_path})")
            print(f"{kills} kills in {killing:.1f}s ({called} calls placed), "
                  f"completed {time.monotonic() - started - killing:.1f}s later")
            assert await runner.stop() == 0
    await check_invariants(pool, sim, campaign_id, phones, seed)
    await check_kills_hit_both_sides_of_the_post(pool, done, seed)


async def check_invariants(
    pool: asyncpg.Pool, sim: SimServer, campaign_id: int, phones: list[str], seed: int
) -> None:
    replay = f"replay with CHAOS_SEED={seed}"
    attempts = await pool.fetch(
        """SELECT a.id, a.contact_id, a.attempt_no, a.state, a.call_sid, a.call_status,
                  k.phone
           FROM call_attempts a JOIN contacts k ON k.id = a.contact_id
           WHERE a.campaign_id = $1""", campaign_id)
    placed = {r.call_sid: r.params["To"][0] for r in creates(sim.trace)}
    recorded = {a["call_sid"]: a for a in attempts if a["call_sid"] is not None}

    # Every call the simulator placed is recorded, once, with its final outcome.
    assert placed.keys() - recorded.keys() == set(), f"calls placed but not recorded; {replay}"
    assert recorded.keys() - placed.keys() == set(), f"recorded calls never placed; {replay}"
    wrong = [
        (sid, a["state"], a["call_status"], sim.calls[sid].status)
        for sid, a in recorded.items()
        if (a["state"], a["call_status"], a["phone"]) != ("final", sim.calls[sid].status,
                                                          placed[sid])
    ]
    assert not wrong, f"attempts disagree with the simulator: {wrong[:5]}; {replay}"

    # No contact has two calls for one attempt number; calls == non-void attempts.
    per_attempt = collections.Counter(
        (a["contact_id"], a["attempt_no"]) for a in recorded.values())
    assert max(per_attempt.values()) == 1, replay
    calls_per_phone = collections.Counter(placed.values())
    non_void = collections.Counter(a["phone"] for a in attempts if a["state"] != "void")
    assert calls_per_phone == non_void, replay
    # Humans answer the first call: each number was dialed exactly once.
    assert calls_per_phone == collections.Counter(phones), replay

    # No contact is stuck, no attempt is left open, and the counters agree.
    states = await pool.fetch(
        "SELECT state, count(*) AS n FROM contacts WHERE campaign_id = $1 GROUP BY 1",
        campaign_id)
    assert {r["state"]: r["n"] for r in states} == {"done": len(phones)}, replay
    open_attempts = [a["id"] for a in attempts if a["state"] in ("requested", "unknown", "live")]
    assert not open_attempts, replay
    mismatched = await pool.fetchval(
        """SELECT count(*) FROM contacts k
           WHERE k.campaign_id = $1 AND k.attempts <> (
               SELECT count(*) FROM call_attempts a WHERE a.contact_id = k.id
                                                      AND a.state <> 'void')""", campaign_id)
    assert mismatched == 0, replay


async def check_kills_hit_both_sides_of_the_post(
    pool: asyncpg.Pool, kills: list[Kill], seed: int
) -> None:
    """The run proves something only if some kills left attempts whose call existed
    (adopted afterwards) and some left attempts never sent (voided afterwards)."""
    orphaned = [attempt for kill in kills for attempt in kill.orphaned]
    ends: collections.Counter[str] = collections.Counter({
        r["state"]: r["n"] for r in await pool.fetch(
            """SELECT state, count(*) AS n FROM call_attempts WHERE id = ANY($1::bigint[])
               GROUP BY 1""", orphaned)})
    print(f"kills: {collections.Counter(k.phase for k in kills)}; "
          f"attempts they left unanswered ended as {dict(ends)}")
    assert ends["final"] > 0, f"no kill caught a request in flight; CHAOS_SEED={seed}"
    assert ends["void"] > 0, f"no kill caught an unsent claim; CHAOS_SEED={seed}"


async def test_kill9_during_a_campaign_loses_and_repeats_nothing(
    dsn: str, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    await run_with_kills(dsn, pool, tmp_path / "daemons.log", contacts=2000, kills=20,
                         finish_timeout=60)


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_kill9_fifty_times(dsn: str, pool: asyncpg.Pool, tmp_path: Path) -> None:
    await run_with_kills(dsn, pool, tmp_path / "daemons.log", contacts=4000, kills=50,
                         finish_timeout=120)
