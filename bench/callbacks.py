"""Callbacks per second durably recorded by the daemon's endpoint, each exactly once.

    .venv/bin/python bench/callbacks.py [--calls 10000] [--campaigns 4] [--connections 32]
                                        [--duplicate-every 10] [--shared-key] [--quick]
                                        [--json FILE]

Set-up: ``--campaigns`` campaigns whose contacts are all in a call, each with a live
attempt and a Call SID, written straight into a fresh (durable) database. Then the
real daemon (``dialer run``, its own process) and, in another process, a client that
plays Twilio: for every call the four progress events (initiated, ringing,
in-progress, completed) with sequence numbers and idempotency tokens, to the
attempt's StatusCallback URL (``/twilio/attempts/{id}/status``), signed with
X-Twilio-Signature (HMAC-SHA1 with the auth token over the URL as requested; with
``--shared-key``, HMAC-SHA256 with a Webhooks Rules shared key over the URL with its
fragment, the costliest check), over ``--connections`` keep-alive connections; every
``--duplicate-every``-th event is delivered a second time on another connection, as
Twilio does. The requests are built and signed before the clock starts, and the
client speaks minimal HTTP/1.1 so that it is not what gets measured.

Figures: requests answered per second (duplicates included: a 2xx means the event is
committed or was already), distinct events stored per second, and afterwards the
exactly-once check: every distinct (CallSid, SequenceNumber) stored once in
call_events, every attempt final with all four statuses, every contact decided.
Goal (DESIGN.md): >= 2,000 callbacks/s.
"""

from __future__ import annotations

import asyncio
import collections
import multiprocessing
import queue
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from _common import (
    bench_env,
    parser,
    print_table,
    process_cpu_seconds,
    quiet_logs,
    wait_for,
    write_json,
)

from dialer import db
from dialer.callback_urls import callback_url
from dialer.signature import HMAC_SHA256, SETTINGS_HEADER, compute_signature
from dialer.testing import (
    FROM_NUMBER,
    SIM_SID,
    SIM_TOKEN,
    Cluster,
    free_port,
    humans,
    make_campaign,
    stop_process,
    throwaway_cluster,
)

GOAL = 2000.0
RETRIES = 3  # the daemon's DIALER_CALLBACK_RETRIES: its StatusCallbacks end in #rc=3&rp=all
EVENTS = ("initiated", "ringing", "in-progress", "completed")

Call = tuple[int, str, str]  # attempt id, Call SID, To


@dataclass(frozen=True, slots=True)
class Figures:
    calls: int
    requests: int
    duplicates_sent: int
    seconds: float
    requests_per_s: float
    stored_per_s: float
    statuses: dict[str, int]
    events_stored: int
    events_expected: int
    attempts_final: int
    contacts_decided: int
    exactly_once: bool
    daemon_cpu_s: float
    postgres_cpu_s: float
    daemon_cpu_ms_per_request: float

    @property
    def goal_met(self) -> bool:
        return self.requests_per_s >= GOAL and self.exactly_once


# ---- the client (its own process) ---------------------------------------------------


SHARED_KEY = "bench-shared-key"


def _event_request(base_url: str, call: Call, sequence: int, shared_key: bool) -> bytes:
    attempt_id, sid, to = call
    status = EVENTS[sequence]
    params = {
        "CallSid": sid, "AccountSid": SIM_SID, "From": FROM_NUMBER, "To": to,
        "Caller": FROM_NUMBER, "Called": to, "CallStatus": status,
        "Direction": "outbound-api", "ApiVersion": "2010-04-01",
        "Timestamp": "Mon, 01 Jan 2024 00:00:00 +0000",
        "CallbackSource": "call-progress-events", "SequenceNumber": str(sequence),
    }
    if status == "completed":
        params.update(CallDuration="20", Duration="1", SipResponseCode="200")
    status_callback = callback_url(base_url, attempt_id, "status", retries=RETRIES)
    target = urlsplit(status_callback).path
    if shared_key:
        signature = compute_signature(status_callback, params, SHARED_KEY, HMAC_SHA256)
        signed_by = f"{SETTINGS_HEADER}: key=webhooks_sharedkey_bench,algorithm={HMAC_SHA256}\r\n"
    else:
        signature = compute_signature(base_url + target, params, SIM_TOKEN)
        signed_by = ""
    body = urlencode(params).encode()
    head = (
        f"POST {target} HTTP/1.1\r\nHost: {urlsplit(base_url).netloc}\r\n"
        "User-Agent: TwilioProxy/1.1\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"X-Twilio-Signature: {signature}\r\n{signed_by}"
        f"I-Twilio-Idempotency-Token: {uuid.uuid4()}\r\n\r\n"
    )
    return head.encode() + body


