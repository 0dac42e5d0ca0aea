"""Acceptance: one number in three campaigns sharing a cap of 1 call per 24 hours, two
real `dialer run` processes claiming it at the same instant: exactly one call, 20
times over in one run."""

from __future__ import annotations

import collections
import datetime as dt
import itertools

import asyncpg

from dialer.caps import parse_caps
from dialer.sim.server import SimServer
from dialer.sim.trace import creates
from dialer.testing import (
    daemon_env,
    daemons,
    make_campaign,
    sim_config,
    wait_until,
    workers_at_least,
)

ROUNDS = 20
CAMPAIGNS = 3
_numbers = itertools.count(300_000)


async def _decided(pool: asyncpg.Pool, phone: str) -> bool:
    """Every contact of the number was called (and its call has ended) or waits for a
    later instant: no claim of it is left to make."""
    rows = await pool.fetch(
        "SELECT state, next_attempt_at > now() + interval '1 hour' AS waiting "
        "FROM contacts WHERE phone = $1", phone)
    return len(rows) == CAMPAIGNS and all(
        r["state"] == "done" or (r["state"] == "pending" and r["waiting"]) for r in rows)


async def test_one_number_three_campaigns_two_daemons_one_call(
        dsn: str, pool: asyncpg.Pool) -> None:
    async with SimServer(sim_config(time_scale=0.001)) as sim:
        env = daemon_env(dsn, sim.base_url, cps=50)
        async with daemons(2, env) as procs:
            await wait_until(lambda: workers_at_least(pool, 2), timeout=30, what="two workers")
            phones = []
            for round_no in range(ROUNDS):
                # The simulator's human (last digit 0), in California.
                phone = f"+1415{next(_numbers) * 10:07d}"
                phones.append(phone)
                ids = [await make_campaign(pool, f"r{round_no}-{i}", [phone], cps=50,
                                           state="paused", caps=parse_caps("1/24h"))
                       for i in range(CAMPAIGNS)]
                # All three start in one statement: each daemon is woken for each of them
                # at once (NOTIFY) and claims the three concurrently.
                await pool.execute(
                    "UPDATE campaigns SET state = 'running' WHERE id = ANY($1::bigint[])", ids)
                await wait_until(lambda phone=phone: _decided(pool, phone), timeout=30,
                                 what=f"round {round_no} decided")
                called = [r for r in creates(sim.trace) if r.params["To"] == [phone]]
                assert len(called) == 1, f"round {round_no}: {len(called)} calls to {phone}"
            assert all(p.poll() is None for p in procs)
    per_number = collections.Counter(r.params["To"][0] for r in creates(sim.trace))
    assert per_number == collections.Counter(phones)
    waiting = await pool.fetch(
        "SELECT k.next_attempt_at, a.requested_at FROM contacts k "
        "JOIN contacts c ON c.phone = k.phone AND c.state = 'done' "
        "JOIN call_attempts a ON a.contact_id = c.id WHERE k.state = 'pending'")
    assert len(waiting) == ROUNDS * (CAMPAIGNS - 1)
    # Each waits until the call it was capped by leaves the 24 hours.
    assert all(abs(r["next_attempt_at"] - r["requested_at"] - dt.timedelta(days=1))
               < dt.timedelta(seconds=2) for r in waiting)
    workers = await pool.fetchval("SELECT count(DISTINCT worker_id) FROM call_attempts")
    assert workers == 2, "both daemons should have placed calls"
