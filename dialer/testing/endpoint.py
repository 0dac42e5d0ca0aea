"""The callback endpoint on loopback for tests: ``serving`` runs it (with the outcome
recorder's flusher) for one account, ``Endpoint.post`` sends it requests signed as
Twilio signs them (written here independently of ``dialer.signature``), and
``live_attempt`` makes an attempt for them to be about."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import functools
import hashlib
import hmac
import itertools
import secrets
import urllib.parse
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx

from dialer import repository
from dialer.callbacks import AccountKeys, build_app
from dialer.httpserver import EmbeddedServer
from dialer.outcomes import OutcomeRecorder
from dialer.testing.daemon import recording
from dialer.testing.factories import make_campaign
from dialer.testing.waiting import free_port

TOKEN = "callback-test-token"
SHARED_KEY = "callback-test-shared-key"
ACCOUNT = "AC" + "0" * 32
RETRIES = 3
FRAGMENT = f"#rc={RETRIES}&rp=all"
SETTINGS_HEADER = "X-Twilio-Webhooks-Signature-Settings"
NOW = dt.datetime(2026, 3, 2, 15, 0, tzinfo=dt.UTC)

Form = Mapping[str, str | Sequence[str]]


def _values(value: str | Sequence[str]) -> set[str]:
    return {value} if isinstance(value, str) else set(value)


def sign(url: str, params: Form, token: str = TOKEN) -> str:
    """Twilio's algorithm, written here independently of dialer.signature."""
    pairs = [(k, v) for k in sorted(params) for v in sorted(_values(params[k]))]
    payload = url + "".join(f"{k}{v}" for k, v in pairs)
    digest = hmac.new(token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def status_path(attempt_id: int | str) -> str:
    return f"/twilio/attempts/{attempt_id}/status"


def amd_path(attempt_id: int | str) -> str:
    return f"/twilio/attempts/{attempt_id}/amd"


@dataclass
class Endpoint:
    base: str
    pool: asyncpg.Pool
    hangups: list[str]
    http: httpx.AsyncClient

    async def post(self, path: str, params: Form, *, signature: str | None = None,
                   headers: Mapping[str, str] | None = None) -> httpx.Response:
        url = self.base + path
        sent = {"X-Twilio-Signature": signature if signature is not None else sign(url, params)}
        sent.update(headers or {})
        body = urllib.parse.urlencode(
            [(k, v) for k, vs in params.items() for v in ([vs] if isinstance(vs, str) else vs)])
        sent["Content-Type"] = "application/x-www-form-urlencoded"
        return await self.http.post(url, content=body.encode(), headers=sent)


@contextlib.asynccontextmanager
async def serving(pool: asyncpg.Pool, *, shared_key: str | None = SHARED_KEY,
                  read_timeout: float = 10.0, max_connections: int = 500,
                  recorder: OutcomeRecorder | None = None,
                  accounts: Mapping[str, AccountKeys] | None = None,
                  ) -> AsyncIterator[Endpoint]:
    hangups: list[str] = []

    async def health() -> dict[str, object]:
        return {"ok": True}

    def hang_up(account_sid: str, call_sid: str) -> None:
        assert account_sid == ACCOUNT
        hangups.append(call_sid)

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with recording(recorder or OutcomeRecorder(pool)) as running:
        app = build_app(
            recorder=running, accounts=accounts or {ACCOUNT: AccountKeys(TOKEN, shared_key)},
            public_base_url=base, callback_retries=RETRIES, max_body=8192, hang_up=hang_up,
            health=health, clock=lambda: NOW,
            record_opt_out=functools.partial(repository.record_opt_out, pool),
        )
        server = EmbeddedServer(app, host="127.0.0.1", port=port, read_timeout=read_timeout,
                                max_connections=max_connections)
        await server.start()
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(limits=limits, timeout=30) as http:
            yield Endpoint(base, pool, hangups, http)
        await server.stop()


_phones = itertools.count(100)


async def live_attempt(
    pool: asyncpg.Pool, *, campaign: str = "cb", attempt_id: int | None = None,
    legacy: bool = False, with_sid: bool = True, **spec: Any
) -> tuple[int, str]:
    """A campaign with one contact whose first attempt is live (or, without a Call SID,
    requested: its POST's answer not recorded yet); returns (attempt id, sid)."""
    phone = f"+1415555{next(_phones):04d}"
    exists = await pool.fetchval("SELECT id FROM campaigns WHERE name = $1", campaign)
    spec.setdefault("account_sid", ACCOUNT)
    campaign_id = exists or await make_campaign(pool, campaign, [], **spec)
    contact_id = await pool.fetchval(
        """INSERT INTO contacts (campaign_id, phone, state, attempts, claimed_by)
           VALUES ($1, $2, $3, 1, $4) RETURNING id""",
        campaign_id, phone, "in_call" if with_sid else "dialing",
        None if with_sid else "worker")
    sid = "CA" + secrets.token_hex(16)
    inserted: int = await pool.fetchval(
        """INSERT INTO call_attempts (id, contact_id, campaign_id, attempt_no, requested_at,
                                      state, call_sid, call_status, legacy_callback_url)
           OVERRIDING SYSTEM VALUE
           VALUES (coalesce($1, nextval(pg_get_serial_sequence('call_attempts', 'id'))),
                   $2, $3, 1, $4, $5, $6, $7, $8) RETURNING id""",
        attempt_id, contact_id, campaign_id, NOW, "live" if with_sid else "requested",
        sid if with_sid else None, "queued" if with_sid else None, legacy)
    return inserted, sid


def status(sid: str, call_status: str, seq: int, **extra: str) -> dict[str, str]:
    return {"CallSid": sid, "AccountSid": ACCOUNT, "CallStatus": call_status,
            "SequenceNumber": str(seq), "CallbackSource": "call-progress-events", **extra}


async def rows(pool: asyncpg.Pool, attempt_id: int) -> tuple[asyncpg.Record, asyncpg.Record, int]:
    attempt = await pool.fetchrow("SELECT * FROM call_attempts WHERE id = $1", attempt_id)
    assert attempt is not None
    contact = await pool.fetchrow("SELECT * FROM contacts WHERE id = $1", attempt["contact_id"])
    assert contact is not None
    events = await pool.fetchval("SELECT count(*) FROM call_events WHERE attempt_id = $1",
                                 attempt_id)
    return attempt, contact, events


async def events_of(pool: asyncpg.Pool, attempt_id: int) -> int:
    return (await rows(pool, attempt_id))[2]