def build_requests(base_url: str, calls: list[Call], connections: int,
                   duplicate_every: int, shared_key: bool) -> list[list[bytes]]:
    """Per connection, the requests it sends in order: its calls' events in sequence,
    and every ``duplicate_every``-th event of the whole run again on the next
    connection (same bytes, same idempotency token), arriving about concurrently."""
    lanes: list[list[bytes]] = [[] for _ in range(connections)]
    count = 0
    for index, call in enumerate(calls):
        lane = index % connections
        for sequence in range(len(EVENTS)):
            request = _event_request(base_url, call, sequence, shared_key)
            lanes[lane].append(request)
            count += 1
            if duplicate_every and count % duplicate_every == 0:
                lanes[(lane + 1) % connections].append(request)
    return lanes


async def _read_status(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            await reader.readexactly(int(value))
    return status


async def _lane(base_url: str, requests: list[bytes], statuses: collections.Counter[int],
                start: asyncio.Event) -> float:
    split = urlsplit(base_url)
    reader, writer = await asyncio.open_connection(split.hostname, split.port)
    await start.wait()
    try:
        for request in requests:
            writer.write(request)
            statuses[await _read_status(reader)] += 1
    finally:
        writer.close()
        await writer.wait_closed()
    return time.perf_counter()


def client(base_url: str, calls: list[Call], connections: int, duplicate_every: int,
           shared_key: bool, out: Any) -> None:
    """Entry point of the client process: put (seconds, requests, statuses) on ``out``."""
    lanes = build_requests(base_url, calls, connections, duplicate_every, shared_key)

    async def drive() -> tuple[float, dict[int, int]]:
        statuses: collections.Counter[int] = collections.Counter()
        start = asyncio.Event()
        tasks = [asyncio.create_task(_lane(base_url, lane, statuses, start)) for lane in lanes]
        await asyncio.sleep(0.2)  # every connection open before the clock starts
        began = time.perf_counter()
        start.set()
        ended = max(await asyncio.gather(*tasks))
        return ended - began, dict(statuses)

    seconds, statuses = asyncio.run(drive())
    out.put((seconds, sum(len(lane) for lane in lanes), statuses))


# ---- set-up and checks --------------------------------------------------------------


async def live_calls(dsn: str, calls: int, campaigns: int) -> list[Call]:
    """Campaigns whose every contact is in a call with a live attempt and a Call SID."""
    async with db.open_pool(dsn) as pool:
        per = -(-calls // campaigns)
        for k in range(campaigns):
            count = min(per, calls - k * per)
            await make_campaign(pool, f"callbacks{k}", humans(count, start=k * per))
        await pool.execute("UPDATE contacts SET state = 'in_call', attempts = 1")
        await pool.execute(
            """INSERT INTO call_attempts (contact_id, campaign_id, attempt_no, state,
                   requested_at, sent_at, call_sid, call_status, statuses)
               SELECT id, campaign_id, 1, 'live', now(), now(), 'CA' || md5(id::text),
                      'queued', '{queued}'
               FROM contacts ORDER BY id""")
        rows = await pool.fetch(
            """SELECT a.id, a.call_sid, k.phone FROM call_attempts a
               JOIN contacts k ON k.id = a.contact_id ORDER BY a.id""")
    return [(r["id"], r["call_sid"], r["phone"]) for r in rows]


async def stored(dsn: str) -> tuple[int, int, int, int]:
    """(events stored, distinct (CallSid, SequenceNumber), attempts final with all four
    statuses, contacts decided)."""
    async with db.open_pool(dsn, max_size=2) as pool:
        row = await pool.fetchrow(
            """SELECT (SELECT count(*) FROM call_events) AS events,
                      (SELECT count(DISTINCT (call_sid, sequence_number)) FROM call_events)
                          AS distinct_events,
                      (SELECT count(*) FROM call_attempts
                       WHERE state = 'final' AND call_status = 'completed'
                         AND statuses @> $1::text[]) AS final,
                      (SELECT count(*) FROM contacts WHERE state = 'done') AS done""",
            list(EVENTS))
    assert row is not None
    return row["events"], row["distinct_events"], row["final"], row["done"]


def start_daemon(dsn: str, shared_key: bool) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = bench_env(
        DIALER_DATABASE_URL=dsn, DIALER_TWILIO_ACCOUNT_SID=SIM_SID,
        DIALER_TWILIO_AUTH_TOKEN=SIM_TOKEN, DIALER_CALLBACK_RETRIES=str(RETRIES),
        **({"DIALER_TWILIO_WEBHOOK_SHARED_KEY": SHARED_KEY} if shared_key else {}),
        # Never called: every contact is already in a call, nothing is due.
        DIALER_TWILIO_API_BASE="http://127.0.0.1:9",
        DIALER_CALLBACK_BIND=f"127.0.0.1:{port}", DIALER_PUBLIC_BASE_URL=base_url,
    )
    process = subprocess.Popen([sys.executable, "-m", "dialer.cli", "run"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def healthy() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"dialer run exited:\n{process.stderr.read().decode()}")  # type: ignore[union-attr]
        try:
            with urllib.request.urlopen(f"{base_url}/healthz", timeout=2) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    wait_for(healthy, timeout=60, what="the daemon's /healthz")
    return process, base_url


def _result_of(worker: Any, results: Any) -> Any:
    """The client's result, or an error as soon as it has died without one."""
    while True:
        try:
            result = results.get(timeout=1)
        except queue.Empty:
            if not worker.is_alive():
                raise RuntimeError(f"the client exited with {worker.exitcode}") from None
            continue
        worker.join()
        return result


def bench(pg: Cluster, calls: int, campaigns: int, connections: int,
          duplicate_every: int, shared_key: bool) -> Figures:
    dsn = asyncio.run(pg.new_database("callbacks"))
    live = asyncio.run(live_calls(dsn, calls, campaigns))
    daemon, base_url = start_daemon(dsn, shared_key)
    try:
        context = multiprocessing.get_context("spawn")
        results = context.Queue()
        cpu = (process_cpu_seconds(daemon.pid), process_cpu_seconds(pg.pid, children=True))
        worker = context.Process(target=client, args=(
            base_url, live, connections, duplicate_every, shared_key, results))
        worker.start()
        seconds, requests, statuses = _result_of(worker, results)
        used = (process_cpu_seconds(daemon.pid) - cpu[0],
                process_cpu_seconds(pg.pid, children=True) - cpu[1])
        # Checked while the daemon still runs: a 2xx must mean already committed.
        events, distinct, final, done = asyncio.run(stored(dsn))
    finally:
        stop_process(daemon)
    expected = len(live) * len(EVENTS)
    return Figures(
        calls=len(live), requests=requests, duplicates_sent=requests - expected,
        seconds=seconds, requests_per_s=requests / seconds, stored_per_s=events / seconds,
        statuses={str(k): v for k, v in sorted(statuses.items())}, events_stored=events,
        events_expected=expected, attempts_final=final, contacts_decided=done,
        exactly_once=events == distinct == expected and final == done == len(live)
        and set(statuses) == {204},
        daemon_cpu_s=used[0], postgres_cpu_s=used[1],
        daemon_cpu_ms_per_request=used[0] * 1000 / requests,
    )


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=None,
                   help="live calls to report on (default 10,000; 1,000 with --quick)")
    p.add_argument("--campaigns", type=int, default=4)
    p.add_argument("--connections", type=int, default=32,
                   help="concurrent keep-alive connections of the client")
    p.add_argument("--duplicate-every", type=int, default=10,
                   help="deliver every N-th event twice (0: no duplicates)")
    p.add_argument("--shared-key", action="store_true",
                   help="sign with a Webhooks Rules shared key (HMAC-SHA256) over the URL with "
                        "its fragment instead of the auth token over the bare URL")
    args = p.parse_args()
    calls = args.calls or (1000 if args.quick else 10_000)
    quiet_logs()
    with throwaway_cluster(durable=not args.no_fsync) as pg:
        f = bench(pg, calls, args.campaigns, args.connections, args.duplicate_every,
                  args.shared_key)
    print_table(
        f"Callbacks recorded by `dialer run` ({'fsync off' if args.no_fsync else 'durable'} "
        f"Postgres, {args.connections} connections, "
        f"{'shared key HMAC-SHA256' if args.shared_key else 'auth token HMAC-SHA1'}; "
        f"goal >= {GOAL:,.0f}/s, exactly once)",
        ["calls", "requests", "duplicates", "seconds", "requests/s", "stored/s",
         "answers", "exactly once", "goal met"],
        [[f.calls, f.requests, f.duplicates_sent, f.seconds, f.requests_per_s,
          f.stored_per_s, " ".join(f"{k}:{v}" for k, v in f.statuses.items()),
          f.exactly_once, f.goal_met]],
    )
    print_table(
        "Exactly-once check and CPU",
        ["events stored", "expected", "attempts final", "contacts done", "daemon CPU s",
         "postgres CPU s", "daemon ms/request"],
        [[f.events_stored, f.events_expected, f.attempts_final, f.contacts_decided,
          f.daemon_cpu_s, f.postgres_cpu_s, f.daemon_cpu_ms_per_request]],
    )
    write_json(args.json, "callbacks", args, {**asdict(f), "goal_met": f.goal_met})


if __name__ == "__main__":
    main()
