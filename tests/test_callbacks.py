"""The callback endpoint over real HTTP: authentication, exactly-once, ordering, policy,
and hostile input (forged, re-split, malformed, poisoned) that must store nothing."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import itertools
import secrets
import urllib.parse
from collections.abc import AsyncIterator

import asyncpg
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from twilio.request_validator import HMAC_SHA256, RequestValidator

from dialer.callback_urls import callback_url
from dialer.callbacks import SHARED_KEY_SETTING, AccountKeys
from dialer.outcomes import OutcomeRecorder
from dialer.testing import SIM_SID
from dialer.testing.endpoint import (
    ACCOUNT,
    FRAGMENT,
    NOW,
    RETRIES,
    SETTINGS_HEADER,
    SHARED_KEY,
    TOKEN,
    Endpoint,
    amd_path,
    events_of,
    live_attempt,
    rows,
    serving,
    sign,
    status,
    status_path,
)


@pytest.fixture
async def endpoint(pool: asyncpg.Pool) -> AsyncIterator[Endpoint]:
    async with serving(pool) as served:
        yield served


# ---- the happy paths -------------------------------------------------------------------


async def test_completed_human_call_is_done(endpoint: Endpoint) -> None:
    attempt_id, sid = await live_attempt(endpoint.pool)
    for seq, state in enumerate(["initiated", "ringing", "in-progress"]):
        assert (await endpoint.post(status_path(attempt_id), status(sid, state, seq))
                ).status_code == 204
    done = status(sid, "completed", 3, CallDuration="42")
    assert (await endpoint.post(status_path(attempt_id), done)).status_code == 204
    attempt, contact, events = await rows(endpoint.pool, attempt_id)
    assert (attempt["state"], attempt["call_status"], attempt["duration"]) == ("final",
                                                                               "completed", 42)
    assert (contact["state"], contact["last_outcome"]) == ("done", "completed")
    assert events == 4


async def test_duplicates_are_stored_once_and_answered_2xx(endpoint: Endpoint) -> None:
    attempt_id, sid = await live_attempt(endpoint.pool)
    params = status(sid, "busy", 1)
    first = await endpoint.post(status_path(attempt_id), params)
    again = await endpoint.post(status_path(attempt_id), params)
    token = {"I-Twilio-Idempotency-Token": "same-token"}
    other = status(sid, "busy", 2)
    third = await endpoint.post(status_path(attempt_id), other, headers=token)
    fourth = await endpoint.post(status_path(attempt_id), status(sid, "busy", 3),
                                 headers=token)
    assert [r.status_code for r in (first, again, third, fourth)] == [204] * 4
    _, contact, events = await rows(endpoint.pool, attempt_id)
    assert events == 2
    assert contact["state"] == "retry_wait"
    assert contact["next_attempt_at"] > NOW + dt.timedelta(minutes=4)


async def test_completed_before_ringing_does_not_regress(endpoint: Endpoint) -> None:
    attempt_id, sid = await live_attempt(endpoint.pool)
    path = status_path(attempt_id)
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
    await endpoint.post(status_path(attempt_id), status(sid, "completed", 3, CallDuration="9"))
    _, contact, _ = await rows(endpoint.pool, attempt_id)
    assert contact["state"] == "in_call"  # waits for the AMD result
    amd = {"CallSid": sid, "AccountSid": ACCOUNT, "AnsweredBy": "machine_start",
           "MachineDetectionDuration": "2100"}
    assert (await endpoint.post(amd_path(attempt_id), amd)).status_code == 204
    attempt, contact, _ = await rows(endpoint.pool, attempt_id)
    assert attempt["answered_by"] == "machine_start"
    assert (contact["state"], contact["last_outcome"]) == ("retry_wait", "machine")
    assert endpoint.hangups == []  # the call had already ended


async def test_machine_during_the_call_is_hung_up(endpoint: Endpoint) -> None:
    attempt_id, sid = await live_attempt(
        endpoint.pool, campaign="amd2", amd_mode="Enable", amd_async=True,
        machine_policy="hangup_retry",
    )
    await endpoint.post(status_path(attempt_id), status(sid, "in-progress", 2))
    amd = {"CallSid": sid, "AccountSid": ACCOUNT, "AnsweredBy": "machine_start"}
    assert (await endpoint.post(amd_path(attempt_id), amd)).status_code == 204
    assert endpoint.hangups == [sid]


async def test_form_encoding_matches_what_twilio_sends(endpoint: Endpoint) -> None:
    """Values with spaces, plus signs and unicode are signed as decoded values."""
    attempt_id, sid = await live_attempt(endpoint.pool)
    params = status(sid, "ringing", 1, Caller="+1 415 (555) ünïcode&=")
    url = endpoint.base + status_path(attempt_id)
    body = urllib.parse.urlencode(params)
    response = await endpoint.http.post(
        url, content=body, headers={"Content-Type": "application/x-www-form-urlencoded",
                                    "X-Twilio-Signature": sign(url, params)})
    assert response.status_code == 204


# ---- every way Twilio may sign ---------------------------------------------------------


async def test_twilio_pythons_signature_over_the_status_callback_as_given(
    endpoint: Endpoint,
) -> None:
    """The official validator handed the StatusCallback string exactly as the dialer
    gives it (fragment included), or the URL as requested: both are accepted; any
    other fragment is not."""
    attempt_id, sid = await live_attempt(endpoint.pool)
    given_url = callback_url(endpoint.base, attempt_id, "status", retries=RETRIES)
    assert given_url.endswith(FRAGMENT)
    validator = RequestValidator(TOKEN)
    path = status_path(attempt_id)
    with_fragment = status(sid, "ringing", 1)
    assert (await endpoint.post(path, with_fragment, signature=validator.compute_signature(
        given_url, with_fragment))).status_code == 204
    bare = status(sid, "in-progress", 2)
    assert (await endpoint.post(path, bare, signature=validator.compute_signature(
        given_url.split("#")[0], bare))).status_code == 204
    for fragment in ("#rc=5&rp=all", "#rc=3", "#", "#rc=3&rp=all&x=1"):
        foreign = status(sid, "completed", 3)
        response = await endpoint.post(path, foreign, signature=validator.compute_signature(
            given_url.split("#")[0] + fragment, foreign))
        assert response.status_code == 403, fragment
    assert await events_of(endpoint.pool, attempt_id) == 2


async def test_port_toggling_is_kept(endpoint: Endpoint) -> None:
    """A signature over the URL without its port (and with the fragment) passes."""
    attempt_id, sid = await live_attempt(endpoint.pool)
    params = status(sid, "ringing", 1)
    portless = "http://127.0.0.1" + status_path(attempt_id) + FRAGMENT
    response = await endpoint.post(status_path(attempt_id), params,
                                   signature=sign(portless, params))
    assert response.status_code == 204


@pytest.mark.parametrize("with_fragment", [False, True])
async def test_shared_key_signatures_pass_and_a_wrong_key_fails(
    endpoint: Endpoint, with_fragment: bool
) -> None:
    attempt_id, sid = await live_attempt(endpoint.pool)
    url = endpoint.base + status_path(attempt_id) + (FRAGMENT if with_fragment else "")
    announce = {SETTINGS_HEADER: "key=webhooks_sharedkey_1,algorithm=HMAC_SHA256"}
    good = status(sid, "ringing", 1)
    signed = RequestValidator(SHARED_KEY).compute_signature(url, good, HMAC_SHA256)
    assert (await endpoint.post(status_path(attempt_id), good, signature=signed,
                                headers=announce)).status_code == 204
    bad = status(sid, "completed", 2)
    for key, header in [
        ("another-key", announce),
        (TOKEN, announce),                    # the auth token is not the shared key
        (SHARED_KEY, {}),                     # the shared key without the header
    ]:
        wrong = RequestValidator(key).compute_signature(url, bad, HMAC_SHA256)
        assert (await endpoint.post(status_path(attempt_id), bad, signature=wrong,
                                    headers=header)).status_code == 403
    sha1 = {SETTINGS_HEADER: "key=webhooks_sharedkey_1,algorithm=HMAC_SHA1"}
    assert (await endpoint.post(status_path(attempt_id), bad, signature=sign(url, bad,
            SHARED_KEY), headers=sha1)).status_code == 204
    assert await events_of(endpoint.pool, attempt_id) == 2


async def test_an_unknown_algorithm_is_refused(endpoint: Endpoint) -> None:
    attempt_id, sid = await live_attempt(endpoint.pool)
    params = status(sid, "ringing", 1)
    response = await endpoint.post(
        status_path(attempt_id), params, signature=sign(endpoint.base + status_path(
            attempt_id), params, SHARED_KEY),
        headers={SETTINGS_HEADER: "key=k,algorithm=HMAC_SHA512"})
    assert response.status_code == 403
    assert await events_of(endpoint.pool, attempt_id) == 0


async def test_a_shared_key_signature_without_a_configured_key_is_refused_loudly(
    pool: asyncpg.Pool, capsys: pytest.CaptureFixture[str]
) -> None:
    async with serving(pool, shared_key=None) as endpoint:
        attempt_id, sid = await live_attempt(pool)
        url = endpoint.base + status_path(attempt_id)
        params = status(sid, "ringing", 1)
        capsys.readouterr()
        response = await endpoint.post(
            status_path(attempt_id), params,
            signature=RequestValidator(SHARED_KEY).compute_signature(url, params, HMAC_SHA256),
            headers={SETTINGS_HEADER: "key=webhooks_sharedkey_1,algorithm=HMAC_SHA256"})
        assert response.status_code == 403
        lines = [line for line in capsys.readouterr().err.splitlines() if SHARED_KEY_SETTING
                 in line]
        assert len(lines) == 1 and "error" in lines[0]
        assert SHARED_KEY not in lines[0]
        assert await events_of(pool, attempt_id) == 0


@pytest.mark.parametrize("how", ["unsigned", "forged", "other token", "body changed"])
async def test_bad_signatures_are_403_and_store_nothing(endpoint: Endpoint, how: str) -> None:
    attempt_id, sid = await live_attempt(endpoint.pool)
    path = status_path(attempt_id)
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


async def test_signature_covers_the_path(endpoint: Endpoint) -> None:
    attempt_id, sid = await live_attempt(endpoint.pool)
    params = status(sid, "completed", 3)
    signed_for_other = sign(endpoint.base + status_path(attempt_id + 1), params)
    response = await endpoint.post(status_path(attempt_id), params, signature=signed_for_other)
    assert response.status_code == 403


# ---- the old URL form ------------------------------------------------------------------


async def test_the_old_url_form_only_for_attempts_placed_with_it(endpoint: Endpoint) -> None:
    old_id, old_sid = await live_attempt(endpoint.pool, legacy=True)
    new_id, new_sid = await live_attempt(endpoint.pool)
    old_url = f"{endpoint.base}/twilio/status?a={old_id}"
    for seq, signed_url in enumerate([old_url, old_url + FRAGMENT]):
        params = status(old_sid, "ringing", seq)
        assert (await endpoint.post(f"/twilio/status?a={old_id}", params,
                                    signature=sign(signed_url, params))).status_code == 204
    params = status(new_sid, "ringing", 1)
    response = await endpoint.post(f"/twilio/status?a={new_id}", params)
    assert response.status_code == 403
    assert (await events_of(endpoint.pool, old_id), await events_of(endpoint.pool, new_id)) == (
        2, 0)


async def test_the_migration_marks_only_attempts_placed_before_it(pg_cluster: object) -> None:
    """0003 runs on a database that has calls in flight: they keep the old form."""
    from dialer import db

    admin = await asyncpg.connect(pg_cluster.dsn("postgres"))  # type: ignore[attr-defined]
    await admin.execute("DROP DATABASE IF EXISTS mig_legacy WITH (FORCE)")
    await admin.execute("CREATE DATABASE mig_legacy")
    await admin.close()
    conn = await db.connect(pg_cluster.dsn("mig_legacy"))  # type: ignore[attr-defined]
    try:
        migrations = db.load_migrations()
        index = next(i for i, m in enumerate(migrations) if m.name == "callback_urls")
        await conn.execute("CREATE TABLE schema_migrations (version integer PRIMARY KEY, "
                           "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())")
        for migration in migrations[:index]:
            await conn.execute(migration.sql)
            await conn.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                               migration.version, migration.name)
        # The schema of then, written plainly (the harness writes today's campaigns).
        await conn.execute("INSERT INTO accounts (sid) VALUES ($1)", SIM_SID)
        campaign_id = await conn.fetchval(
            "INSERT INTO campaigns (name, account_sid, from_number, twiml)"
            " VALUES ('before', $1, '+15005550006', '<Response/>') RETURNING id", SIM_SID)
        contacts = [await conn.fetchval("INSERT INTO contacts (campaign_id, phone) VALUES ($1, $2)"
                                        " RETURNING id", campaign_id, phone)
                    for phone in ("+14155550100", "+14155550101")]
        insert = """INSERT INTO call_attempts (contact_id, campaign_id, attempt_no, requested_at)
                    VALUES ($1, $2, 1, now()) RETURNING id"""
        before = await conn.fetchval(insert, contacts[0], campaign_id)
        assert [m.name for m in await db.migrate(conn)] == [
            m.name for m in migrations[index:]]
        after = await conn.fetchval(insert, contacts[1], campaign_id)
        marks = dict(await conn.fetch("SELECT id, legacy_callback_url FROM call_attempts"))
        assert marks == {before: True, after: False}
    finally:
        await conn.close()


# ---- hostile input ---------------------------------------------------------------------


async def test_re_split_forgeries_are_refused_and_store_nothing(endpoint: Endpoint) -> None:
    """The holder of one genuine callback moves a boundary of the signed string: the
    signature still verifies, but every such copy is refused."""
    pool = endpoint.pool
    genuine_id, sid = await live_attempt(pool, attempt_id=15753, legacy=True)
    victim_id, _ = await live_attempt(pool, attempt_id=1575, legacy=True, with_sid=False)
    new_id, new_sid = await live_attempt(pool, attempt_id=25753)
    await live_attempt(pool, attempt_id=2575, with_sid=False)
    params = status(sid, "completed", 3, SipResponseCode="487", Called="+14155550100")
    old_path = f"/twilio/status?a={genuine_id}"
    signature = sign(endpoint.base + old_path, params)
    first = min(params)
    new_params = status(new_sid, "completed", 3)
    new_signature = sign(endpoint.base + status_path(new_id), new_params)
    new_first = min(new_params)
    forgeries: list[tuple[str, dict[str, str], str]] = [
        # ?a=1575 and a first parameter "3AccountSid...": the URL's last digit moved
        (f"/twilio/status?a={victim_id}",
         {("3" + k if k == first else k): v for k, v in params.items()}, signature),
        # SequenceNumber stretched over the field after it (no SequenceNumber left)
        (old_path, {**{k: v for k, v in params.items()
                       if k not in ("SequenceNumber", "SipResponseCode")},
                    "SequenceNumber3SipResponseCode": "487"}, signature),
        # CallbackSource stretched over Called (another dedup key, were it accepted)
        (old_path, {**{k: v for k, v in params.items() if k != "Called"},
                    "CallbackSource": "call-progress-eventsCalled+14155550100"}, signature),
        # The new form: the id is followed by /status, so the URL cannot lose a digit.
        (f"/twilio/attempts/{str(new_id)[:-1]}",
         {(f"{str(new_id)[-1]}/status" + k if k == new_first else k): v
          for k, v in new_params.items()}, new_signature),
    ]
    for path, form, forged_signature in forgeries:
        assert sign(endpoint.base + path, form) == forged_signature, "a true re-split"
        response = await endpoint.post(path, form, signature=forged_signature)
        assert 400 <= response.status_code < 500, (path, form, response.status_code)
    stored = await pool.fetchval("SELECT count(*) FROM call_events")
    victim = await pool.fetchrow("SELECT call_sid, state FROM call_attempts WHERE id = $1",
                                 victim_id)
    assert stored == 0 and tuple(victim) == (None, "requested")
    # ... while the genuine callbacks themselves are accepted.
    assert (await endpoint.post(old_path, params, signature=signature)).status_code == 204
    assert (await endpoint.post(status_path(new_id), new_params)).status_code == 204


@pytest.mark.parametrize(
    ("what", "change"),
    [
        ("foreign AccountSid", {"AccountSid": "AC" + "f" * 32}),
        ("no AccountSid", {"AccountSid": None}),
        ("a=²", None),
        ("5000-digit a=", None),
        ("oversized SequenceNumber", {"SequenceNumber": str(2**31)}),
        ("5000-digit SequenceNumber", {"SequenceNumber": "9" * 5000}),
        ("NUL byte", {"Caller": "+1415\x00555"}),
        ("lowercase name", {"callStatus": "busy"}),
        ("repeated CallStatus", {"CallStatus": ["ringing", "busy"]}),
    ],
)
async def test_hostile_signed_callbacks_get_4xx_and_store_nothing(
    endpoint: Endpoint, what: str, change: dict[str, object] | None
) -> None:
    attempt_id, sid = await live_attempt(endpoint.pool, legacy=True)
    target = {"a=²": "/twilio/status?a=²", "5000-digit a=": "/twilio/status?a=" + "1" * 5000
              }.get(what, status_path(attempt_id))
    params: dict[str, object] = dict(status(sid, "completed", 3))
    for name, value in (change or {}).items():
        if value is None:
            del params[name]
        else:
            params[name] = value
    response = await endpoint.post(target, params)  # type: ignore[arg-type]
    assert 400 <= response.status_code < 500, response.text
    assert await endpoint.pool.fetchval("SELECT count(*) FROM call_events") == 0
    attempt, _, _ = await rows(endpoint.pool, attempt_id)
    assert attempt["call_status"] == "queued"


async def test_bad_requests_get_clear_4xx(endpoint: Endpoint) -> None:
    attempt_id, sid = await live_attempt(endpoint.pool)
    path = status_path(attempt_id)
    url = endpoint.base + path
    json_body = await endpoint.http.post(url, json={"CallSid": sid})
    assert json_body.status_code == 415
    huge = await endpoint.http.post(url, content=b"a=" + b"x" * 10000,
                                    headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert huge.status_code == 413
    malformed = status(sid, "exploded", 1)
    assert (await endpoint.post(path, malformed)).status_code == 400
    unknown = status("CA" + "f" * 32, "completed", 1)
    assert (await endpoint.post(status_path(attempt_id + 1000), unknown)).status_code == 404
    assert (await endpoint.post(path, unknown)).status_code == 404  # another call's attempt
    assert (await endpoint.post(path + "?a=1", status(sid, "ringing", 1))).status_code == 400
    assert (await endpoint.http.get(url)).status_code == 405
    _, _, events = await rows(endpoint.pool, attempt_id)
    assert events == 0


async def test_one_poisoned_request_among_100_genuine_ones(endpoint: Endpoint) -> None:
    """Sent at once, so they share group-commit batches: the malformed one is refused
    on its own and every genuine one is acknowledged and stored once."""
    genuine = [await live_attempt(endpoint.pool) for _ in range(100)]
    poisoned_id, poisoned_sid = await live_attempt(endpoint.pool)
    sends = [endpoint.post(status_path(a), status(sid, "completed", 3, CallDuration="20"))
             for a, sid in genuine]
    sends.insert(50, endpoint.post(status_path(poisoned_id), status(
        poisoned_sid, "completed", 3, CallDuration=str(2**31))))
    answers = [r.status_code for r in await asyncio.gather(*sends)]
    assert answers.pop(50) == 400
    assert answers == [204] * 100
    counts = await endpoint.pool.fetch(
        "SELECT attempt_id, count(*) AS n FROM call_events GROUP BY attempt_id")
    assert {r["attempt_id"]: r["n"] for r in counts} == {a: 1 for a, _ in genuine}


async def test_a_database_refusal_of_one_event_spoils_no_other(pool: asyncpg.Pool) -> None:
    """Should Postgres refuse an event that passed every check, its batch is recorded
    again without it: the others in the batch are stored, the offender alone gets 5xx."""
    await pool.execute("""ALTER TABLE call_events ADD CONSTRAINT test_poison
                          CHECK (params->>'Caller' IS DISTINCT FROM 'poison')""")
    recorder = OutcomeRecorder(pool)
    async with serving(pool, recorder=recorder) as endpoint:
        genuine = [await live_attempt(pool) for _ in range(100)]
        poisoned_id, poisoned_sid = await live_attempt(pool)
        sends = [endpoint.post(status_path(a), status(sid, "busy", 1)) for a, sid in genuine]
        sends.insert(37, endpoint.post(status_path(poisoned_id),
                                       status(poisoned_sid, "busy", 1, Caller="poison")))
        answers = [r.status_code for r in await asyncio.gather(*sends)]
    assert answers.pop(37) == 503
    assert answers == [204] * 100
    counts = await pool.fetch(
        "SELECT attempt_id, count(*) AS n FROM call_events GROUP BY attempt_id")
    assert {r["attempt_id"]: r["n"] for r in counts} == {a: 1 for a, _ in genuine}
    states = await pool.fetch(
        "SELECT k.state FROM contacts k JOIN call_attempts a ON a.contact_id = k.id "
        "WHERE a.id = ANY($1::bigint[])", [a for a, _ in genuine])
    assert {r["state"] for r in states} == {"retry_wait"}


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
                       st.integers(-2**40, 2**40).map(str), st.just(""), st.just(ACCOUNT))
    params = draw(st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=12), values,
                                  max_size=8))
    return {
        "params": params,
        "use_live_sid": draw(st.booleans()),
        "attempt": draw(st.one_of(st.just("live"), st.text(max_size=8),
                                  st.integers(-5, 2**64).map(str))),
        "path": draw(st.sampled_from(["/twilio/attempts/{}/status", "/twilio/attempts/{}/amd",
                                      "/twilio/status?a={}", "/twilio/amd?a={}"])),
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
    attempt_id, sid = await live_attempt(endpoint.pool, campaign="fuzz", legacy=True)
    params = dict(case["params"])  # type: ignore[call-overload]
    if case["use_live_sid"]:
        params["CallSid"] = sid
    attempt = case["attempt"]
    path = str(case["path"]).format(urllib.parse.quote(
        str(attempt_id) if attempt == "live" else str(attempt), safe=""))
    url = endpoint.base + path
    headers = dict(case["extra_headers"])  # type: ignore[call-overload]
    headers = {k: v for k, v in headers.items()
               if k.lower() not in ("content-length", "host", "transfer-encoding",
                                    "connection", "expect", "x-twilio-signature")}
    if case["signed"] == "right":
        headers["X-Twilio-Signature"] = sign(
            url, params, SHARED_KEY if SETTINGS_HEADER.lower() in {
                k.lower() for k in headers} else TOKEN)
    elif case["signed"] == "wrong":
        headers["X-Twilio-Signature"] = sign(url, {**params, "Tampered": "1"})
    if case["content_type"] is not None:
        headers["Content-Type"] = str(case["content_type"])
    before = await snapshot(endpoint.pool, attempt_id)
    answer = await endpoint.http.post(url, content=urllib.parse.urlencode(params).encode(),
                                      headers=headers)
    assert answer.status_code < 500, (answer.status_code, answer.text)
    if answer.status_code >= 300:
        assert await snapshot(endpoint.pool, attempt_id) == before
    if case["signed"] != "right":
        assert answer.status_code in (400, 403, 404, 405, 415), "unsigned or mis-signed"
        assert await snapshot(endpoint.pool, attempt_id) == before


# ---- mutations of genuine signed callbacks ---------------------------------------------
# The holder of genuine callbacks may change anything but the signature: move the
# boundaries of the signed string (between URL and parameters, names and values),
# change values, rename or drop fields. No mutation may be accepted and stored against
# another attempt, or under another de-duplication key than the genuine callback's, or
# with another value of a field the dialer acts on (status, AMD result, SIP code...).

READ = ("AccountSid", "AnsweredBy", "CallDuration", "CallSid", "CallStatus",
        "CallbackSource", "SequenceNumber", "SipResponseCode")
_ids = itertools.count(1)


def _cuts(pairs: list[tuple[str, str]]) -> list[int]:
    """Where each name and each value starts in the signed parameter string."""
    cuts, offset = [], 0
    for name, value in pairs:
        cuts += [offset, offset + len(name)]
        offset += len(name) + len(value)
    return cuts


def _pairs(signed: str, cuts: list[int]) -> list[tuple[str, str]]:
    """The (name, value) pairs the signed string splits into at ``cuts``."""
    bounds = [*cuts, len(signed)]
    segments = [signed[a:b] for a, b in itertools.pairwise(bounds)]
    return list(zip(segments[0::2], segments[1::2], strict=True))


# Some sort before AccountSid, so that the URL's end meets a name other than it.
extra_names = st.sampled_from(["A", "Ab", "Zz"]) | st.from_regex(r"\A[A-Z][a-z]{0,6}\Z").filter(
    lambda n: not any(r in n or n in r for r in READ))
extra_values = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")),
                       max_size=16).filter(lambda v: not any(r in v for r in READ))


@st.composite
def genuine_callbacks(draw: st.DrawFn) -> dict[str, object]:
    kind = draw(st.sampled_from(["status", "amd"]))
    form: dict[str, str] = {"AccountSid": ACCOUNT, "ApiVersion": "2010-04-01",
                            "Called": "+14155550100", "Caller": "+15005550006",
                            "Direction": "outbound-api", "From": "+15005550006",
                            "To": "+14155550100"}
    if kind == "status":
        form["CallStatus"] = draw(st.sampled_from(STATUSES))
        form["SequenceNumber"] = str(draw(st.integers(0, 120)))
        form["CallbackSource"] = "call-progress-events"
        form["Timestamp"] = "Mon, 02 Mar 2026 15:00:00 +0000"
        if form["CallStatus"] in ("completed", "busy", "failed", "no-answer", "canceled"):
            form["CallDuration"] = str(draw(st.integers(0, 99)))
            form["SipResponseCode"] = draw(st.sampled_from(["200", "486", "487", "503"]))
        if draw(st.booleans()):
            form["AnsweredBy"] = draw(st.sampled_from(sorted(("human", "machine_start"))))
    else:
        form["AnsweredBy"] = draw(st.sampled_from(["human", "machine_end_beep", "fax"]))
        form["MachineDetectionDuration"] = str(draw(st.integers(0, 9999)))
    form.update(draw(st.dictionaries(extra_names, extra_values, max_size=3)))
    return {"kind": kind, "form": form, "legacy": draw(st.booleans()),
            "fragment": draw(st.booleans()), "answer_recorded": draw(st.booleans()),
            "mutations": draw(st.lists(st.tuples(
                st.sampled_from(["absorb", "name-end", "value-end", "split", "url"] * 2
                                + ["value", "rename", "drop"]),
                st.integers(0, 10_000), st.integers(-6, -1) | st.integers(1, 6), extra_values),
                min_size=1,
                max_size=3))}


def dict_of(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    form: dict[str, list[str]] = {}
    for name, value in pairs:
        form.setdefault(name, []).append(value)
    return form


def mutate(path: str, form: dict[str, str], mutations: list[tuple[str, int, int, str]]
           ) -> tuple[str, list[tuple[str, str]]]:
    """Apply ``mutations`` to the request for ``path`` with ``form``. The first four
    keep the signed string (URL then parameters) as it is and only move boundaries in
    it; the rest change it."""
    pairs = sorted(form.items())
    for how, at, delta, text in mutations:
        signed = "".join(n + v for n, v in pairs)
        cuts = _cuts(pairs)
        i = at % len(pairs)
        if how == "absorb" and i + 1 < len(pairs):
            # pair i+1 becomes the tail of value i
            pairs = _pairs(signed, cuts[:2 * i + 2] + cuts[2 * i + 4:])
        elif how in ("name-end", "value-end"):
            # move the boundary after name i, or after value i (before name i+1)
            j = 2 * i + 1 if how == "name-end" else 2 * i + 2
            if j < len(cuts):
                high = cuts[j + 1] if j + 1 < len(cuts) else len(signed)
                cuts[j] = min(max(cuts[j] + delta, cuts[j - 1] + 1), high)
                pairs = _pairs(signed, cuts)
        elif how == "split":
            # a new name inside value i
            start, end = cuts[2 * i + 1], cuts[2 * i + 2] if 2 * i + 2 < len(cuts) else len(
                signed)
            if end - start >= 2:
                a = start + 1 + at % (end - start - 1)
                b = min(a + abs(delta), end)
                pairs = _pairs(signed, sorted([*cuts, a, b]))
        elif how == "url":
            # the URL's end into the first name, or the first name's start into the URL
            first_name, first_value = pairs[0]
            if delta < 0:
                path, pairs[0] = path[:delta], (path[delta:] + first_name, first_value)
            else:
                path, pairs[0] = path + first_name[:delta], (first_name[delta:], first_value)
        elif how == "value":
            pairs[i] = (pairs[i][0], text)
        elif how == "rename":
            pairs[i] = (pairs[i][0] + text if text else pairs[i][0].lower(), pairs[i][1])
        elif how == "drop" and len(pairs) > 1:
            del pairs[i]
    return path, pairs


THE_OLD_FORGERY = {  # ?a=1001537 re-split as ?a=100153 and "7A": the bug of issue 12
    "kind": "status", "legacy": True, "fragment": False, "answer_recorded": False,
    "form": {"A": "x", "AccountSid": ACCOUNT, "CallStatus": "ringing", "SequenceNumber": "1",
             "CallbackSource": "call-progress-events"},
    "mutations": [("url", 0, -1, "")],
}


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=genuine_callbacks())
@example(case=THE_OLD_FORGERY)
async def test_no_mutation_of_a_genuine_callback_is_stored_elsewhere(
    endpoint: Endpoint, case: dict[str, object]
) -> None:
    pool = endpoint.pool
    base = 1_000_000 + 1000 * next(_ids) + 537  # its prefixes are attempts too
    legacy = bool(case["legacy"])
    genuine_id, sid = await live_attempt(pool, campaign="mutants", attempt_id=base,
                                         legacy=legacy, with_sid=bool(case["answer_recorded"]))
    if not case["answer_recorded"]:  # the call exists, its Create Call answer was lost
        sid = "CA" + secrets.token_hex(16)
    victims = [(await live_attempt(pool, campaign="mutants", attempt_id=base // 10 ** k,
                                   legacy=legacy, with_sid=False))[0] for k in (1, 2)]
    form = dict(case["form"])  # type: ignore[call-overload]
    form["CallSid"] = sid
    kind = str(case["kind"])
    path = f"/twilio/{kind}?a={genuine_id}" if legacy else f"/twilio/attempts/{genuine_id}/{kind}"
    signed_url = endpoint.base + path + (FRAGMENT if case["fragment"] else "")
    signature = sign(signed_url, form)
    source = "amd" if kind == "amd" else "call-progress-events"
    key = (sid, source, None if kind == "amd" else int(form["SequenceNumber"]))

    mutated_path, pairs = mutate(path, form, case["mutations"])  # type: ignore[arg-type]
    body = urllib.parse.urlencode(pairs).encode()
    answer = await endpoint.http.post(
        endpoint.base + mutated_path, content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded",
                 "X-Twilio-Signature": signature})
    assert answer.status_code < 500, answer.text
    if (mutated_path, pairs) == (path, sorted(form.items())):
        kind_of_mutation = "none"
    elif any(sign(endpoint.base + mutated_path + fragment, dict_of(pairs)) == signature
             for fragment in ("", FRAGMENT)):
        kind_of_mutation = "re-split"  # the signature still verifies
    else:
        kind_of_mutation = "changed"
    event(f"{kind_of_mutation}: {answer.status_code}")
    stored = await pool.fetch(
        "SELECT attempt_id, call_sid, source, sequence_number, params FROM call_events"
        " WHERE attempt_id = ANY($1::bigint[])", [genuine_id, *victims])
    if answer.status_code >= 300:
        assert stored == []
    read = {name: value for name, value in form.items() if name in READ}
    for row in stored:
        assert (row["attempt_id"], row["call_sid"], row["source"], row["sequence_number"]) == (
            genuine_id, *key), (mutated_path, pairs)
        # ... and with every field the dialer acts on as Twilio sent it.
        assert {n: v for n, v in row["params"].items() if n in READ} == read, pairs
    unadopted = await pool.fetchval(
        "SELECT count(*) FROM call_attempts WHERE id = ANY($1::bigint[]) AND call_sid IS NULL",
        victims)
    assert unadopted == 2
    # The genuine callback itself is accepted (so the mutations were tried on a real one).
    genuine = await endpoint.post(path, form, signature=signature)
    assert genuine.status_code == 204, genuine.text


async def test_each_account_signs_only_its_own_calls_callbacks(pool: asyncpg.Pool) -> None:
    """Several accounts: a callback is checked with the key of its AccountSid, and an
    account's genuine callback about another account's attempt is refused."""
    other, other_token = "AC" + "1" * 32, "the-other-accounts-token"
    keys = {ACCOUNT: AccountKeys(TOKEN), other: AccountKeys(other_token)}
    async with serving(pool, accounts=keys) as endpoint:
        attempt_id, sid = await live_attempt(pool)
        path = status_path(attempt_id)
        url = endpoint.base + path
        foreign = {**status(sid, "ringing", 1), "AccountSid": other}
        refused = await endpoint.post(path, foreign, signature=sign(url, foreign, other_token))
        assert refused.status_code == 403
        wrong_key = status(sid, "ringing", 1)
        forged = await endpoint.post(path, wrong_key, signature=sign(url, wrong_key, other_token))
        assert forged.status_code == 403
        assert await events_of(pool, attempt_id) == 0
        own = await endpoint.post(path, status(sid, "ringing", 1))
        assert own.status_code == 204
        assert await events_of(pool, attempt_id) == 1
