"""``dialer check`` and the start-up checks of ``dialer run``, as an operator runs them:
the real CLI in a subprocess, against a real database, the simulator, a TwiML host and
a daemon on loopback. Each check is shown ok and failing."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response

from dialer import db, preflight
from dialer.campaigns import Campaign
from dialer.checks import Verdict
from dialer.sim import SimConfig, SimServer
from dialer.testing import (
    SIM_SID,
    SIM_TOKEN,
    clean_env,
    daemon_settings,
    free_port,
    make_campaign,
    run_cli,
    running_daemon,
    stop_process,
)
from tests.sim.support import Receiver, serving

OWNED = "+14155550123"
VERIFIED = "+14155559999"
STRANGER = "+14155550000"
TWIML = b"<?xml version='1.0'?><Response><Say>Hello</Say></Response>"


class TwimlHost(Receiver):
    """Serves a TwiML document at /reminder.xml, a few things that are not TwiML, and a
    /healthz that names a worker no daemon has; every other path is a 404."""

    async def _handle(self, request: Request) -> Response:
        await super()._handle(request)
        documents = {
            "/reminder.xml": Response(TWIML, media_type="text/xml"),
            "/moved": RedirectResponse("/reminder.xml", status_code=302),
            "/page.html": Response(b"<html><body>Hi</body></html>", media_type="text/html"),
            "/hello.txt": PlainTextResponse("Hello"),
            "/huge.xml": Response(b"<Response>" + b" " * (2 << 20) + b"</Response>",
                                  media_type="text/xml"),
            "/imposter/healthz": JSONResponse({"ok": True, "worker": "imposter:1:aa"}),
        }
        return documents.get(request.url.path,
                             PlainTextResponse("no such document", status_code=404))


@pytest.fixture(scope="module")
async def twiml_host() -> AsyncIterator[TwimlHost]:
    async with serving(TwimlHost()) as host:
        yield host


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    config = SimConfig(account_sid=SIM_SID, auth_token=SIM_TOKEN, cps=1000, time_scale=0.001,
                       phone_numbers=(OWNED,), caller_ids=(VERIFIED,))
    async with SimServer(config) as server:
        yield server


def check_env(dsn: str, sim: SimServer, **extra: str) -> dict[str, str]:
    return {
        "DIALER_DATABASE_URL": dsn, "DIALER_TWILIO_ACCOUNT_SID": SIM_SID,
        "DIALER_TWILIO_AUTH_TOKEN": SIM_TOKEN, "DIALER_TWILIO_API_BASE": sim.base_url,
        "DIALER_TWILIO_CPS": "10", "DIALER_ENV_FILE": os.devnull,
        "DIALER_LOG_LEVEL": "warning",
        "DIALER_PUBLIC_BASE_URL": f"http://127.0.0.1:{free_port()}",  # nothing listens
        **extra,
    }


async def dialer_check(env: dict[str, str], *names: str) -> tuple[int, dict[str, list[str]]]:
    """Exit code and the output lines by check name (the CLI runs in a thread, so the
    simulator and the daemon on this loop go on serving)."""
    done = await asyncio.to_thread(run_cli, "check", *names, env=env)
    assert "Traceback" not in done.stderr, done.stderr
    # The Account resource carries the auth token; nothing shows it.
    assert SIM_TOKEN not in done.stdout + done.stderr
    lines: dict[str, list[str]] = {}
    for line in done.stdout.splitlines()[:-1]:
        verdict, check, rest = line.split(maxsplit=2)
        lines.setdefault(check, []).append(f"{verdict} {rest}")
    assert done.stdout.splitlines()[-1].startswith("checks: "), done.stdout
    return done.returncode, lines


def only(lines: dict[str, list[str]], check: str, campaign: str | None = None) -> str:
    found = [line for line in lines.get(check, [])
             if campaign is None or line.split(maxsplit=1)[1].startswith(f"{campaign}: ")]
    assert len(found) == 1, (check, campaign, lines)
    return found[0]


async def add_attempts(pool: asyncpg.Pool, campaign_id: int, queue_ms: list[int]) -> None:
    """Calls Twilio accepted a minute ago, with the queue_time its answers gave."""
    contacts = await pool.fetch("SELECT id FROM contacts WHERE campaign_id = $1 ORDER BY id",
                                campaign_id)
    sent = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    for contact, queue in zip(contacts, queue_ms, strict=False):
        await pool.execute(
            """INSERT INTO call_attempts (contact_id, campaign_id, attempt_no, state,
                   requested_at, sent_at, call_sid, queue_time_ms, final_at)
               VALUES ($1, $2, 1, 'final', $3, $3, $4, $5, $3)""",
            contact["id"], campaign_id, sent, "CA" + f"{contact['id']:032x}", queue)


async def without_zone(pool: asyncpg.Pool, campaign: str) -> None:
    """The campaign's contacts as numbers that give no zone (satellite numbers do)."""
    await pool.execute(
        "UPDATE contacts SET zones = '{}', zone_source = 'number', states = '{}',"
        " state_sources = '{}' WHERE campaign_id = (SELECT id FROM campaigns WHERE name = $1)",
        campaign)


