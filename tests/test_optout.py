"""Opt-out during the call: the signed Gather action endpoint (what a key press stores,
what it answers, what it refuses), and end to end with the simulator pressing 9."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from dialer.callbacks import AccountKeys
from dialer.caps import parse_caps
from dialer.sim.server import SimServer
from dialer.sim.trace import creates
from dialer.testing import (
    campaign_completed,
    daemon_settings,
    make_campaign,
    running_daemon,
    sim_config,
    wait_until,
)
from dialer.testing.endpoint import (
    ACCOUNT,
    TOKEN,
    Endpoint,
    live_attempt,
    rows,
    serving,
    sign,
    status,
    status_path,
)

PROMPT = ('<Response><Gather action="${opt_out_url}" numDigits="1"><Say>Press 9 to stop '
          "these calls.</Say></Gather><Say>Goodbye.</Say></Response>")


@pytest.fixture
async def endpoint(pool: asyncpg.Pool) -> AsyncIterator[Endpoint]:
    async with serving(pool) as served:
        yield served


def gather_path(attempt_id: int) -> str:
    return f"/twilio/attempts/{attempt_id}/gather"


def pressed(sid: str, digits: str, **extra: str) -> dict[str, str]:
    """What Twilio posts to a Gather action (msg included, its one lowercase name)."""
    return {"AccountSid": ACCOUNT, "ApiVersion": "2010-04-01", "CallSid": sid,
            "CallStatus": "in-progress", "Called": "+14155550100", "Caller": "+15005550006",
            "Digits": digits, "Direction": "outbound-api", "FinishedOnKey": "",
            "From": "+15005550006", "To": "+14155550100", "msg": "Gather End", **extra}


async def entries(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    return list(await pool.fetch("SELECT * FROM dnc_numbers ORDER BY id"))


async def test_the_opt_out_key_lists_the_number_at_once_and_confirms(endpoint: Endpoint
                                                                     ) -> None:
    pool = endpoint.pool
    attempt_id, sid = await live_attempt(pool, campaign="remind", opt_out_digit="9",
                                         opt_out_message="No more calls. <Thanks> & bye")
    attempt, contact, _ = await rows(pool, attempt_id)
    other = await make_campaign(pool, "other", [contact["phone"]])
    response = await endpoint.post(gather_path(attempt_id), pressed(sid, "9"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/xml")
    assert response.text.endswith(
        "<Response><Say>No more calls. &lt;Thanks&gt; &amp; bye</Say><Hangup/></Response>")
    [entry] = await entries(pool)
    assert (entry["phone"], entry["campaign_id"], entry["source"], entry["call_sid"]) == (
        contact["phone"], None, "opt-out", sid)
    assert entry["origin_campaign_id"] == attempt["campaign_id"] and entry["added_at"]
    attempt, contact, _ = await rows(pool, attempt_id)
    assert attempt["outcome"] == "opted_out"
    assert (contact["state"], contact["last_outcome"]) == ("done", "opted_out")
    assert await pool.fetchval("SELECT state FROM contacts WHERE campaign_id = $1",
                               other) == "skipped"
    # The call's end is recorded and decides nothing more; a second press adds nothing.
    done = status(sid, "completed", 4, CallDuration="9")
    assert (await endpoint.post(status_path(attempt_id), done)).status_code == 204
    again = await endpoint.post(gather_path(attempt_id), pressed(sid, "9"))
    assert again.status_code == 200 and "<Hangup/>" in again.text
    attempt, contact, events = await rows(pool, attempt_id)
    assert (attempt["state"], attempt["outcome"], events) == ("final", "opted_out", 1)
    assert (contact["state"], contact["last_outcome"]) == ("done", "opted_out")
    assert len(await entries(pool)) == 1


async def test_the_campaign_scope_lists_the_number_for_the_campaign_only(endpoint: Endpoint
                                                                         ) -> None:
    pool = endpoint.pool
    attempt_id, sid = await live_attempt(pool, campaign="remind", opt_out_digit="*",
                                         opt_out_scope="campaign")
    attempt, contact, _ = await rows(pool, attempt_id)
    other = await make_campaign(pool, "other", [contact["phone"]])
    response = await endpoint.post(gather_path(attempt_id), pressed(sid, "*"))
    assert "You will not be called again. Goodbye." in response.text
    [entry] = await entries(pool)
    assert entry["campaign_id"] == attempt["campaign_id"]
    assert await pool.fetchval("SELECT state FROM contacts WHERE campaign_id = $1",
                               other) == "pending"


async def test_other_keys_and_campaigns_without_a_key_store_nothing(endpoint: Endpoint
                                                                    ) -> None:
    pool = endpoint.pool
    keyed, keyed_sid = await live_attempt(pool, campaign="keyed", opt_out_digit="9")
    plain, plain_sid = await live_attempt(pool, campaign="plain")
    for attempt_id, sid, digits in ((keyed, keyed_sid, "5"), (keyed, keyed_sid, ""),
                                    (keyed, keyed_sid, "99"), (plain, plain_sid, "9")):
        response = await endpoint.post(gather_path(attempt_id), pressed(sid, digits))
        assert response.status_code == 200, digits
        assert response.text.endswith("<Response/>")
    assert await entries(pool) == []
    assert (await rows(pool, keyed))[0]["outcome"] is None


async def test_forged_and_malformed_key_presses_store_nothing(endpoint: Endpoint) -> None:
    pool = endpoint.pool
    attempt_id, sid = await live_attempt(pool, campaign="remind", opt_out_digit="9")
    other_id, other_sid = await live_attempt(pool, campaign="remind")
    path = gather_path(attempt_id)
    good = pressed(sid, "9")
    # Digits absorbed into the field before it in the signed string: the same signature.
    resplit = {**{k: v for k, v in good.items() if k != "Digits"},
               "Caller": good["Caller"] + "Digits9"}
    assert sign(endpoint.base + path, resplit) == sign(endpoint.base + path, good)
    cases: list[tuple[str, dict[str, str], str | None, int]] = [
        (path, good, "", 403),  # unsigned
        (path, good, sign(endpoint.base + path, good, token="wrong"), 403),
        (path, {**good, "AccountSid": "AC" + "1" * 32}, None, 403),
        (path, {**good, "note": "x"}, None, 403),  # lowercase: only msg is Twilio's
        (path, resplit, None, 403),
        (path, pressed(sid, "9x"), None, 400),
        (path, {**good, "CallSid": "CA123"}, None, 400),
        (path, pressed(other_sid, "9"), None, 404),  # another call's press
        (gather_path(999_999), good, None, 404),
        (gather_path(other_id) + "x", pressed(other_sid, "9"), None, 404),
    ]
    for target, form, signature, code in cases:
        response = await endpoint.post(target, form, signature=signature)
        assert response.status_code == code, (form, response.text)
    assert await entries(pool) == []
    assert (await rows(pool, attempt_id))[0]["outcome"] is None


async def test_a_key_press_signed_by_another_account_stores_nothing(pool: asyncpg.Pool
                                                                   ) -> None:
    """A genuine Gather action of one account (its own key) about another account's
    attempt is refused: one client's token cannot list another client's contacts."""
    other, other_token = "AC" + "1" * 32, "the-other-accounts-token"
    keys = {ACCOUNT: AccountKeys(TOKEN), other: AccountKeys(other_token)}
    async with serving(pool, accounts=keys) as endpoint:
        attempt_id, sid = await live_attempt(pool, campaign="remind", opt_out_digit="9")
        path = gather_path(attempt_id)
        foreign = pressed(sid, "9", AccountSid=other)
        refused = await endpoint.post(
            path, foreign, signature=sign(endpoint.base + path, foreign, other_token))
        assert refused.status_code == 403
        assert await entries(pool) == []
        assert (await rows(pool, attempt_id))[0]["outcome"] is None
        own = await endpoint.post(path, pressed(sid, "9"))
        assert own.status_code == 200 and "<Hangup/>" in own.text
        assert len(await entries(pool)) == 1


async def test_the_simulator_presses_9_on_the_first_call(dsn: str, pool: asyncpg.Pool) -> None:
    """Acceptance: the number is listed (source opt-out) with the call, the attempt's
    outcome is opted_out, no campaign calls it again, and once the entry has expired the
    number is called again."""
    phone = "+14155559020"  # the simulator's human
    remind = await make_campaign(pool, "remind", [phone], cps=50, twiml=PROMPT,
                                 opt_out_digit="9", opt_out_message="Done. Goodbye.")
    later = await make_campaign(pool, "later", [phone], cps=50, state="paused")
    capped = await make_campaign(pool, "capped", [phone], cps=50, state="paused",
                                 caps=parse_caps("5/24h"))
    async with SimServer(sim_config(press_digits={phone: "9@1"})) as sim:
        settings = daemon_settings(sim.base_url, cps=50)
        async with running_daemon(settings, dsn):
            await wait_until(lambda: campaign_completed(pool, remind), timeout=30,
                             what="the first campaign")
            [call] = list(sim.calls.values())
            await pool.execute("UPDATE campaigns SET state = 'running' WHERE id = ANY($1)",
                               [later, capped])
            for campaign_id in (later, capped):
                await wait_until(lambda c=campaign_id: campaign_completed(pool, c),
                                 timeout=30, what="the other campaigns")
            assert len(creates(sim.trace)) == 1
            [gather] = [r for r in call.callbacks if r.kind == "gather"]
            assert gather.answer is not None
            assert gather.answer.endswith("<Say>Done. Goodbye.</Say><Hangup/></Response>")
            [entry] = await entries(pool)
            assert (entry["source"], entry["call_sid"], entry["origin_campaign_id"],
                    entry["campaign_id"]) == ("opt-out", call.sid, remind, None)
            outcome = await pool.fetchval(
                "SELECT outcome FROM call_attempts WHERE campaign_id = $1", remind)
            assert outcome == "opted_out"
            skipped = await pool.fetch(
                "SELECT state, reason FROM contacts WHERE campaign_id = ANY($1)",
                [later, capped])
            assert [tuple(r) for r in skipped] == [("skipped", "dnc")] * 2
            # The entry expires: it stops blocking (and stays, as history).
            await pool.execute("UPDATE dnc_numbers SET expires_at = now() - interval '1 day'")
            again = await make_campaign(pool, "again", [phone], cps=50)
            await wait_until(lambda: campaign_completed(pool, again), timeout=30,
                             what="the campaign after the expiry")
    assert [r.params["To"] for r in creates(sim.trace)] == [[phone], [phone]]
    assert await pool.fetchval("SELECT last_outcome FROM contacts WHERE campaign_id = $1",
                               again) == "completed"
    assert len(await entries(pool)) == 1
