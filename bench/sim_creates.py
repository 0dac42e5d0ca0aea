"""How many Create Call requests per second the simulator answers, and how fast it starts.

The simulator runs in this process on its event loop (one core); the load comes from
separate client processes speaking minimal HTTP/1.1 over keep-alive connections, so
that the client is not what gets measured. The rate is taken from the simulator's
own trace: accepted creates between the first and the last.

    .venv/bin/python bench/sim_creates.py [--seconds 5] [--clients 1] [--connections 32]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import multiprocessing
import time
from urllib.parse import urlencode, urlsplit

from dialer.sim import SimConfig, SimServer
from dialer.sim.trace import creates


def _request(base_url: str, account_sid: str, auth_token: str) -> bytes:
    host = urlsplit(base_url).netloc
    body = urlencode({
        "To": "+14155550100", "From": "+15005550006", "Url": "https://example.com/twiml",
    }).encode()
    credentials = base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode()
    head = (
        f"POST /2010-04-01/Accounts/{account_sid}/Calls.json HTTP/1.1\r\n"
        f"Host: {host}\r\nAuthorization: Basic {credentials}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _connection(base_url: str, request: bytes, deadline: float) -> int:
    split = urlsplit(base_url)
    reader, writer = await asyncio.open_connection(split.hostname, split.port)
    created = 0
    try:
        while time.monotonic() < deadline:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
            created += head.startswith(b"HTTP/1.1 201")
    finally:
        writer.close()
        await writer.wait_closed()
    return created


def _client(base_url: str, account_sid: str, auth_token: str, connections: int,
            seconds: float) -> None:
    request = _request(base_url, account_sid, auth_token)

    async def drive() -> None:
        deadline = time.monotonic() + seconds
        await asyncio.gather(*(
            _connection(base_url, request, deadline) for _ in range(connections)
        ))

    asyncio.run(drive())


async def bench(seconds: float, clients: int, connections: int) -> None:
    started = time.perf_counter()
    config = SimConfig(cps=1_000_000, time_scale=0.0001)
    async with SimServer(config) as sim:
        startup = time.perf_counter() - started
        context = multiprocessing.get_context("spawn")
        workers = [
            context.Process(target=_client, args=(
                sim.base_url, sim.account_sid, sim.auth_token, connections, seconds))
            for _ in range(clients)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            await asyncio.to_thread(worker.join)
        made = creates(sim.trace)
    span = made[-1].t - made[0].t if len(made) > 1 else float("nan")
    print(f"start-up: {startup * 1000:.1f} ms")
    print(f"creates: {len(made)} in {span:.2f} s = {(len(made) - 1) / span:.0f} creates/s "
          f"({clients} client process(es) x {connections} connections)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    asyncio.run(bench(args.seconds, args.clients, args.connections))


if __name__ == "__main__":
    main()