async def test_everything_ok_with_a_daemon_running(
    dsn: str, pool: asyncpg.Pool, sim: SimServer, twiml_host: TwimlHost
) -> None:
    owned = await make_campaign(
        pool, "owned", ["+14155551001", "+14155551002"], state="draft", from_number=OWNED,
        twiml=None, twiml_url=f"{twiml_host.base_url}/reminder.xml?name=${{first_name}}",
        timezone="America/New_York")
    await pool.execute("""UPDATE contacts SET attributes = '{"first_name": "Zoë Ann"}'
                          WHERE campaign_id = $1""", owned)
    await make_campaign(pool, "verified", ["+14155551003"], state="paused",
                        from_number=VERIFIED, default_timezone="America/Chicago",
                        twiml="<Response><Say>Hi ${first_name}</Say></Response>")
    await pool.execute("""UPDATE contacts SET attributes = '{"first_name": "Bo"}'
                          WHERE campaign_id <> $1""", owned)
    await without_zone(pool, "verified")
    await add_attempts(pool, owned, [0, 0])
    settings = daemon_settings(sim.base_url, cps=10)
    async with running_daemon(settings, dsn) as daemon:
        code, lines = await dialer_check(
            check_env(dsn, sim, DIALER_PUBLIC_BASE_URL=settings.public_base_url))
    assert code == 0, lines
    assert only(lines, "database").startswith("ok reachable, schema current")
    assert only(lines, "credentials") == f"ok Twilio accepted the credentials of {SIM_SID}"
    assert only(lines, "account") == "ok active (Full)"
    assert only(lines, "caller-id", "owned") == f"ok owned: {OWNED} is a number of the account"
    assert "a verified caller ID" in only(lines, "caller-id", "verified")
    assert only(lines, "public-url") == (
        f"ok {settings.public_base_url} reaches the running daemon {daemon.worker_id}")
    assert only(lines, "twiml", "owned").startswith("ok owned: http://")
    assert "is TwiML with the placeholders of contact #" in only(lines, "twiml", "owned")
    assert only(lines, "twiml", "verified").startswith("ok verified: the inline TwiML is TwiML")
    assert "none queued at Twilio" in only(lines, "cps")
    assert only(lines, "compliance", "owned").startswith("ok owned: every contact")
    assert "default zone America/Chicago" in only(lines, "compliance", "verified")
    # The URL was fetched with the sample contact's placeholder filled, URL-escaped.
    fetched = [r.url for r in twiml_host.at("/reminder.xml")]
    assert f"{twiml_host.base_url}/reminder.xml?name=Zo%C3%AB%20Ann" in fetched


async def test_what_burns_a_list_fails_or_warns(
    pool: asyncpg.Pool, dsn: str, sim: SimServer, twiml_host: TwimlHost
) -> None:
    stranger = await make_campaign(
        pool, "stranger", ["+14155551001", "+14155551002", "+14155551003"], state="running",
        from_number=STRANGER, twiml=None, twiml_url=f"{twiml_host.base_url}/missing.xml",
        timezone="America/New_York")
    await make_campaign(pool, "broken", ["+14155551004"], state="draft", from_number=OWNED,
                        twiml="<Response><Say>Hi</Say>", timezone="America/New_York")
    await make_campaign(pool, "utc", ["+14155551005", "+14155551006"], state="draft",
                        from_number=OWNED)
    await without_zone(pool, "utc")
    await make_campaign(pool, "finished", ["+14155551007"], state="completed",
                        from_number=STRANGER)
    await add_attempts(pool, stranger, [0, 5000, 12000])
    # A daemon is registered, but the public URL points at a port where nothing listens.
    await pool.execute("INSERT INTO workers (id, hostname, pid) VALUES ('far:1:ab', 'far', 1)")

    code, lines = await dialer_check(check_env(dsn, sim))
    assert code == 1
    assert only(lines, "credentials").startswith("ok") and only(lines, "account").startswith("ok")
    assert only(lines, "caller-id", "stranger") == (
        f"fail stranger: {STRANGER} is neither a number of the account nor a verified caller "
        "ID: Twilio would refuse every call (21210) Fix: buy or port the number, verify it as "
        "a caller ID, or change the campaign's --from "
        "(`dialer campaign edit stranger --from ...`).")
    assert only(lines, "caller-id", "broken").startswith("ok")
    assert only(lines, "twiml", "stranger").startswith(
        f"fail stranger: {twiml_host.base_url}/missing.xml answered 404 to a GET")
    assert "is not well-formed XML" in only(lines, "twiml", "broken")
    public = only(lines, "public-url")
    assert public.startswith("fail http://127.0.0.1:") and "cannot connect" in public
    assert "11200" in public
    assert only(lines, "cps").startswith(
        "warn 2 of 3 calls in the last 24 h waited in Twilio's queue (up to 12.0 s")
    assert only(lines, "compliance", "utc").startswith(
        "warn utc: 2 contacts without a time zone (none in the CSV, none from the number) "
        "will not be called")
    assert not [line for found in lines.values() for line in found if "finished" in line]


