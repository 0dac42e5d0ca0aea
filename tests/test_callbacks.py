"""The callback endpoint over real HTTP: authentication, exactly-once, ordering, policy."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import itertools
import secrets
import urllib.parse
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import asyncpg
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dialer.callbacks import build_app
from dialer.httpserver import EmbeddedServer
from dialer.outcomes import OutcomeRecorder
from tests.harness import free_port, make_campaign

TOKEN = "callback-test-token"
NOW = dt.datetime(2026, 3, 2, 15, 0, tzinfo=dt.UTC)


def sign(url: str, params: Mapping[str, str], token: str = TOKEN) -> str:
    """Twilio's algorithm, written here independently of dialer.signature."""
    payload = url + "".join(f"{k}{params[k]}" for k in sorted(params))
    digest = hmac.new(token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


@dataclass
class Endpoint:
    base: str
    pool: asyncpg.Pool
    hangups: list[str]
    http: httpx.AsyncClient

    async def post(self, path: str, params: Mapping[str, str], *, signature: str | None = None,
                   headers: Mapping[str, str] | None = None) -> httpx.Response:
        url = self.base + path
        sent = {"X-Twilio-Signature": signature if signature is not None else sign(url, params)}
        sent.update(headers or {})
        return await self.http.post(url, data=dict(params), headers=sent)


@pytest.fixture
async def endpoint(pool: asyncpg.Pool) -> AsyncIterator[Endpoint]:
    hangups: list[str] = []

    async def health() -> dict[str, object]:
        return {"ok": True}

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    app = build_app(
        recorder=OutcomeRecorder(pool), auth_token=TOKEN, public_base_url=base,
        max_body=8192, hang_up=hangups.append, health=health, clock=lambda: NOW,
    )
    server = EmbeddedServer(app, host="127.0.0.1", port=port)
    await server.start()
    async with httpx.AsyncClient() as http:
        yield Endpoint(base, pool, hangups, http)
    await server.stop()


_phones = itertools.count(100)


async def live_attempt(
    pool: asyncpg.Pool, *, campaign: str = "cb", **spec: object
) -> tuple[int, str]:
    """A campaign with one contact whose first attempt is live; returns (attempt id, sid)."""
    phone = f"+1415555{next(_phones):04d}"
    exists = await pool.fetchval("SELECT id FROM campaigns WHERE name = $1", campaign)
    campaign_id = exists or await make_campaign(pool, campaign, [], **spec)
    contact_id = await pool.fetchval(
        """INSERT INTO contacts (campaign_id, phone, state, attempts) VALUES ($1, $2, 'in_call', 1)
           RETURNING id""", campaign_id, phone)
    sid = "CA" + secrets.token_hex(16)
    attempt_id: int = await pool.fetchval(
        """INSERT INTO call_attempts (contact_id, campaign_id, attempt_no, requested_at, state,
                                      call_sid, call_status)
           VALUES ($1, $2, 1, $3, 'live', $4, 'queued') RETURNING id""",
        contact_id, campaign_id, NOW, sid)
    return attempt_id, sid


def status(sid: str, call_status: str, seq: int, **extra: str) -> dict[str, str]:
    return {"CallSid": sid, "AccountSid": "AC" + "0" * 32, "CallStatus": call_status,
            "SequenceNumber": str(seq), "CallbackSource": "call-progress-events", **extra}


async def rows(pool: asyncpg.Pool, attempt_id: int) -> tuple[asyncpg.Record, asyncpg.Record, int]:
    attempt = await pool.fetchrow("SELECT * FROM call_attempts WHERE id = $1", attempt_id)
    assert attempt is not None
    contact = await pool.fetchrow("SELECT * FROM contacts WHERE id = $1", attempt["contact_id"])
    assert contact is not None
    events = await pool.fetchval("SELECT count(*) FROM call_events WHERE attempt_id = $1",
                                 attempt_id)
    return attempt, contact, events


async def test_completed_human_call_is_done(endpoint: Endpoint) -> None:
    attempt_id, sid = await live_attempt(endpoint.pool)
    for seq, state in enumerate(["initiated", "ringing", "in-progress"]):
        assert (await endpoint.post(f"/twilio/status?a={attempt_id}", status(sid, state, seq))
                ).status_code == 204
    done = status(sid, "completed", 3, CallDuration="42")
    assert (await endpoint.post(f"/twilio/status?a={attempt_id}", done)).status_code == 204
    attempt, contact, events = await rows(endpoint.pool, attempt_id)
    assert (attempt["state"], attempt["call_status"], attempt["duration"]) == ("final",
                                                                               "completed", 42)
    assert (contact["state"], contact["last_outcome"]) == ("done", "completed")
    assert events == 4


async def test_duplicates_are_stored_once_and_answered_2xx(endpoint: Endpoint) -> None:
    attempt_id, sid = await live_attempt(endpoint.pool)
    params = status(sid, "busy", 1)
    first = await endpoint.post(f"/twilio/status?a={attempt_id}", params)
    again = await endpoint.post(f"/twilio/status?a={attempt_id}", params)
    token = {"I-Twilio-Idempotency-Token": "same-token"}
    other = status(sid, "busy", 2)
    third = await endpoint.post(f"/twilio/status?a={attempt_id}", other, headers=token)
    fourth = await endpoint.post(f"/twilio/status?a={attempt_id}", status(sid, "busy", 3),
                                 headers=token)
    assert [r.status_code for r in (first, again, third, fourth)] == [204] * 4
    _, contact, events = await rows(endpoint.pool, attempt_id)
    assert events == 2
    assert contact["state"] == "retry_wait"
    assert contact["next_attempt_at"] > NOW + dt.timedelta(minutes=4)


async def test_completed_before_ringing_does_not_regress(endpoint: Endpoint) -> None:
    attempt_id, sid = await live_attempt(endpoint.pool)
    path = f"/twilio/status?a={attempt_id}"
    await endpoint.post(path, status(sid, "completed", 3, CallDuration="5"))
    await endpoint.post(path, status(sid, "ringing", 1))
    await endpoint.post(path, status(sid, "initiated", 0))
    attempt, contact, events = await rows(endpoint.pool, attempt_id)
    assert (attempt["state"], attempt["call_status"]) == ("final", "completed")
    assert contact["state"] == "done"
    assert events == 3


async def test_async_amd_after_completed_decides_with_the_machine_result(
    endpoint: Endpoint,
) -> None:
    attempt_id, sid = await live_attempt(
        endpoint.pool, campaign="amd", amd_mode="Enable", amd_async=True,
        machine_policy="hangup_retry",
    )
    await endpoint.post(f"/twilio/status?a={attempt_id}", status(sid, "completed", 3,
                                                                  CallDuration="9"))
    _, contact, _ = await rows(endpoint.pool, attempt_id)
    assert contact["state"] == "in_call"  # waits for the AMD result
    amd = {"CallSid": sid, "AccountSid": "AC" + "0" * 32, "AnsweredBy": "machine_start",
           "MachineDetectionDuration": "2100"}
    assert (await endpoint.post(f"/twilio/amd?a={attempt_id}", amd)).status_code == 204
    attempt, contact, _ = await rows(endpoint.pool, attempt_id)
    assert attempt["answered_by"] == "machine_start"
    assert (contact["state"], contact["last_outcome"]) == ("retry_wait", "machine")
    assert endpoint.hangups == []  # the call had already ended


async def test_machine_during_the_call_is_hung_up(endpoint: Endpoint) -> None:
    attempt_id, sid = await live_attempt(
        endpoint.pool, campaign="amd2", amd_mode="Enable", amd_async=True,
        machine_policy="hangup_retry",
    )
    await endpoint.post(f"/twilio/status?a={attempt_id}", status(sid, "in-progress", 2))
    amd = {"CallSid": sid, "AnsweredBy": "machine_start"}
    await endpoint.post(f"/twilio/amd?a={attempt_id}", amd)
    assert endpoint.hangups == [sid]


@pytest.mark.parametrize("how", ["unsigned", "forged", "other token", "body changed"])
async def test_bad_signatures_are_403_and_store_nothing(endpoint: Endpoint, how: str) -> None:
    attempt_id, sid = await live_attempt(endpoint.pool)
    path = f"/twilio/status?a={attempt_id}"
    params = status(sid, "completed", 3, CallDuration="1")
    url = endpoint.base + path
    signature = {
        "unsigned": "",
        "forged": base64.b64encode(b"x" * 20).decode(),
        "other token": sign(url, params, "wrong-token"),
        "body changed": sign(url, {**params, "CallStatus": "busy"}),
    }[how]
    response = await endpoint.post(path, params, signature=signature)
    assert response.status_code == 403
    attempt, _, events = await rows(endpoint.pool, attempt_id)
    assert events == 0
    assert attempt["call_status"] == "queued"


async def test_signature_covers_the_query_string(endpoint: Endpoint) -> None:
    attempt_id, sid = await live_attempt(endpoint.pool)
    params = status(sid, "completed", 3)
    signed_for_other = sign(endpoint.base + f"/twilio/status?a={attempt_id + 1}", params)
    response = await endpoint.post(f"/twilio/status?a={attempt_id}", params,
                                   signature=signed_for_other)
    assert response.status_code == 403


async def test_bad_requests_get_clear_4xx(endpoint: Endpoint) -> None:
    attempt_id, sid = await live_attempt(endpoint.pool)
    path = f"/twilio/status?a={attempt_id}"
    url = endpoint.base + path
    json_body = await endpoint.http.post(url, json={"CallSid": sid})
    assert json_body.status_code == 415
    huge = await endpoint.http.post(url, content=b"a=" + b"x" * 10000,
                                    headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert huge.status_code == 413
    malformed = status(sid, "exploded", 1)
    assert (await endpoint.post(path, malformed)).status_code == 400
    unknown = status("CA" + "f" * 32, "completed", 1)
    assert (await endpoint.post("/twilio/status", unknown)).status_code == 404
    assert (await endpoint.http.get(url)).status_code == 405
    _, _, events = await rows(endpoint.pool, attempt_id)
    assert events == 0


async def test_form_encoding_matches_what_twilio_sends(endpoint: Endpoint) -> None:
    """Values with spaces, plus signs and unicode are signed as decoded values."""
    attempt_id, sid = await live_attempt(endpoint.pool)
    params = status(sid, "ringing", 1, Caller="+1 415 (555) ünïcode&=")
    url = endpoint.base + f"/twilio/status?a={attempt_id}"
    body = urllib.parse.urlencode(params)
    response = await endpoint.http.post(
        url, content=body, headers={"Content-Type": "application/x-www-form-urlencoded",
                                    "X-Twilio-Signature": sign(url, params)})
    assert response.status_code == 204


# ---- random input ----------------------------------------------------------------------
# Whatever the form, the headers or the signature: a 2xx or a clear 4xx (never a 5xx),
# and a refused request stores nothing and changes nothing.

KEYS = ["CallSid", "CallStatus", "SequenceNumber", "CallbackSource", "AnsweredBy",
        "CallDuration", "SipResponseCode", "Timestamp", "AccountSid", "To", "From",
        "MachineDetectionDuration", "Duration"]
STATUSES = ["queued", "initiated", "ringing", "in-progress", "completed", "busy",
            "no-answer", "failed", "canceled"]
CONTENT_TYPES = ["application/x-www-form-urlencoded", "application/json", "text/plain",
                 "multipart/form-data", "application/x-www-form-urlencoded; charset=latin-1"]


@st.composite
def callbacks(draw: st.DrawFn) -> dict[str, object]:
    values = st.one_of(st.text(max_size=40), st.sampled_from(STATUSES),
                       st.integers(-2**40, 2**40).map(str), st.just(""))
    params = draw(st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=12), values,
                                  max_size=8))
    return {
        "params": params,
        "use_live_sid": draw(st.booleans()),
        "attempt": draw(st.one_of(st.none(), st.just("live"), st.text(max_size=8),
                                  st.integers(-5, 2**63).map(str))),
        "path": draw(st.sampled_from(["/twilio/status", "/twilio/amd"])),
        "signed": draw(st.sampled_from(["right", "right", "right", "wrong", "none"])),
        "content_type": draw(st.sampled_from(CONTENT_TYPES) | st.none()),
        "extra_headers": draw(st.dictionaries(
            st.from_regex(r"\A[A-Za-z][A-Za-z0-9-]{0,15}\Z"),
            st.from_regex(r"\A([!-~]([ -~]{0,28}[!-~])?)?\Z"), max_size=3)),
    }


