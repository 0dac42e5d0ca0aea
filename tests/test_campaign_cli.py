"""``dialer campaign ...``: every option reaches the row, bad values are named, state
changes are guarded and wake the daemon (NOTIFY dialer_campaigns)."""

from __future__ import annotations

import asyncio
import datetime as dt
import subprocess

import asyncpg
import pytest

from dialer import cli
from dialer.campaigns import Campaign
from dialer.policy import AmdMode, MachinePolicy, RetryPolicy
from dialer.testing import run_cli

ACCOUNT = "AC" + "ab" * 16
BASE = ("--from", "+14155552671", "--twiml-url", "https://example.com/twiml")

EVERY_OPTION = (
    "--from", "(415) 555-2671", "--twiml", "<Response><Say>Hi</Say></Response>",
    "--weight", "3", "--max-concurrent", "5", "--ring-timeout", "25",
    "--amd", "detectmessageend", "--amd-async", "--machine-policy", "voicemail",
    "--unknown-is-machine", "--busy-delay", "2m", "--no-answer-delay", "1h",
    "--failed-delay", "15m", "--machine-delay", "2h", "--canceled-delay", "90",
    "--backoff", "1.5", "--jitter", "0.2", "--max-attempts", "5",
    "--calendar", "mon-fri 09:00-12:00,13:00-20:00; sat 10:00-14:00",
    "--blackout", "2026-12-24,2026-12-31..2027-01-01", "--start-at", "2026-12-01T09:00-05:00",
    "--end-at", "2027-02-01T00:00Z", "--last-call-margin", "2m", "--rules", "us-tcpa,us-states",
    "--timezone", "America/Chicago", "--cap", "2/24h, 5/7d/number", "--subject", "collections",
    "--subject-column", "debt id", "--quiet-after-human", "7d", "--opt-out-digit", "9",
    "--opt-out-scope", "campaign", "--opt-out-message", "We will not call again.",
)


def env(dsn: str, **extra: str) -> dict[str, str]:
    return {"DIALER_DATABASE_URL": dsn, "DIALER_TWILIO_ACCOUNT_SID": ACCOUNT,
            "DIALER_TWILIO_CPS": "7", **extra}


async def cli_async(*args: str, dsn: str, **extra: str) -> subprocess.CompletedProcess[str]:
    """The real CLI in a thread, so this loop keeps receiving notifications meanwhile."""
    return await asyncio.to_thread(run_cli, *args, env=env(dsn, **extra))


async def load(pool: asyncpg.Pool, name: str) -> Campaign:
    row = await pool.fetchrow("SELECT * FROM campaigns WHERE name = $1", name)
    assert row is not None
    return Campaign.from_row(row)


async def test_create_with_every_option_then_show(pool: asyncpg.Pool, dsn: str) -> None:
    done = await cli_async("campaign", "create", "spring", *EVERY_OPTION, dsn=dsn)
    assert done.returncode == 0, done.stderr
    assert "campaign spring created" in done.stdout

    campaign = await load(pool, "spring")
    spec = campaign.spec
    assert campaign.state == "draft" and campaign.account_sid == ACCOUNT
    assert spec.from_number == "+14155552671"
    assert spec.twiml == "<Response><Say>Hi</Say></Response>" and spec.twiml_url is None
    assert (spec.weight, spec.max_concurrent, spec.ring_timeout) == (3, 5, 25)
    assert spec.amd_mode is AmdMode.DETECT_MESSAGE_END and spec.amd_async
    assert spec.machine_policy is MachinePolicy.VOICEMAIL and spec.unknown_is_machine
    assert spec.retry == RetryPolicy(
        max_attempts=5, busy_delay=dt.timedelta(minutes=2), no_answer_delay=dt.timedelta(hours=1),
        failed_delay=dt.timedelta(minutes=15), machine_delay=dt.timedelta(hours=2),
        canceled_delay=dt.timedelta(seconds=90), backoff=1.5, jitter=0.2,
    )
    assert str(spec.calendar) == "mon-fri 09:00-12:00,13:00-20:00; sat 10:00-14:00"
    assert spec.blackout_dates == {dt.date(2026, 12, 24), dt.date(2026, 12, 31),
                                   dt.date(2027, 1, 1)}
    assert spec.start_at == dt.datetime(2026, 12, 1, 14, 0, tzinfo=dt.UTC)
    assert spec.end_at == dt.datetime(2027, 2, 1, 0, 0, tzinfo=dt.UTC)
    assert (spec.last_call_margin, spec.rule_packs) == (120, ("us-tcpa", "us-states"))
    assert spec.default_timezone == "America/Chicago"
    assert [str(cap) for cap in spec.caps] == ["2/24h", "5/7d/number"]
    assert (spec.subject, spec.subject_column) == ("collections", "debt id")
    assert spec.quiet_after_human == dt.timedelta(days=7)
    assert (spec.opt_out_digit, spec.opt_out_scope.value, spec.opt_out_message) == (
        "9", "campaign", "We will not call again.")
    assert "starts by itself at" in done.stdout
    # The inline TwiML has no ${opt_out_url}: the operator is told how to offer the key.
    assert "the TwiML does not use ${opt_out_url}" in done.stdout
    account = await pool.fetchrow("SELECT cps, max_concurrent_calls FROM accounts")
    assert account is not None
    assert (account["cps"], account["max_concurrent_calls"]) == (7.0, None)

    await pool.execute(
        "INSERT INTO contacts (campaign_id, phone, state, reason) VALUES"
        " ($1, '+14155550100', 'pending', NULL), ($1, '+14155550101', 'skipped', 'dnc')",
        campaign.id,
    )
    shown = await cli_async("campaign", "show", "spring", dsn=dsn, COLUMNS="120")
    assert shown.returncode == 0, shown.stderr
    for text in ("DetectMessageEnd (async)", "voicemail", "mon-fri 09:00-12:00,13:00-20:00",
                 "2026-12-24,2026-12-31,2027-01-01", "2026-12-01T14:00:00+00:00", "120 s",
                 "us-tcpa@", "us-states@", "America/Chicago", "0:01:30", "x1.5",
                 "2/24h, 5/7d/number", "collections + column debt id", "7d",
                 "9 (campaign list): We will not call again."):
        assert text in shown.stdout
    lines = {line.split("│")[1].strip(): line for line in shown.stdout.splitlines()
             if line.count("│") == 3}
    assert lines["pending"].split("│")[2].strip() == "1"
    assert lines["skipped"].split("│")[2].strip() == "1"
    assert lines["total"].split("│")[2].strip() == "2"

    listed = await cli_async("campaign", "list", dsn=dsn, COLUMNS="120")
    assert "spring" in listed.stdout and "draft" in listed.stdout


