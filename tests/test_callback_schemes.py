"""The whole callback path (the daemon's StatusCallback and AsyncAmdStatusCallback URLs,
the simulator signing and delivering, the endpoint recording) under every way Twilio
may sign: auth token or Webhooks Rules shared key, URL with or without the fragment."""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg
import httpx
import pytest
from twilio.request_validator import HMAC_SHA256, RequestValidator

from dialer.callback_urls import attempt_id_of
from dialer.policy import RetryPolicy
from dialer.sim.server import SimServer
from dialer.sim.trace import creates
from dialer.testing import (
    SIM_SID,
    SIM_TOKEN,
    campaign_completed,
    daemon_settings,
    make_campaign,
    running_daemon,
    sim_config,
    wait_until,
)

SHARED_KEY = "webhook-rule-shared-key"
QUICK = dt.timedelta(milliseconds=300)
RETRY = RetryPolicy(max_attempts=2, busy_delay=QUICK, no_answer_delay=QUICK,
                    failed_delay=QUICK, machine_delay=QUICK, backoff=1.0, jitter=0.0)
# human, machine (hung up and retried), busy then human: status and AMD callbacks both
PHONES = [f"+1415{5000000 + i * 10 + digit:07d}" for digit in (0, 3, 4) for i in range(4)]
SCHEMES = {
    "auth token, URL as requested": {},
    "auth token, URL with its fragment": {"sign_fragment": True},
    "shared key SHA-256": {"webhook_shared_key": SHARED_KEY},
    "shared key SHA-256, URL with its fragment": {"webhook_shared_key": SHARED_KEY,
                                                  "sign_fragment": True},
}


async def amd_campaign(pool: asyncpg.Pool, name: str) -> int:
    return await make_campaign(pool, name, PHONES, cps=50, amd_mode="Enable", amd_async=True,
                               machine_policy="hangup_retry", retry=RETRY)


@pytest.mark.parametrize("scheme", list(SCHEMES))
async def test_every_signing_scheme_records_every_callback(
    dsn: str, pool: asyncpg.Pool, scheme: str
) -> None:
    signing: dict[str, Any] = SCHEMES[scheme]
    campaign_id = await amd_campaign(pool, "schemes")
    async with SimServer(sim_config(**signing)) as sim:
        settings = daemon_settings(sim.base_url, cps=50,
                                   twilio_webhook_shared_key=signing.get("webhook_shared_key"))
        async with running_daemon(settings, dsn):
            await wait_until(lambda: campaign_completed(pool, campaign_id), timeout=60,
                             what="campaign completion")
    sent = [record for call in sim.calls.values() for record in call.callbacks]
    assert {record.kind for record in sent} == {"status", "amd"}
    assert {attempt.status for record in sent for attempt in record.attempts} == {204}
    for record in sent:
        assert record.url.endswith(f"/{record.kind}#rc=3&rp=all"), record.url
    stored = await pool.fetchval("SELECT count(*) FROM call_events")
    assert stored == len(sent)


async def test_a_shared_key_signature_is_refused_when_no_key_is_set(
    dsn: str, pool: asyncpg.Pool
) -> None:
    campaign_id = await amd_campaign(pool, "nokey")
    sim = SimServer(sim_config(webhook_shared_key=SHARED_KEY))
    async with sim, running_daemon(daemon_settings(sim.base_url, cps=50), dsn):
        await wait_until(
            lambda: _all_answered(sim, len(PHONES)), timeout=30, what="first callbacks")
    sent = [record for call in sim.calls.values() for record in call.callbacks]
    assert {attempt.status for record in sent for attempt in record.attempts} == {403}
    assert await pool.fetchval("SELECT count(*) FROM call_events") == 0
    assert not await campaign_completed(pool, campaign_id)


async def _all_answered(sim: SimServer, calls: int) -> bool:
    records = [record for call in sim.calls.values() for record in call.callbacks]
    return len(sim.calls) >= calls and all(
        record.state != "pending" for record in records) and len(records) >= calls


async def test_the_status_callback_exactly_as_the_daemon_sent_it(
    dsn: str, pool: asyncpg.Pool
) -> None:
    """twilio-python's RequestValidator, handed the StatusCallback string from the
    Create Call request (fragment included), signs callbacks the daemon accepts; so
    does it over the bare URL, with the shared key too; a foreign fragment fails."""
    campaign_id = await make_campaign(pool, "as-sent", PHONES[:1], cps=50)
    async with SimServer(sim_config(drop_callbacks=True)) as sim:
        settings = daemon_settings(sim.base_url, cps=50, twilio_webhook_shared_key=SHARED_KEY)
        async with running_daemon(settings, dsn) as daemon:
            await wait_until(lambda: _live(pool, campaign_id), timeout=30, what="a live call")
            (create,) = creates(sim.trace)
            as_sent = create.params["StatusCallback"][0]
            assert "#" in as_sent
            bare = as_sent.split("#")[0]
            (sid,) = sim.calls
            attempt_id = attempt_id_of(as_sent)
            url = f"http://127.0.0.1:{daemon.port}/twilio/attempts/{attempt_id}/status"
            assert bare == url
            answers = []
            async with httpx.AsyncClient() as http:
                for seq, (signed_url, key, algorithm) in enumerate([
                    (as_sent, SIM_TOKEN, None),
                    (bare, SIM_TOKEN, None),
                    (as_sent, SHARED_KEY, HMAC_SHA256),
                    (bare + "#rc=5&rp=all", SIM_TOKEN, None),
                    (as_sent, "wrong-key", HMAC_SHA256),
                ]):
                    params = {"AccountSid": SIM_SID, "CallSid": sid, "CallStatus": "ringing",
                              "SequenceNumber": str(seq),
                              "CallbackSource": "call-progress-events"}
                    headers = {"X-Twilio-Signature": RequestValidator(key).compute_signature(
                        signed_url, params, algorithm)}
                    if algorithm is not None:
                        headers["X-Twilio-Webhooks-Signature-Settings"] = (
                            f"key=webhooks_sharedkey_1,algorithm={algorithm}")
                    answers.append((await http.post(url, data=params, headers=headers)
                                    ).status_code)
    assert answers == [204, 204, 204, 403, 403]
    assert await pool.fetchval("SELECT count(*) FROM call_events") == 3


async def _live(pool: asyncpg.Pool, campaign_id: int) -> bool:
    return bool(await pool.fetchval(
        "SELECT count(*) FROM call_attempts WHERE campaign_id = $1 AND state = 'live'",
        campaign_id))
