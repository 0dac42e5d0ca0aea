"""Faults on Twilio's side of the wire, against the in-process daemon and the simulator.

tests/test_dispatcher.py covers strict-mode 429s, a few 500s and connection resets
before and after a create. Here: a storm of 429s, a burst of 503s, answers slower
than the client's timeout, and callbacks that come twice, out of order, late, or
never. Whatever happens, each number is called once per attempt and every call the
simulator placed ends recorded with the status the simulator gave it.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import pytest
from prometheus_client import REGISTRY
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dialer import callback_urls
from dialer.httpserver import EmbeddedServer
from dialer.sim.server import SimServer
from dialer.sim.trace import TraceRecord, creates
from dialer.testing import (
    MIX,
    QUICK_RETRY,
    SIM_SID,
    assert_recorded_as_placed,
    called_numbers,
    campaign_completed,
    daemon_settings,
    free_port,
    humans,
    make_campaign,
    mixed,
    running_daemon,
    sim_config,
    wait_until,
)

CPS = 50
# When reconciliation learns the status by fetching the call, the SIP code is unknown
# (the Call resource has none), and a failed call of unknown cause is retried.
FETCHED_MIX = {**MIX, 8: (3, "failed")}


async def run_to_completion(
    dsn: str, pool: asyncpg.Pool, campaign_id: int, sim: SimServer, *, cps: float = CPS,
    timeout: float = 30, **settings: Any,
) -> None:
    values: dict[str, Any] = {"reconcile_after_seconds": 0.3}
    values.update(settings)
    async with running_daemon(daemon_settings(sim.base_url, cps=cps, **values), dsn):
        await wait_until(lambda: campaign_completed(pool, campaign_id), timeout=timeout,
                         what="campaign completion")


async def assert_mix_outcomes(
    pool: asyncpg.Pool, campaign_id: int, sim: SimServer,
    expected: dict[int, tuple[int, str]] = MIX,
) -> None:
    """Calls placed, attempts counted and final state of each contact, by last digit."""
    calls = called_numbers(sim)
    rows = await pool.fetch(
        "SELECT phone, state, attempts FROM contacts WHERE campaign_id = $1", campaign_id)
    got = {r["phone"]: (calls[r["phone"]], r["attempts"], r["state"]) for r in rows}
    want = {}
    for phone in got:
        placed, state = expected[int(phone[-1])]
        want[phone] = (placed, placed, state)
    assert got == want


async def run_mix(
    dsn: str, pool: asyncpg.Pool, name: str, per_digit: int, faults: dict[str, Any],
    expected: dict[int, tuple[int, str]] = MIX, **settings: Any,
) -> tuple[int, SimServer]:
    """A campaign of ``mixed(per_digit)`` run to completion against a simulator with
    ``faults``; every call is recorded as placed and every contact ends as ``expected``."""
    campaign_id = await make_campaign(pool, name, mixed(per_digit), cps=CPS, retry=QUICK_RETRY)
    async with SimServer(sim_config(**faults)) as sim:
        await run_to_completion(dsn, pool, campaign_id, sim, **settings)
    await assert_recorded_as_placed(pool, campaign_id, sim)
    await assert_mix_outcomes(pool, campaign_id, sim, expected)
    return campaign_id, sim


def attempt_id_of(record: TraceRecord) -> int:
    """The attempt a Create Call request was for, from the StatusCallback URL we sent."""
    return callback_urls.attempt_id_of(record.params["StatusCallback"][0])


# ---- REST API faults --------------------------------------------------------------------


async def test_a_429_storm_backs_off_and_resends_the_same_attempt(
    dsn: str, pool: asyncpg.Pool
) -> None:
    phones, cps, storm = humans(100), 100, 20
    campaign_id = await make_campaign(pool, "storm", phones, cps=cps)
    async with SimServer(sim_config()) as sim:
        sim.faults.rate_limited = storm
        await run_to_completion(dsn, pool, campaign_id, sim, cps=cps)
    requests = creates(sim.trace, accepted_only=False)
    refused = [r for r in requests if r.status == 429]
    assert len(refused) == storm
    # Every refused request went again for the same attempt, which then got its call.
    accepted = {attempt_id_of(r) for r in requests if r.call_sid is not None}
    assert {attempt_id_of(r) for r in refused} <= accepted
    assert called_numbers(sim) == collections.Counter(phones)
    attempts = await assert_recorded_as_placed(pool, campaign_id, sim)
    assert {(a["attempt_no"], a["state"]) for a in attempts} == {(1, "final")}
    assert len(attempts) == len(phones)
    # It backed off: at the full rate the storm would have passed in 0.2 s.
    assert refused[-1].t - refused[0].t > 5 * storm / cps


async def test_a_503_burst_is_reconciled_before_anything_is_resent(
    dsn: str, pool: asyncpg.Pool
) -> None:
    phones = humans(40)
    campaign_id = await make_campaign(pool, "burst503", phones, cps=CPS)
    burst = 12
    async with SimServer(sim_config()) as sim:
        sim.faults.server_errors = burst
        sim.faults.server_error_status = 503
        await run_to_completion(dsn, pool, campaign_id, sim)
    assert called_numbers(sim) == collections.Counter(phones)
    attempts = await assert_recorded_as_placed(pool, campaign_id, sim)
    void = [a for a in attempts if a["state"] == "void"]
    assert len(void) == burst
    assert {a["error_message"] for a in void} == {"Service Unavailable"}
    # A number answered 503 was only sent again after listing its calls found none.
    for phone in {a["phone"] for a in void}:
        mine = [r for r in sim.trace if r.params.get("To") == [phone]]
        failed = next(i for i, r in enumerate(mine) if r.status == 503)
        resent = next(i for i, r in enumerate(mine) if r.call_sid is not None)
        assert any(r.method == "GET" for r in mine[failed:resent]), phone


@pytest.mark.parametrize("callbacks", ["delivered", "dropped"])
async def test_answers_slower_than_the_timeout_are_adopted_not_resent(
    dsn: str, pool: asyncpg.Pool, callbacks: str
) -> None:
    """The call exists although the client gave up waiting: its callbacks (which carry
    the attempt id) or the list of calls must adopt it; nothing is voided or resent."""
    phones = humans(30)
    campaign_id = await make_campaign(pool, f"slow-{callbacks}", phones, cps=CPS)
    async with SimServer(sim_config(drop_callbacks=callbacks == "dropped")) as sim:
        sim.faults.response_delay = 1.0
        settings = daemon_settings(
            sim.base_url, cps=CPS, twilio_timeout=0.3, reconcile_after_seconds=0.3,
            stale_call_seconds=0.5)
        async with running_daemon(settings, dsn):
            await wait_until(lambda: _count(sim, 5), timeout=10, what="5 slow creates")
            sim.faults.response_delay = 0.0
            await wait_until(lambda: campaign_completed(pool, campaign_id), timeout=30,
                             what="campaign completion")
    assert called_numbers(sim) == collections.Counter(phones)
    attempts = await assert_recorded_as_placed(pool, campaign_id, sim)
    ambiguous = REGISTRY.get_sample_value(
        "dialer_calls_created_total",
        {"account": SIM_SID, "campaign": f"slow-{callbacks}", "result": "ambiguous"})
    assert ambiguous is not None and ambiguous >= 5, "the client should have timed out"
    assert {a["state"] for a in attempts} == {"final"}
    assert len(attempts) == len(phones)


async def _count(sim: SimServer, n: int) -> bool:
    return len(sim.calls) >= n


# ---- callback faults ----------------------------------------------------------------------


async def test_duplicate_callbacks_are_stored_once_and_answered_2xx(
    dsn: str, pool: asyncpg.Pool
) -> None:
    campaign_id, sim = await run_mix(dsn, pool, "dups", 5, {"duplicate_callbacks": True})
    sent = [cb for call in sim.calls.values() for cb in call.callbacks]
    assert {len(cb.attempts) for cb in sent} == {2}
    assert {a.status for cb in sent for a in cb.attempts} == {204}
    stored = await pool.fetchval(
        "SELECT count(*) FROM call_events e JOIN call_attempts a ON a.id = e.attempt_id "
        "WHERE a.campaign_id = $1", campaign_id)
    assert stored == len(sent)


async def test_out_of_order_callbacks_never_move_an_attempt_backwards(
    dsn: str, pool: asyncpg.Pool
) -> None:
    campaign_id, sim = await run_mix(dsn, pool, "ooo", 5, {"out_of_order_callbacks": True})
    for call in sim.calls.values():  # the simulator did deliver the final event first
        assert min(call.callbacks, key=lambda cb: cb.attempts[0].t).event == "completed"
    statuses = await pool.fetch(
        "SELECT call_sid, statuses FROM call_attempts WHERE campaign_id = $1", campaign_id)
    for row in statuses:
        call = sim.calls[row["call_sid"]]
        assert set(row["statuses"]) >= {cb.params["CallStatus"] for cb in call.callbacks}


async def test_callbacks_that_never_come_are_replaced_by_fetching_the_call(
    dsn: str, pool: asyncpg.Pool
) -> None:
    campaign_id, sim = await run_mix(dsn, pool, "never", 4, {"drop_callbacks": True},
                                     FETCHED_MIX, stale_call_seconds=0.3)
    assert {cb.state for call in sim.calls.values() for cb in call.callbacks} == {"dropped"}
    sources = await pool.fetch(
        "SELECT DISTINCT e.source FROM call_events e JOIN call_attempts a ON a.id = e.attempt_id"
        " WHERE a.campaign_id = $1", campaign_id)
    assert [r["source"] for r in sources] == ["reconcile"]


@asynccontextmanager
async def delaying_proxy(target: str, delay: float) -> AsyncIterator[str]:
    """A callback URL that holds each request ``delay`` seconds, then forwards it to
    ``target`` unchanged (the signature covers the public URL, which is this one)."""
    async with httpx.AsyncClient(base_url=target, timeout=10) as http:

        async def forward(request: Request) -> Response:
            body = await request.body()
            await asyncio.sleep(delay)
            keep = ("content-type", "x-twilio-signature", "i-twilio-idempotency-token")
            answer = await http.post(
                request.url.path, params=request.url.query, content=body,
                headers={k: v for k, v in request.headers.items() if k in keep})
            return Response(answer.content, status_code=answer.status_code)

        app = Starlette(routes=[Route("/twilio/{rest:path}", forward, methods=["POST"])])
        port = free_port()
        server = EmbeddedServer(app, host="127.0.0.1", port=port)
        await server.start()
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            await server.stop()


async def test_late_callbacks_after_the_call_was_fetched_change_nothing(
    dsn: str, pool: asyncpg.Pool
) -> None:
    """Callbacks held back until after reconciliation fetched each call and the policy
    decided (busy numbers are already on their next attempt): they are stored and
    answered 2xx, and neither the attempts nor the contacts move."""
    phones = mixed(3)
    campaign_id = await make_campaign(pool, "late", phones, cps=CPS, retry=QUICK_RETRY)
    async with SimServer(sim_config()) as sim:
        port = free_port()
        async with delaying_proxy(f"http://127.0.0.1:{port}", delay=0.8) as public:
            settings = daemon_settings(
                sim.base_url, cps=CPS, callback_bind=f"127.0.0.1:{port}",
                public_base_url=public, stale_call_seconds=0.2)
            async with running_daemon(settings, dsn):
                await wait_until(lambda: campaign_completed(pool, campaign_id), timeout=30,
                                 what="campaign completion")
                decided = await pool.fetch(
                    "SELECT id, state, attempts, last_outcome, updated_at FROM contacts"
                    " WHERE campaign_id = $1 ORDER BY id", campaign_id)
                await wait_until(lambda: _all_delivered(sim), timeout=30,
                                 what="late callbacks")
                after = await pool.fetch(
                    "SELECT id, state, attempts, last_outcome, updated_at FROM contacts"
                    " WHERE campaign_id = $1 ORDER BY id", campaign_id)
    assert after == decided
    await assert_recorded_as_placed(pool, campaign_id, sim)
    await assert_mix_outcomes(pool, campaign_id, sim, FETCHED_MIX)
    sent = [cb for call in sim.calls.values() for cb in call.callbacks]
    assert {cb.state for cb in sent} == {"delivered"}
    events = await pool.fetch(
        "SELECT e.source, count(*) AS n FROM call_events e"
        " JOIN call_attempts a ON a.id = e.attempt_id WHERE a.campaign_id = $1 GROUP BY 1",
        campaign_id)
    counts = {r["source"]: r["n"] for r in events}
    assert counts["call-progress-events"] == len(sent)
    assert counts["reconcile"] == len(sim.calls), "every fetch should have won the race"


async def _all_delivered(sim: SimServer) -> bool:
    return all(cb.state != "pending" for call in sim.calls.values() for cb in call.callbacks)
