"""``dialer why``: each kind of rule, allowed and blocked, as an operator reads it."""

from __future__ import annotations

import asyncio
import datetime as dt

import asyncpg
import pytest

from dialer import cli, repository
from dialer.campaigns import CampaignSpec
from dialer.testing import run_cli
from dialer.windows import parse_weekly

ACCOUNT = "AC" + "cd" * 16
OKLAHOMA, ALABAMA, LISTED, SPENT, AUSSIE, SOMEWHERE = (
    "+14055550100", "+12515550100", "+14155552671", "+14155552672", "+61412345678",
    "+881612345678")


async def make_why_campaign(pool: asyncpg.Pool, name: str = "why", **spec: object) -> int:
    values: dict[str, object] = {
        "name": name, "from_number": "+15005550006", "twiml_url": "https://example.com/t",
        "calendar": parse_weekly("mon-fri 09:00-20:00; sat 10:00-14:00"),
        "blackout_dates": frozenset({dt.date(2026, 12, 24)}),
        "rule_packs": ("us-tcpa", "us-states"),
    }
    values.update(spec)
    await repository.upsert_account(pool, ACCOUNT, 1.0, None)
    campaign_id = await repository.insert_campaign(
        pool, CampaignSpec.model_validate(values).to_row(), ACCOUNT)
    assert campaign_id is not None
    await pool.executemany(
        "INSERT INTO contacts (campaign_id, phone, zones, zone_source, states, state_sources,"
        " state, reason, attempts) VALUES ($1, $2, $3, 'number', $4, $5, $6, $7, $8)",
        [(campaign_id, OKLAHOMA, ["America/Chicago"], ["OK"], ["number"], "pending", None, 0),
         (campaign_id, ALABAMA, ["America/Chicago"], ["AL"], ["number"], "pending", None, 0),
         (campaign_id, LISTED, ["America/Los_Angeles"], ["CA"], ["number"], "pending", None, 0),
         (campaign_id, SPENT, ["America/Los_Angeles"], ["CA"], ["number"], "failed",
          "busy after 3 attempts", 3),
         (campaign_id, AUSSIE, ["Australia/Perth", "Australia/Sydney"], [], [], "pending", None,
          0),
         (campaign_id, SOMEWHERE, [], [], [], "pending", None, 0)])
    await repository.dnc_add(pool, LISTED, None, "asked on the phone", source="cli")
    return campaign_id


@pytest.fixture
async def why_db(pool: asyncpg.Pool, dsn: str, monkeypatch: pytest.MonkeyPatch) -> str:
    await make_why_campaign(pool)
    monkeypatch.setenv("DIALER_DATABASE_URL", dsn)
    return dsn