async def test_refused_credentials_fail_and_the_rest_is_not_asked(
    pool: asyncpg.Pool, dsn: str, sim: SimServer
) -> None:
    await make_campaign(pool, "owned", ["+14155551001"], from_number=OWNED,
                        timezone="America/New_York")
    code, lines = await dialer_check(
        check_env(dsn, sim, DIALER_TWILIO_AUTH_TOKEN="rotated-away"), "owned", "nosuch")
    assert code == 1
    assert only(lines, "credentials").startswith(
        f"fail Twilio refused the credentials of {SIM_SID} (401/20003) "
        "Fix: set DIALER_TWILIO_AUTH_TOKEN")
    assert "account" not in lines
    assert only(lines, "caller-id", "owned") == (
        "warn owned: not checked: the credentials check failed")
    assert only(lines, "campaigns") == (
        "fail no campaign named 'nosuch' Fix: see `dialer campaign list`.")
    assert [r.path for r in sim.trace] == [f"/2010-04-01/Accounts/{SIM_SID}.json"]


async def test_a_suspended_account_fails(pool: asyncpg.Pool, dsn: str, sim: SimServer) -> None:
    sim.config.account_status = "suspended"
    code, lines = await dialer_check(check_env(dsn, sim))
    assert code == 1
    assert only(lines, "credentials").startswith("ok")
    assert only(lines, "account").startswith(
        "fail suspended: Twilio refuses every call (20005 Account not active)")
    assert only(lines, "campaigns") == "ok no draft, running or paused campaign to check"


async def test_a_database_without_the_schema_fails(
    pg_cluster: Any, sim: SimServer
) -> None:
    admin = await asyncpg.connect(pg_cluster.dsn("postgres"))
    await admin.execute("DROP DATABASE IF EXISTS check_unmigrated")
    await admin.execute("CREATE DATABASE check_unmigrated")
    try:
        env = check_env(pg_cluster.dsn("check_unmigrated"), sim)
        del env["DIALER_TWILIO_AUTH_TOKEN"]
        code, lines = await dialer_check(env)
    finally:
        await admin.execute("DROP DATABASE check_unmigrated WITH (FORCE)")
        await admin.close()
    versions = [migration.version for migration in db.load_migrations()]
    assert code == 1 and len(versions) >= 3
    assert only(lines, "database").startswith(
        f"fail reachable, but the schema lacks migrations {versions} Fix: run `dialer migrate`.")
    assert only(lines, "credentials").startswith("fail DIALER_TWILIO_ACCOUNT_SID and")
    assert only(lines, "campaigns") == "warn not checked: the database is not usable"
    assert only(lines, "public-url").startswith("warn not checked")

    gone = check_env(f"postgresql://nobody@127.0.0.1:{free_port()}/none", sim)
    code, lines = await dialer_check(gone)
    assert code == 1 and only(lines, "database").startswith("fail cannot connect: ")


@pytest.mark.parametrize(("path", "verdict", "text"), [
    ("/reminder.xml", "ok", "is TwiML"),
    ("/moved", "ok", "is TwiML"),
    ("/missing.xml", "fail", "answered 404 to a GET"),
    ("/page.html", "fail", "has root element <html>, not <Response>"),
    ("/hello.txt", "fail", "is not well-formed XML"),
    ("/huge.xml", "fail", f"answers more than {preflight.MAX_BODY} bytes"),
])
async def test_what_a_twiml_url_answers(pool: asyncpg.Pool, twiml_host: TwimlHost, path: str,
                                        verdict: str, text: str) -> None:
    campaign_id = await make_campaign(pool, "c", [], twiml=None,
                                      twiml_url=twiml_host.base_url + path)
    row = await pool.fetchrow("SELECT * FROM campaigns WHERE id = $1", campaign_id)
    async with httpx.AsyncClient() as http:
        probe = preflight.Preflight(daemon_settings("http://127.0.0.1:9", cps=1), client=None,
                                    http=http, database=pool)
        finding = await probe.twiml(Campaign.from_row(row))
    assert (finding.verdict.value, finding.subject) == (verdict, "c")
    assert text in finding.message, finding.message