async def test_defaults_and_duplicate_name(pool: asyncpg.Pool, dsn: str) -> None:
    assert (await cli_async("campaign", "create", "a", *BASE, dsn=dsn)).returncode == 0
    spec = (await load(pool, "a")).spec
    assert spec.retry == RetryPolicy() and str(spec.calendar) == "mon-fri 09:00-20:00"
    assert (spec.default_timezone, spec.rule_packs, spec.last_call_margin) == (None, (), 60)
    assert (spec.blackout_dates, spec.start_at, spec.end_at) == (frozenset(), None, None)
    created = await cli_async("campaign", "create", "b", *BASE, dsn=dsn)
    # The operator is told what no default zone and no rule packs mean.
    assert "contacts whose number gives no zone" in created.stdout
    assert "no rule packs" in created.stdout
    again = await cli_async("campaign", "create", "a", *BASE, dsn=dsn)
    assert again.returncode == 1 and "already exists" in again.stderr


async def test_create_needs_the_account_sid(dsn: str) -> None:
    done = await asyncio.to_thread(
        run_cli, "campaign", "create", "a", *BASE, env={"DIALER_DATABASE_URL": dsn}
    )
    assert done.returncode == 2  # configuration
    assert "DIALER_TWILIO_ACCOUNT_SID must be set" in done.stderr


