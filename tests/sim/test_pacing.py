"""CPS queueing, strict-mode 429s, the concurrent-call limit, and the request trace."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import socket
import time

import pytest

from dialer.sim import SimServer
from dialer.sim.trace import creates
from dialer.testing import wait_until
from tests.sim.support import (
    Api,
    fast_config,
    running,
)


async def test_calls_beyond_the_cps_are_queued_and_started_at_the_cps() -> None:
    async with running(fast_config(cps=10)) as (sim, api):
        responses = await asyncio.gather(*(api.create() for _ in range(5)))
        queue_times = sorted(int(r.json()["queue_time"]) for r in responses)
        for index, queue_time in enumerate(queue_times):
            assert index * 100 - 50 <= queue_time <= index * 100 + 5
        await wait_until(lambda: all(call.start_time for call in sim.calls.values()))
        starts = sorted(call.start_time or 0.0 for call in sim.calls.values())
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    assert all(0.08 <= gap <= 0.2 for gap in gaps), gaps


async def test_the_queue_drains_and_later_calls_start_at_once() -> None:
    async with running(fast_config(cps=20)) as (_, api):
        await api.create()
        await asyncio.sleep(0.1)
        assert (await api.create()).json()["queue_time"] == "0"


async def test_strict_mode_refuses_creates_past_the_rate_in_any_second() -> None:
    async with running(fast_config(cps=5, strict=True)) as (sim, api):
        responses = await asyncio.gather(*(api.create() for _ in range(8)))
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [201] * 5 + [429] * 3
        refused = next(r for r in responses if r.status_code == 429)
        assert refused.json()["code"] == 20429
        assert refused.json()["more_info"].endswith("/20429")
        assert len(sim.calls) == 5
        await asyncio.sleep(1.0)
        assert (await api.create()).status_code == 201


async def test_strict_rate_can_differ_from_the_cps() -> None:
    async with running(fast_config(cps=1, strict=True, strict_rate=3)) as (_, api):
        statuses = [(await api.create()).status_code for _ in range(4)]
    assert statuses == [201, 201, 201, 429]


async def test_strict_mode_refuses_requests_past_the_concurrency_limit() -> None:
    config = fast_config(strict=True, strict_max_concurrent_requests=2)
    async with running(config) as (sim, api):
        sim.faults.response_delay = 0.5
        responses = await asyncio.gather(*(api.create() for _ in range(5)))
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [201, 201, 429, 429, 429]
        refused = next(r for r in responses if r.status_code == 429)
        assert refused.headers["twilio-concurrent-requests"] == "3"


async def test_without_strict_mode_bursts_are_accepted_and_queued() -> None:
    async with running(fast_config(cps=1)) as (_, api):
        responses = await asyncio.gather(*(api.create() for _ in range(10)))
        assert {r.status_code for r in responses} == {201}
        assert max(int(r.json()["queue_time"]) for r in responses) >= 8000


async def test_max_concurrent_calls_refuses_with_10004() -> None:
    async with running(fast_config(max_concurrent_calls=2, talk_seconds=5000)) as (sim, api):
        first = await api.create_sid()
        await api.create_sid()
        refused = await api.create()
        assert refused.status_code == 400 and refused.json()["code"] == 10004
        await wait_until(lambda: sim.calls[first].status == "in-progress")
        await api.update(first, Status="completed")
        assert (await api.create()).status_code == 201


async def test_the_trace_records_every_request() -> None:
    async with running(fast_config(talk_seconds=5000)) as (sim, api):
        sid = await api.create_sid()
        await api.create(To="")
        await api.fetch(sid)
        await api.list(To="+14155550100")
        await api.update(sid, Status="completed")
    trace = sim.trace
    assert [(r.method, r.status, r.call_sid) for r in trace] == [
        ("POST", 201, sid), ("POST", 400, None), ("GET", 200, None), ("GET", 200, None),
        ("POST", 200, None),
    ]
    assert trace[0].params["To"] == ["+14155550100"]
    assert trace[3].params == {"To": ["+14155550100"]}
    assert trace[0].path == api.calls_path
    assert all(earlier.t <= later.t for earlier, later in itertools.pairwise(trace))
    assert creates(trace) == [trace[0]]
    assert creates(trace, accepted_only=False) == [trace[0], trace[1]]


async def test_arrival_is_when_the_first_bytes_are_read(sim: SimServer) -> None:
    """Not when the handler gets to run: the request line comes 0.2 s before the rest
    of the request, and the trace keeps the earlier time."""
    reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
    token = base64.b64encode(f"{sim.account_sid}:{sim.auth_token}".encode()).decode()
    writer.write(f"GET /2010-04-01/Accounts/{sim.account_sid}/Calls.json HTTP/1.1\r\n".encode())
    await writer.drain()
    first = time.monotonic()
    await asyncio.sleep(0.2)
    writer.write(f"Host: sim\r\nAuthorization: Basic {token}\r\n\r\n".encode())
    await writer.drain()
    assert (await reader.readline()).startswith(b"HTTP/1.1 200")
    writer.close()
    await writer.wait_closed()
    (record,) = sim.trace
    assert first - 0.05 < record.t < first + 0.1


async def test_arrival_is_stamped_by_the_kernel_while_the_loop_is_busy(sim: SimServer) -> None:
    """A request that arrives while the simulator's loop is held up (here for 0.1 s) is
    stamped when it arrived, not when the loop read it: a loaded machine's delays on
    the simulator's side do not bunch the arrivals that pacing is judged by."""
    token = base64.b64encode(f"{sim.account_sid}:{sim.auth_token}".encode()).decode()
    request = (f"GET /2010-04-01/Accounts/{sim.account_sid}/Calls.json HTTP/1.1\r\n"
               f"Host: sim\r\nAuthorization: Basic {token}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", sim.port)) as client:
        await asyncio.sleep(0.05)  # the simulator accepts the connection
        sent = time.monotonic()
        client.sendall(request)
        time.sleep(0.1)  # noqa: ASYNC251 (the point: the simulator's loop is held up)
        client.setblocking(False)
        reader, writer = await asyncio.open_connection(sock=client)
        assert (await reader.readline()).startswith(b"HTTP/1.1 200")
        writer.close()
    (record,) = sim.trace
    assert sent <= record.t < sent + 0.01


async def test_the_trace_is_served_as_json(api: Api) -> None:
    sid = await api.create_sid()
    response = await api.http.get("/sim/trace")
    assert response.status_code == 200
    (record,) = response.json()
    assert (record["method"], record["status"], record["call_sid"]) == ("POST", 201, sid)
    assert record["t"] == pytest.approx(api.sim.trace[0].t)
    assert json.loads(api.sim.trace_json()) == response.json()


async def test_the_trace_measures_a_paced_client() -> None:
    """What the trace is for: checking the rate and spacing a client achieved."""
    async with running(fast_config(cps=20)) as (sim, api):
        for _ in range(5):
            await api.create()
            await asyncio.sleep(0.05)
        times = [record.t for record in creates(sim.trace)]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert all(0.045 <= gap <= 0.2 for gap in gaps), gaps


async def test_requests_reach_the_limit_only_while_in_flight() -> None:
    config = fast_config(strict=True, strict_max_concurrent_requests=1)
    async with running(config) as (_, api):
        for _ in range(5):  # one at a time never trips it
            assert (await api.create()).status_code == 201