async def snapshot(pool: asyncpg.Pool, attempt_id: int) -> tuple[object, ...]:
    events = await pool.fetchval("SELECT count(*) FROM call_events")
    attempt = await pool.fetchrow("SELECT * FROM call_attempts WHERE id = $1", attempt_id)
    contact = await pool.fetchrow(
        "SELECT k.* FROM contacts k JOIN call_attempts a ON a.contact_id = k.id"
        " WHERE a.id = $1", attempt_id)
    return events, attempt, contact


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=callbacks())
async def test_random_callbacks_get_2xx_or_4xx_and_refusals_store_nothing(
    endpoint: Endpoint, case: dict[str, object]
) -> None:
    attempt_id, sid = await live_attempt(endpoint.pool, campaign="fuzz")
    params = dict(case["params"])  # type: ignore[call-overload]
    if case["use_live_sid"]:
        params["CallSid"] = sid
    attempt = case["attempt"]
    query = "" if attempt is None else "?" + urllib.parse.urlencode(
        {"a": attempt_id if attempt == "live" else attempt})
    url = endpoint.base + str(case["path"]) + query
    headers = dict(case["extra_headers"])  # type: ignore[call-overload]
    headers = {k: v for k, v in headers.items()
               if k.lower() not in ("content-length", "host", "transfer-encoding",
                                    "connection", "expect", "x-twilio-signature")}
    if case["signed"] == "right":
        headers["X-Twilio-Signature"] = sign(url, params)
    elif case["signed"] == "wrong":
        headers["X-Twilio-Signature"] = sign(url, {**params, "tampered": "1"})
    if case["content_type"] is not None:
        headers["Content-Type"] = str(case["content_type"])
    before = await snapshot(endpoint.pool, attempt_id)
    answer = await endpoint.http.post(url, content=urllib.parse.urlencode(params).encode(),
                                      headers=headers)
    assert answer.status_code < 500, (answer.status_code, answer.text)
    if answer.status_code >= 300:
        assert await snapshot(endpoint.pool, attempt_id) == before
    if case["signed"] != "right":
        assert answer.status_code in (403, 415), "unsigned or mis-signed: refused"