async def why(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """The real command in a thread (this test's loop keeps running), its output."""
    code = await asyncio.to_thread(cli.main, ["why", *args])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def rows(output: str, kind: str, name: str = "") -> list[str]:
    """The verdict lines of a kind of check: "  allowed  <kind>  <name>  <detail>"."""
    found = [line for line in output.splitlines()
             if line.startswith(("  allowed", "  BLOCKED")) and f"  {kind}  " in line
             and name in line]
    assert found, (kind, name, output)
    return found


def blocked(output: str, kind: str, name: str = "") -> str:
    [line] = rows(output, kind, name)
    assert line.startswith("  BLOCKED"), line
    return line


def allowed(output: str, kind: str, name: str = "") -> str:
    found = rows(output, kind, name)
    assert all(line.startswith("  allowed") for line in found), found
    return found[0]


async def test_everything_allowed_and_the_next_times(
    why_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = await why(capsys, "why", OKLAHOMA, "--at", "2026-12-02T10:00-06:00")
    assert code == 0, out
    assert "zones:  America/Chicago (number)" in out and "states: OK (number)" in out
    assert "local:  Wed 2026-12-02 10:00 America/Chicago" in out
    assert "rule packs: us-tcpa@" in out and "us-states@" in out
    for kind in ("contact", "dnc", "attempts", "calendar", "range", "federal hours"):
        allowed(out, kind)
    assert "[47 CFR 64.1200(c)(1); verified-secondary]" in allowed(out, "federal hours")
    allowed(out, "state hours", "Oklahoma hours")
    allowed(out, "state hours", "Oklahoma automated")
    assert "verdict: may be called at 2026-12-02 16:00:00 UTC" in out
    # From now until Oklahoma's 20:00 close less the margin, then Thursday 09:00.
    assert ("from 2026-12-02 16:00:00 UTC until 2026-12-03 01:59:00 UTC  "
            "(Wed 10:00 America/Chicago)") in out
    assert "from 2026-12-03 15:00:00 UTC until" in out


async def test_range_and_state_hours_blocked(why_db: str, capsys: pytest.CaptureFixture[str]
                                            ) -> None:
    # 08:30 CST: before the calendar's 09:00 and Oklahoma's automated-call 09:00.
    code, out = await why(capsys, "why", OKLAHOMA, "--at", "2026-12-02T14:30Z")
    assert code == 0, out
    line = blocked(out, "range", "campaign calendar")
    assert "Wed 2026-12-02 08:30 in America/Chicago: outside 09:00-20:00" in line
    line = blocked(out, "state hours", "Oklahoma automated calls")
    assert "outside 09:00-21:00" in line and "[15 O.S. 755.1(C)(2); verified]" in line
    allowed(out, "state hours", "Oklahoma hours 08:00-20:00")
    allowed(out, "federal hours")
    assert "verdict: may not be called" in out
    assert "from 2026-12-02 15:00:00 UTC" in out


async def test_calendar_days_and_schedule_blocked(
    pool: asyncpg.Pool, why_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Sunday: not a calendar day.
    _, out = await why(capsys, "why", OKLAHOMA, "--at", "2026-12-06T12:00-06:00")
    assert "not a calling day: Sun 2026-12-06 12:00 in America/Chicago" in blocked(
        out, "calendar", "campaign days")
    # A campaign that starts next week.
    await make_why_campaign(pool, "later", start_at=dt.datetime(2026, 12, 7, 15, 0, tzinfo=dt.UTC))
    _, out = await why(capsys, "later", OKLAHOMA, "--at", "2026-12-02T10:00-06:00")
    assert "not started: runs 2026-12-07T15:00:00+00:00 to no end" in blocked(
        out, "calendar", "campaign start and end")
    assert "from 2026-12-07 15:00:00 UTC" in out


async def test_blackout_holiday_and_margin_blocked(
    why_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out = await why(capsys, "why", OKLAHOMA, "--at", "2026-12-24T12:00-06:00")
    assert "Thu 2026-12-24 12:00 in America/Chicago: a blackout date" in blocked(out, "blackout")
    _, out = await why(capsys, "why", ALABAMA, "--at", "2026-12-25T12:00-06:00")
    line = blocked(out, "holiday", "Alabama")
    assert "Christmas Day" in line and "r. 770-X-5-.17(1)(b)" in line
    allowed(out, "blackout")
    # 19:59:30 Central on a weekday: open, but it closes within the 60 s margin.
    _, out = await why(capsys, "why", ALABAMA, "--at", "2026-12-02T19:59:30-06:00")
    allowed(out, "range", "campaign calendar")
    assert "less than 60 s later" in blocked(out, "range", "last-call margin")
    # Alabama's Sunday ban (a Saturday is a calendar day; the next Sunday is not).
    _, out = await why(capsys, "why", ALABAMA, "--at", "2026-12-06T12:00-06:00")
    blocked(out, "day ban", "Alabama: no calls on Sundays")


async def test_dnc_attempts_and_zones(why_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    _, out = await why(capsys, "why", LISTED, "--at", "2026-12-02T12:00-08:00")
    assert "listed: asked on the phone (global list, cli)" in blocked(out, "dnc")
    assert "next times" not in out and "verdict: may not be called" in out
    _, out = await why(capsys, "why", SPENT, "--at", "2026-12-02T12:00-08:00")
    assert "3 of 3 used, 0 left" in blocked(out, "attempts")
    assert "final: busy after 3 attempts" in blocked(out, "contact")
    # 00:30 UTC is 11:30 in Sydney but 08:30 in Perth: the row names the zone that blocks.
    _, out = await why(capsys, "why", AUSSIE, "--at", "2026-12-02T00:30Z")
    assert "zones:  Australia/Perth, Australia/Sydney (number)" in out
    line = blocked(out, "range", "campaign calendar")
    assert "in Australia/Perth: outside 09:00-20:00" in line and "Sydney" not in line
    _, out = await why(capsys, "why", SOMEWHERE, "--at", "2026-12-02T12:00Z")
    assert "the number gives none and the campaign has no default" in blocked(out, "zone")


async def test_usage_errors_name_what_is_wrong(
    why_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for args, exit_code, message in (
        (("nope", OKLAHOMA), 1, "no campaign named 'nope'"),
        (("why", "+14155550199"), 1, "no contact +14155550199 in campaign why"),
        (("why", "12"), 2, "PHONE: invalid number '12'"),
        (("why", OKLAHOMA, "--at", "2026-12-02 10:00"), 2, "has no time zone"),
        (("why", OKLAHOMA, "--at", "noon"), 2, "is not an ISO-8601"),
    ):
        code, out = await why(capsys, *args)
        assert code == exit_code and message in out, (args, out)


async def test_the_real_cli(pool: asyncpg.Pool, dsn: str) -> None:
    await make_why_campaign(pool)
    done = await asyncio.to_thread(run_cli, "why", "why", "(405) 555-0100", "--at",
                                   "2026-12-02T14:30Z", env={"DIALER_DATABASE_URL": dsn})
    assert done.returncode == 0, done.stderr
    assert "contact +14055550100" in done.stdout and "BLOCKED" in done.stdout


async def test_state_caps_and_an_expiring_entry(
    pool: asyncpg.Pool, why_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    at = dt.datetime(2026, 12, 2, 16, 0, tzinfo=dt.UTC)  # 10:00 in Oklahoma City
    other = await make_why_campaign(pool, "other", subject="billing")
    contact_id = await pool.fetchval(
        "SELECT id FROM contacts WHERE campaign_id = $1 AND phone = $2", other, OKLAHOMA)
    for hours in (1, 2, 3):  # three calls in the last 24 hours, on another subject
        attempt_id = await pool.fetchval(
            "INSERT INTO call_attempts (contact_id, campaign_id, attempt_no, requested_at, "
            "state, call_sid, call_status, outcome, final_at) VALUES ($1, $2, $3::int, $4, "
            "'final', 'CA' || md5($3::int::text), 'busy', 'busy', $4) RETURNING id",
            contact_id, other, hours, at - dt.timedelta(hours=hours))
        await pool.execute(
            "INSERT INTO attempt_compliance (attempt_id, decided_at, zones, zone_source, states,"
            " state_sources, local_times, rule_packs, rules, open_until, phone, subject) VALUES"
            " ($1, $2, '{America/Chicago}', 'number', '{OK}', '{number}', '{x}', '{}', '{}', $2,"
            " $3, 'billing')", attempt_id, at - dt.timedelta(hours=hours), OKLAHOMA)
    _, out = await why(capsys, "why", OKLAHOMA, "--at", at.isoformat())
    line = blocked(out, "cap", "Oklahoma")
    assert "3 of 3 in the last 24h (calls to the number, any subject)" in line
    assert "allows a call again at 2026-12-03 13:00:00 UTC" in line
    assert "[15 O.S. 775C.1 et seq." in line and "partial]" in line
    assert "subject: the shared subject (no campaign subject)" in out
    # The next times start once the cap allows a call, in Oklahoma's hours (09:00 CST).
    assert "from 2026-12-03 15:00:00 UTC until" in out
    # Alabama has no state cap; a campaign's own cap counts on the subject only.
    _, out = await why(capsys, "why", ALABAMA, "--at", at.isoformat())
    assert "  cap  " not in out
    # A do-not-call entry that expires blocks until then, not after.
    await pool.execute("UPDATE dnc_numbers SET expires_at = '2026-12-03T00:00Z'")
    _, out = await why(capsys, "why", LISTED, "--at", "2026-12-02T12:00-08:00")
    assert "until 2026-12-03 00:00 UTC" in blocked(out, "dnc")
    _, out = await why(capsys, "why", LISTED, "--at", "2026-12-03T12:00-08:00")
    assert "not listed" in allowed(out, "dnc")
