"""Fault injection on creates: what the client sees, and whether a call exists after."""

from __future__ import annotations

import httpx
import pytest

from dialer.sim import Faults, SimServer
from dialer.testing import wait_until
from tests.sim.support import (
    Api,
    api_for,
)


async def test_reset_before_create_leaves_no_call(api: Api, sim: SimServer) -> None:
    sim.faults.reset_before_create = 1
    with pytest.raises(httpx.TransportError):
        await api.create()
    assert sim.calls == {}
    assert (sim.trace[-1].status, sim.trace[-1].call_sid) == (None, None)
    assert (await api.create()).status_code == 201


async def test_reset_after_create_leaves_a_call_that_proceeds(api: Api, sim: SimServer) -> None:
    sim.faults.reset_after_create = 2
    for _ in range(2):
        with pytest.raises(httpx.TransportError):
            await api.create()
    assert len(sim.calls) == 2
    assert [record.status for record in sim.trace] == [None, None]
    assert [record.call_sid for record in sim.trace] == list(sim.calls)
    await wait_until(lambda: all(call.status == "completed" for call in sim.calls.values()))
    listed = (await api.list()).json()["calls"]
    assert {call["sid"] for call in listed} == set(sim.calls)
    assert (await api.create()).status_code == 201


async def test_reset_after_create_by_probability(api: Api, sim: SimServer) -> None:
    sim.faults.reset_after_create_probability = 1.0
    with pytest.raises(httpx.TransportError):
        await api.create()
    sim.faults.reset_after_create_probability = 0.5
    outcomes: list[int | None] = []
    for _ in range(40):
        try:
            outcomes.append((await api.create()).status_code)
        except httpx.TransportError:
            outcomes.append(None)
    assert 5 < outcomes.count(None) < 35
    assert len(sim.calls) == 41


@pytest.mark.parametrize(("status", "code"), [(500, 20500), (503, 20503)])
async def test_server_errors_create_nothing(api: Api, sim: SimServer, status: int, code: int
                                            ) -> None:
    sim.faults.server_errors, sim.faults.server_error_status = 2, status
    for _ in range(2):
        response = await api.create()
        assert response.status_code == status
        assert response.json()["code"] == code
    assert sim.calls == {}
    assert (await api.create()).status_code == 201


async def test_a_rate_limit_storm(api: Api, sim: SimServer) -> None:
    sim.faults.rate_limited = 3
    statuses = [(await api.create()).status_code for _ in range(4)]
    assert statuses == [429, 429, 429, 201]
    assert len(sim.calls) == 1


async def test_a_slow_answer_past_the_client_timeout_still_creates(sim: SimServer) -> None:
    sim.faults.response_delay = 0.5
    async with api_for(sim, timeout=0.1) as api:
        with pytest.raises(httpx.ReadTimeout):
            await api.create()
    assert len(sim.calls) == 1
    async with api_for(sim, timeout=2.0) as api:
        response = await api.create()
    assert response.status_code == 201
    assert response.json()["status"] == "queued"  # the resource as created


async def test_refusals_come_before_validation_and_count_down(api: Api, sim: SimServer) -> None:
    sim.faults.server_errors = 1
    assert (await api.create(To="")).status_code == 500
    assert (await api.create(To="")).status_code == 400


def test_faults_clear() -> None:
    faults = Faults(reset_before_create=1, rate_limited=2, server_errors=3, reset_after_create=4,
                    reset_after_create_probability=0.5, response_delay=1.0,
                    server_error_status=503)
    faults.clear()
    assert faults == Faults(rng=faults.rng)