async def test_another_server_answering_at_the_public_url_fails(
    pool: asyncpg.Pool, twiml_host: TwimlHost
) -> None:
    """A /healthz that answers, and even names a dialer worker, but not one registered
    in this database (another host, another installation): Twilio's callbacks would go
    there."""
    await pool.execute("INSERT INTO workers (id, hostname, pid) VALUES ('here:1:ab', 'here', 1)")
    settings = daemon_settings("http://127.0.0.1:9", cps=1,
                               public_base_url=f"{twiml_host.base_url}/imposter")
    async with httpx.AsyncClient() as http:
        probe = preflight.Preflight(settings, client=None, http=http, database=pool)
        imposter = await probe.public_url()
        await pool.execute("UPDATE workers SET id = 'imposter:1:aa'")
        registered = await probe.public_url()
        await pool.execute("UPDATE workers SET heartbeat_at = now() - interval '1 hour'")
        stale = await probe.public_url()
    assert imposter.verdict is Verdict.FAIL
    assert "answered by worker imposter:1:aa, which is no daemon running" in imposter.message
    assert registered.verdict is Verdict.OK
    assert stale.verdict is Verdict.WARN and "no daemon runs" in stale.message


# ---- dialer run ------------------------------------------------------------------------

def run_env(dsn: str, sim: SimServer, **extra: str) -> dict[str, str]:
    port = free_port()
    return check_env(dsn, sim, DIALER_CALLBACK_BIND=f"127.0.0.1:{port}",
                     DIALER_PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
                     DIALER_LOG_FORMAT="json", DIALER_LOG_LEVEL="info", **extra)


async def test_dialer_run_refuses_to_start_on_refused_credentials(
    pool: asyncpg.Pool, dsn: str, sim: SimServer
) -> None:
    campaign = await make_campaign(pool, "owned", ["+14155551001"], from_number=OWNED)
    done = await asyncio.to_thread(
        run_cli, "run", env=run_env(dsn, sim, DIALER_TWILIO_AUTH_TOKEN="rotated-away"))
    assert done.returncode == 2, done.stderr
    events = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    refused = [e for e in events if e["event"] == "start_refused"]
    assert refused and "(401/20003)" in refused[0]["reason"]
    assert "rotated-away" not in done.stderr
    # Nothing was started: no worker row, no call, the contact untouched.
    assert await pool.fetchval("SELECT count(*) FROM workers") == 0
    assert [r.method for r in sim.trace] == ["GET"]
    assert await pool.fetchval("SELECT state FROM contacts WHERE campaign_id = $1",
                               campaign) == "pending"


async def test_dialer_run_logs_the_checks_at_start_and_goes_on(
    pool: asyncpg.Pool, dsn: str, sim: SimServer
) -> None:
    """A campaign whose caller ID the account does not own: the daemon starts, logs the
    fail as a warning with the other checks, and dials (Twilio would refuse the calls;
    the simulator does not check From)."""
    campaign = await make_campaign(pool, "stranger", ["+14155551001"], from_number=STRANGER,
                                   timezone="America/New_York")
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen([sys.executable, "-m", "dialer.cli", "run"],
                                env=clean_env(run_env(dsn, sim)), stdout=subprocess.DEVNULL,
                                stderr=log)
        try:
            checks: dict[str, dict[str, Any]] = {}
            deadline = time.monotonic() + 60
            while "compliance" not in checks or not await dialed(pool, campaign):
                assert proc.poll() is None and time.monotonic() < deadline, "no start checks"
                await asyncio.sleep(0.2)
                log.seek(0)
                for line in log.read().decode().splitlines():
                    event = json.loads(line)
                    if event["event"] == "start_check":
                        checks[event["check"]] = event
        finally:
            stop_process(proc)
    assert (checks["credentials"]["verdict"], checks["credentials"]["level"]) == ("ok", "info")
    assert checks["account"]["verdict"] == "ok"
    caller_id = checks["caller-id"]
    assert (caller_id["verdict"], caller_id["level"], caller_id["campaign"]) == (
        "fail", "warning", "stranger")
    assert "21210" in caller_id["detail"] and "--from" in caller_id["fix"]
    assert checks["public-url"]["verdict"] == "ok"
    assert {"twiml", "cps"} <= checks.keys()
    assert proc.returncode == 0


async def dialed(pool: asyncpg.Pool, campaign_id: int) -> bool:
    return bool(await pool.fetchval(
        "SELECT count(*) FROM call_attempts WHERE campaign_id = $1", campaign_id))
