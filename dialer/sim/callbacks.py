"""Delivering status and AMD callbacks, and Gather action requests, the way Twilio does:
signed, retried, overridable.

The URL a client gives may end in a fragment of connection overrides
(``https://host/cb#rc=3&rt=2000``): ``rc`` retries (0-5, default 1), ``ct`` connect
timeout, ``rt`` read timeout and ``tt`` total time, in milliseconds. The fragment is
never sent. The signature covers the URL, query string included, without the
fragment or, with ``sign_fragment``, with it (Twilio does not document which). It is
keyed by the auth token (HMAC-SHA1) or, with ``webhook_shared_key``, by that key and
announced in X-Twilio-Webhooks-Signature-Settings, as a Webhooks Rule does. A failed
attempt (5xx, connection error, timeout) is retried right away as ``rc`` says; a 4xx
is an answer and is not retried.

Every event carries an ``I-Twilio-Idempotency-Token`` of its own, identical across the
retries and duplicate deliveries of that event, so a receiver can deduplicate by it.

A Gather action request (``exchange``) is sent at once, not behind the call's status
callbacks, and its answer (the TwiML the call goes on with) is kept with it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qsl, urldefrag, urlencode

import aiohttp
import structlog
from yarl import URL

from dialer.signature import HMAC_SHA1, SETTINGS_HEADER, SIGNATURE_HEADER, compute_signature
from dialer.sim.config import SimConfig

log = structlog.get_logger(__name__)

USER_AGENT = "TwilioProxy/1.1"


@dataclass(frozen=True, slots=True)
class Overrides:
    """Twilio's connection overrides, in seconds; defaults are Twilio's."""

    retries: int = 1
    connect_timeout: float = 5.0
    read_timeout: float = 15.0
    total_timeout: float = 15.0


def _seconds(wanted: dict[str, str], key: str, high_ms: int, default: float) -> float:
    if key not in wanted:
        return default
    return min(max(int(wanted[key]), 100), high_ms) / 1000


def split_overrides(url: str) -> tuple[str, Overrides]:
    """The URL to request (fragment removed) and the overrides its fragment asked for."""
    bare, fragment = urldefrag(url)
    wanted = dict(parse_qsl(fragment))
    default = Overrides()
    try:
        return bare, Overrides(
            retries=min(max(int(wanted.get("rc", default.retries)), 0), 5),
            connect_timeout=_seconds(wanted, "ct", 10_000, default.connect_timeout),
            read_timeout=_seconds(wanted, "rt", 15_000, default.read_timeout),
            total_timeout=_seconds(wanted, "tt", 15_000, default.total_timeout),
        )
    except ValueError:
        log.warning("callback_overrides_ignored", fragment=fragment)
        return bare, default


@dataclass(frozen=True, slots=True)
class Attempt:
    t: float
    """``time.monotonic()`` when the attempt started."""
    status: int | None
    error: str | None = None
    seconds: float = 0.0
    """How long the attempt took."""
    wall: float = field(default_factory=time.time)
    """``time.time()`` when the attempt ended, for the call's events."""


@dataclass(slots=True)
class CallbackRecord:
    """One event to deliver and what became of it."""

    kind: Literal["status", "amd", "gather"]
    event: str
    """initiated, ringing, answered, completed, amd, or gather."""
    url: str
    """As given, overrides fragment included."""
    method: Literal["GET", "POST"]
    params: dict[str, str]
    token: str = field(default_factory=lambda: str(uuid.uuid4()))
    attempts: list[Attempt] = field(default_factory=list)
    state: Literal["pending", "delivered", "rejected", "failed", "dropped"] = "pending"
    """rejected: answered 4xx; failed: no answer or 5xx after every retry."""
    answer: str | None = None
    """The body of the 2xx answer (what a Gather action answers is TwiML)."""


# Connections to one receiver at once; more deliveries wait in aiohttp's connector
# queue. aiohttp rather than httpx here: the simulator sends several callbacks per
# call, and httpx's per-request cost made the simulator the bottleneck of a demo.
DELIVERY_CONCURRENCY = 32


class CallbackSender:
    """Sends callbacks in the background; one ordered chain per call."""

    def __init__(self, config: SimConfig) -> None:
        self._config = config
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:  # created lazily: it needs the running loop
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=DELIVERY_CONCURRENCY),
                headers={"User-Agent": USER_AGENT},
                auto_decompress=False,
            )
        return self._session

    def schedule(
        self, record: CallbackRecord, after: asyncio.Task[None] | None
    ) -> asyncio.Task[None]:
        """Deliver ``record`` once ``after`` (the call's previous delivery) has finished."""
        task = asyncio.create_task(self._send_after(record, after))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _send_after(self, record: CallbackRecord, after: asyncio.Task[None] | None) -> None:
        if after is not None:
            await asyncio.wait([after])
        if self._config.drop_callbacks:
            record.state = "dropped"
            return
        for _ in range(2 if self._config.duplicate_callbacks else 1):
            await self._deliver(record)

    def _signed(self, record: CallbackRecord, url: str) -> tuple[str, dict[str, str], bytes | None]:
        """URL, headers and body of the request, signed as the configuration says, with
        the key of the call's account (its auth token, or its Webhooks Rule's key)."""
        config = self._config
        account = config.account(record.params["AccountSid"]) or config
        headers = {"I-Twilio-Idempotency-Token": record.token}
        key, algorithm = account.auth_token, HMAC_SHA1
        if account.webhook_shared_key is not None:
            key, algorithm = account.webhook_shared_key, account.webhook_signature_algorithm
            headers[SETTINGS_HEADER] = (
                f"key={account.webhook_shared_key_sid},algorithm={algorithm}")
        params: dict[str, str] = record.params
        body = None
        if record.method == "GET":
            url = f"{url}{'&' if '?' in url else '?'}{urlencode(record.params)}"
            params = {}
        else:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            body = urlencode(record.params).encode()
        fragment = urldefrag(record.url).fragment
        signed_url = f"{url}#{fragment}" if config.sign_fragment and fragment else url
        headers[SIGNATURE_HEADER] = compute_signature(signed_url, params, key, algorithm)
        return url, headers, body

    async def exchange(self, record: CallbackRecord) -> str | None:
        """Send ``record`` now (retried as its URL says) and return the body of its 2xx
        answer, or None when there was none."""
        await self._deliver(record)
        return record.answer

    async def _deliver(self, record: CallbackRecord) -> None:
        url, overrides = split_overrides(record.url)
        timeout = aiohttp.ClientTimeout(
            total=overrides.total_timeout, sock_connect=overrides.connect_timeout,
            sock_read=overrides.read_timeout,
        )
        url, headers, body = self._signed(record, url)
        for _ in range(overrides.retries + 1):
            started = time.monotonic()
            try:
                async with self._http().request(
                    # encoded=True: send the query exactly as it was signed.
                    record.method, URL(url, encoded=True), data=body, headers=headers,
                    timeout=timeout,
                    allow_redirects=False,
                ) as response:
                    answer = await response.read()
                    status = response.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                record.attempts.append(
                    Attempt(started, None, repr(exc), time.monotonic() - started)
                )
                continue
            record.attempts.append(Attempt(started, status, None, time.monotonic() - started))
            if status < 500:
                record.state = "rejected" if status >= 400 else "delivered"
                if status < 300:
                    record.answer = answer.decode("utf-8", errors="replace")
                return
        record.state = "failed"
        log.info("callback_failed", callback_event=record.event, attempts=len(record.attempts))

    async def aclose(self) -> None:
        """Cancel deliveries still under way, then close the connection pool."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