# Validation happens before the database is touched, so these run in-process.
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--from", "12", "--twiml-url", "https://x.test/t"), "--from: invalid number '12'"),
        (("--from", "+15551234567", "--twiml-url", "https://x.test/t"), "--from: invalid"),
        ((*BASE, "--hours", "21:00-09:00"), "--hours: end (09:00) must be after start"),
        ((*BASE, "--hours", "9am-5pm"), "--hours: bad time"),
        ((*BASE, "--days", "mon-funday"), "--days: unknown weekday"),
        ((*BASE, "--calendar", "mon-fri"), "--calendar: bad calendar part"),
        ((*BASE, "--calendar", "sat 9-17", "--days", "sat"), "--calendar replaces --hours"),
        ((*BASE, "--blackout", "2026-02-30"), "--blackout: bad date"),
        ((*BASE, "--start-at", "2027-03-01T09:00"), "--start-at: '2027-03-01T09:00' has no time"),
        ((*BASE, "--end-at", "tomorrow"), "--end-at: 'tomorrow' is not an ISO-8601"),
        ((*BASE, "--start-at", "2027-03-02T00:00Z", "--end-at", "2027-03-01T00:00Z"),
         "end_at (--end-at) must be after start_at"),
        ((*BASE, "--last-call-margin", "2h"), "--last-call-margin: Input should be less"),
        ((*BASE, "--rules", "us-tcpa,eu-gdpr"), "--rules: unknown rule pack 'eu-gdpr'"),
        ((*BASE, "--timezone", "Mars/Olympus"), "--timezone: unknown time zone 'Mars/Olympus'"),
        ((*BASE, "--weight", "0"), "--weight: Input should be greater than or equal to 1"),
        ((*BASE, "--ring-timeout", "3"), "--ring-timeout"),
        ((*BASE, "--max-concurrent", "lots"), "--max-concurrent: expected a number"),
        ((*BASE, "--max-concurrent", "0"), "--max-concurrent: Input should be greater than 0"),
        ((*BASE, "--busy-delay", "5 fortnights"), "--busy-delay: bad duration"),
        ((*BASE, "--machine-delay", "90d"), "--machine-delay: machine_delay must be between"),
        ((*BASE, "--max-attempts", "50"), "--max-attempts: max_attempts must be"),
        ((*BASE, "--backoff", "0.5"), "--backoff: backoff must be"),
        ((*BASE, "--jitter", "1.5"), "--jitter: jitter must be"),
        ((*BASE, "--amd-async"), "amd_async needs an AMD mode"),
        (("--from", "+14155552671", "--twiml-url", "ftp://x"), "--twiml-url: must be an http"),
        (("--from", "+14155552671", "--twiml", "x" * 4001), "--twiml: String should have at most"),
        ((*BASE, "--cap", "3/24x"), "--cap: bad cap '3/24x': bad duration"),
        ((*BASE, "--cap", "3/24h/person"), "--cap: bad cap '3/24h/person': after the period"),
        ((*BASE, "--quiet-after-human", "30s"),
         "--quiet-after-human: quiet period: '30s' must be from 1m to 90d"),
        ((*BASE, "--subject", "a b"), "--subject: use 1-100 letters, digits"),
        ((*BASE, "--subject-column", "x" * 201), "--subject-column: String should have at most"),
        ((*BASE, "--opt-out-digit", "99"), "--opt-out-digit: one key: 0-9, * or #"),
        ((*BASE, "--opt-out-message", "line\nbreak"),
         "--opt-out-message: must not contain control characters"),
        (("--from", "+14155552671", "--twiml",
          '<Response><Gather action="${opt_out_url}"/></Response>'),
         "${opt_out_url} needs an opt-out key (opt_out_digit, --opt-out-digit)"),
    ],
)
def test_bad_values_name_the_option(
    args: tuple[str, ...], message: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DIALER_TWILIO_ACCOUNT_SID", ACCOUNT)
    monkeypatch.setenv("DIALER_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    assert cli.main(["campaign", "create", "spring", *args]) == 2
    assert message in capsys.readouterr().err


def test_bad_name_is_explained(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DIALER_TWILIO_ACCOUNT_SID", ACCOUNT)
    assert cli.main(["campaign", "create", "no spaces please", *BASE]) == 2
    assert "NAME: use 1-100 letters" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args",
    [
        ("--from", "+14155552671"),  # neither --twiml-url nor --twiml
        ("--from", "+14155552671", "--twiml-url", "https://x.test/t", "--twiml", "<R/>"),
        ("--twiml-url", "https://x.test/t"),  # no --from
        (*BASE, "--weight", "heavy"),
        (*BASE, "--amd", "sometimes"),
        (*BASE, "--machine-policy", "shrug"),
        (*BASE, "--opt-out-scope", "household"),
    ],
)
def test_malformed_command_lines_are_usage_errors(
    args: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["campaign", "create", "spring", *args])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "see `dialer campaign create --help`" in err


async def test_transitions_notify_and_invalid_ones_are_refused(
    pool: asyncpg.Pool, dsn: str
) -> None:
    assert (await cli_async("campaign", "create", "spring", *BASE, dsn=dsn)).returncode == 0
    campaign_id = (await load(pool, "spring")).id
    heard: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(dsn)
    await listener.add_listener("dialer_campaigns", lambda *a: heard.put_nowait(a[3]))
    try:
        for verb, ok, state in [
            ("pause", False, "draft"),
            ("resume", False, "draft"),
            ("start", True, "running"),
            ("start", False, "running"),
            ("resume", False, "running"),
            ("pause", True, "paused"),
            ("pause", False, "paused"),
            ("resume", True, "running"),
            ("stop", True, "stopped"),
            ("start", False, "stopped"),
            ("resume", False, "stopped"),
            ("stop", False, "stopped"),
        ]:
            done = await cli_async("campaign", verb, "spring", dsn=dsn)
            assert (await load(pool, "spring")).state == state
            if ok:
                assert done.returncode == 0, done.stderr
                assert done.stdout.strip().endswith(f"-> {state}")
                assert await asyncio.wait_for(heard.get(), 5) == str(campaign_id)
            else:
                assert done.returncode == 1
                assert f"cannot {verb} campaign spring: it is {state}" in done.stderr
                assert heard.empty()
        assert "stopped is final" in done.stderr
    finally:
        await listener.close()

    # A completed campaign can be started again (for contacts imported afterwards).
    assert (await cli_async("campaign", "create", "later", *BASE, dsn=dsn)).returncode == 0
    await pool.execute("UPDATE campaigns SET state = 'completed' WHERE name = 'later'")
    assert (await cli_async("campaign", "start", "later", dsn=dsn)).returncode == 0
    missing = await cli_async("campaign", "pause", "nope", dsn=dsn)
    assert missing.returncode == 1 and "no campaign named 'nope'" in missing.stderr


async def test_edit_merges_validates_and_notifies(pool: asyncpg.Pool, dsn: str) -> None:
    created = await cli_async(
        "campaign", "create", "spring", *BASE, "--max-concurrent", "4", "--canceled-delay", "1m",
        dsn=dsn,
    )
    assert created.returncode == 0, created.stderr
    before = await load(pool, "spring")
    heard: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(dsn)
    await listener.add_listener("dialer_campaigns", lambda *a: heard.put_nowait(a[3]))
    try:
        done = await cli_async(
            "campaign", "edit", "spring", "--weight", "9", "--hours", "8-24", "--twiml", "<R/>",
            "--max-concurrent", "none", "--canceled-delay", "none", "--no-answer-delay", "45m",
            dsn=dsn,
        )
        assert done.returncode == 0, done.stderr
        assert await asyncio.wait_for(heard.get(), 5) == str(before.id)
    finally:
        await listener.close()
    spec = (await load(pool, "spring")).spec
    assert spec.weight == 9 and spec.max_concurrent is None
    assert str(spec.calendar) == "mon-fri 08:00-24:00"  # --hours keeps the days
    assert spec.twiml == "<R/>" and spec.twiml_url is None
    assert spec.retry.canceled_delay is None
    assert spec.retry.no_answer_delay == dt.timedelta(minutes=45)
    assert spec.retry.busy_delay == before.spec.retry.busy_delay  # untouched
    assert spec.from_number == before.spec.from_number

    bad = await cli_async("campaign", "edit", "spring", "--amd-async", dsn=dsn)
    assert bad.returncode == 2 and "amd_async needs an AMD mode" in bad.stderr
    same = await cli_async("campaign", "edit", "spring", "--weight", "9", dsn=dsn)
    assert same.returncode == 0 and "nothing changed" in same.stdout
    assert (await load(pool, "spring")).spec == spec


async def test_edit_of_calling_time_decides_location_skips_again(
    pool: asyncpg.Pool, dsn: str
) -> None:
    created = await cli_async("campaign", "create", "spring", *BASE, "--calendar",
                              "mon-fri 09:00-12:00,13:00-20:00; sat 10:00-14:00", dsn=dsn)
    assert created.returncode == 0, created.stderr
    campaign_id = (await load(pool, "spring")).id
    await pool.execute(
        "INSERT INTO contacts (campaign_id, phone, state, reason) VALUES"
        " ($1, '+61412345678', 'skipped', 'no common calling time: its zones ...'),"
        " ($1, '+881612345678', 'skipped', 'no time zone: the number gives none ...'),"
        " ($1, '+14155550101', 'skipped', 'dnc')", campaign_id)
    # --days alone cannot say which of the calendar's hours it means.
    unclear = await cli_async("campaign", "edit", "spring", "--days", "mon-sat", dsn=dsn)
    assert unclear.returncode == 2 and "different hours on different days" in unclear.stderr
    done = await cli_async("campaign", "edit", "spring", "--calendar", "all 08:00-21:00",
                           "--timezone", "Pacific/Auckland", dsn=dsn)
    assert done.returncode == 0, done.stderr
    assert "2 contacts skipped for their location are decided again" in done.stdout
    states = {r["phone"]: (r["state"], r["reason"]) for r in await pool.fetch(
        "SELECT phone, state, reason FROM contacts WHERE campaign_id = $1", campaign_id)}
    assert states == {"+61412345678": ("pending", None), "+881612345678": ("pending", None),
                      "+14155550101": ("skipped", "dnc")}
    # A change that leaves calling time alone requeues nothing.
    other = await cli_async("campaign", "edit", "spring", "--weight", "2", dsn=dsn)
    assert other.returncode == 0 and "decided again" not in other.stdout
    cleared = await cli_async("campaign", "edit", "spring", "--timezone", "none", "--rules",
                              "us-tcpa", dsn=dsn)
    assert cleared.returncode == 0, cleared.stderr
    spec = (await load(pool, "spring")).spec
    assert (spec.default_timezone, spec.rule_packs) == (None, ("us-tcpa",))
