"""What the daemon sends and how it takes a refusal, against the simulator: contact
values never change the URL's host; a refusal about the campaign pauses it (reason
stored and shown, no attempt counted), one about the account pauses all of the
account's campaigns, one about the contact fails only that contact."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import parse_qs, unquote, urlsplit

import asyncpg
from prometheus_client import REGISTRY

from dialer.sim.server import SimServer
from dialer.sim.trace import creates
from dialer.testing import (
    SIM_SID,
    campaign_completed,
    campaign_in_state,
    campaign_state,
    daemon_settings,
    humans,
    make_campaign,
    run_cli,
    running_daemon,
    sim_config,
    wait_until,
)

HOSTILE = "evil.example/steal?x=1&y=2#@evil.example:80/"
OTHER_ACCOUNT = "AC" + "cd" * 16


async def set_attributes(pool: asyncpg.Pool, campaign_id: int, attributes: dict[str, str]) -> None:
    await pool.execute("UPDATE contacts SET attributes = $2 WHERE campaign_id = $1",
                       campaign_id, attributes)


async def test_hostile_attributes_never_change_the_url_host(
    dsn: str, pool: asyncpg.Pool
) -> None:
    template = "https://tts.example.com/say/${name}?who=${name}&to=${phone}"
    url_campaign = await make_campaign(pool, "url", humans(3), cps=50, twiml_url=template,
                                       twiml=None)
    twiml_campaign = await make_campaign(
        pool, "inline", humans(2, start=10), cps=50,
        twiml='<Response><Say voice="${voice}">Hello ${name}</Say></Response>')
    await set_attributes(pool, url_campaign, {"name": HOSTILE})
    await set_attributes(pool, twiml_campaign,
                         {"name": "</Say><Dial>+19005550100</Dial>\x1b[2J", "voice": 'a" x="'})
    async with SimServer(sim_config()) as sim:
        async with running_daemon(daemon_settings(sim.base_url, cps=50), dsn):
            for campaign_id in (url_campaign, twiml_campaign):
                await wait_until(lambda c=campaign_id: campaign_completed(pool, c),
                                 timeout=20, what="completion")
        sent = creates(sim.trace)
    urls = [r.params["Url"][0] for r in sent if "Url" in r.params]
    assert len(urls) == 3
    for url in urls:  # as the simulator received it
        split = urlsplit(url)
        assert (split.scheme, split.hostname, split.port) == ("https", "tts.example.com", None)
        assert unquote(split.path.removeprefix("/say/")) == HOSTILE
        assert parse_qs(split.query)["who"] == [HOSTILE]
        assert split.fragment == ""
    twimls = [r.params["Twiml"][0] for r in sent if "Twiml" in r.params]
    assert len(twimls) == 2
    for twiml in twimls:
        assert twiml == ('<Response><Say voice="a&quot; x=&quot;">Hello &lt;/Say&gt;&lt;Dial'
                         '&gt;+19005550100&lt;/Dial&gt;[2J</Say></Response>')


def _paused_metric(campaign: str, concern: str, code: str) -> float:
    value = REGISTRY.get_sample_value(
        "dialer_campaigns_paused_total",
        {"account": SIM_SID, "campaign": campaign, "concern": concern, "code": code})
    return value or 0.0


async def _contacts(pool: asyncpg.Pool, campaign_id: int) -> list[tuple[str, str, int]]:
    rows = await pool.fetch(
        "SELECT phone, state, attempts FROM contacts WHERE campaign_id = $1 ORDER BY phone",
        campaign_id)
    return [(r["phone"], r["state"], r["attempts"]) for r in rows]


async def test_a_refused_url_pauses_its_campaign_within_one_round(
    dsn: str, pool: asyncpg.Pool
) -> None:
    # The simulator refuses a Url whose host has an underscore (21205), as Twilio does.
    bad = await make_campaign(pool, "badurl", humans(40), cps=20,
                              twiml_url="https://bad_host.example.com/t.xml", twiml=None)
    # Two contacts were called before: their counts must not move either.
    await pool.execute(
        "UPDATE contacts SET attempts = 1, state = 'retry_wait', next_attempt_at = now()"
        " WHERE campaign_id = $1 AND phone = ANY($2::text[])", bad, humans(2))
    before = await _contacts(pool, bad)
    # A campaign of the same account goes on; its refused numbers fail alone.
    good = await make_campaign(pool, "goodurl", [*humans(5, start=100), "+15005550004",
                                                 "+15005550002"], cps=20)
    metric_before = _paused_metric("badurl", "campaign", "21205")
    async with SimServer(sim_config()) as sim:
        async with running_daemon(daemon_settings(sim.base_url, cps=20), dsn):
            await wait_until(lambda: _refused_once(sim), timeout=10, what="a refused create")
            first = time.monotonic()
            await wait_until(lambda: campaign_in_state(pool, bad, "paused"), timeout=5,
                             interval=0.02, what="pause")
            paused_after = time.monotonic() - first
            await wait_until(lambda: campaign_completed(pool, good), timeout=20,
                             what="the other campaign")
            await asyncio.sleep(0.5)  # nothing more goes out for the paused one
        refused = [r for r in creates(sim.trace, accepted_only=False)
                   if "bad_host" in r.params.get("Url", [""])[0]]
    # One dispatch round: at most what one claim took (20 CPS * 0.5 s + 1), then nothing.
    assert 1 <= len(refused) <= 11
    assert paused_after < 1.0
    assert await _contacts(pool, bad) == before
    row = await pool.fetchrow("SELECT state, pause_reason FROM campaigns WHERE id = $1", bad)
    assert row is not None and row["state"] == "paused"
    assert "21205" in row["pause_reason"] and "bad_host" in row["pause_reason"]
    attempts = await pool.fetch(
        "SELECT state, outcome, error_code FROM call_attempts WHERE campaign_id = $1", bad)
    assert len(attempts) == len(refused)
    assert {tuple(a) for a in attempts} == {("void", "refused", 21205)}
    assert _paused_metric("badurl", "campaign", "21205") == metric_before + 1

    failed = await pool.fetch(
        "SELECT phone, reason FROM contacts WHERE campaign_id = $1 AND state = 'failed'", good)
    assert {r["phone"]: r["reason"][:18] for r in failed} == {
        "+15005550004": "twilio error 21216", "+15005550002": "twilio error 21214"}

    env = {"DIALER_DATABASE_URL": dsn, "COLUMNS": "200"}
    shown = await asyncio.to_thread(run_cli, "campaign", "show", "badurl", env=env)
    assert shown.returncode == 0, shown.stderr
    assert "paused because" in shown.stdout and "21205" in shown.stdout
    report = await asyncio.to_thread(run_cli, "report", "badurl", env=env)
    assert report.returncode == 0, report.stderr
    assert "paused by the dialer: Twilio error 21205" in report.stdout

    resumed = await asyncio.to_thread(run_cli, "campaign", "resume", "badurl", env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert await pool.fetchval("SELECT pause_reason FROM campaigns WHERE id = $1", bad) is None


async def _refused_once(sim: SimServer) -> bool:
    return any(r.status == 400 and "bad_host" in r.params["Url"][0]
               for r in creates(sim.trace, accepted_only=False) if "Url" in r.params)


async def test_refused_credentials_pause_every_campaign_of_the_account(
    dsn: str, pool: asyncpg.Pool
) -> None:
    first = await make_campaign(pool, "first", humans(5), cps=20, state="draft")
    second = await make_campaign(pool, "second", humans(5, start=20), cps=20, state="draft")
    elsewhere = await make_campaign(pool, "elsewhere", humans(5, start=40), cps=20,
                                    account_sid=OTHER_ACCOUNT)
    # Refused credentials stop `dialer run` at start (tests/test_check_cli.py); a
    # token rotated while it runs is refused on the next create.
    async with SimServer(sim_config()) as sim, running_daemon(
        daemon_settings(sim.base_url, cps=20), dsn
    ):
        sim.config.auth_token = "rotated"
        await pool.execute("UPDATE campaigns SET state = 'running' WHERE id = ANY($1)",
                           [first, second])
        for campaign_id in (first, second):
            await wait_until(lambda c=campaign_id: campaign_in_state(pool, c, "paused"), timeout=10,
                             what="pause")
    for campaign_id in (first, second):
        assert {state for _, state, _ in await _contacts(pool, campaign_id)} == {"pending"}
        assert {n for _, _, n in await _contacts(pool, campaign_id)} == {0}
        reason = await pool.fetchval("SELECT pause_reason FROM campaigns WHERE id = $1",
                                     campaign_id)
        assert "20003" in reason and "account" in reason
    assert await campaign_state(pool, elsewhere) == "running"  # another account's


async def test_a_stored_template_this_version_refuses_pauses_without_a_call(
    dsn: str, pool: asyncpg.Pool
) -> None:
    campaign_id = await make_campaign(pool, "legacy", humans(3), cps=20,
                                      twiml_url="https://tts.example.com/x", twiml=None)
    # Written by hand (or by an older version): a placeholder in the host.
    await pool.execute("UPDATE campaigns SET twiml_url = 'https://${host}.example.com/x'"
                       " WHERE id = $1", campaign_id)
    async with SimServer(sim_config()) as sim:
        async with running_daemon(daemon_settings(sim.base_url, cps=20), dsn):
            await wait_until(lambda: campaign_in_state(pool, campaign_id, "paused"), timeout=10,
                             what="pause")
        assert creates(sim.trace, accepted_only=False) == []
    reason = await pool.fetchval("SELECT pause_reason FROM campaigns WHERE id = $1",
                                 campaign_id)
    assert "never in the scheme, host or port" in reason
    assert {n for _, _, n in await _contacts(pool, campaign_id)} == {0}
    checked = await asyncio.to_thread(run_cli, "check", "legacy",
                                      env={"DIALER_DATABASE_URL": dsn})
    assert checked.returncode == 1 and "Traceback" not in checked.stderr
    assert "campaign legacy has stored settings this version refuses" in checked.stdout
