"""`dialer forecast`: the forecast made before the demo campaign started predicts how
long its real run took (first call to the end of the last) within 15 %, at the same CPS
and mix of outcomes; and the replay follows the campaign's rules: calling windows per
zone, contacts that can never be called, the retry policy and the concurrency limit."""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import json
from pathlib import Path

import asyncpg
import pytest

from dialer import cli, repository
from dialer.campaigns import Campaign
from dialer.forecast import CallTimes, Mix, for_campaign
from dialer.policy import RetryPolicy
from dialer.sim.scenario import DEFAULT_WEIGHTS
from dialer.testing import make_campaign
from dialer.windows import parse_weekly
from tests.conftest import DemoCampaign

MONDAY_UTC = dt.datetime(2026, 12, 7, 0, 0, tzinfo=dt.UTC)


def test_the_default_mix_is_the_simulators_weighted_scenario() -> None:
    mix, w = Mix(), DEFAULT_WEIGHTS
    machines = sum(v for k, v in w.items() if k.startswith("machine"))
    assert mix.human == pytest.approx(w["human"] + w["unknown"])  # unknown: a human here
    assert (mix.machine, mix.fax, mix.busy, mix.no_answer) == pytest.approx(
        (machines, w["fax"], w["busy"], w["no-answer"]))
    assert mix.failed + mix.failed_permanent == pytest.approx(w["failed"])
    assert mix.canceled == pytest.approx(w["canceled"])


def test_the_forecast_of_the_demo_is_within_15_percent_of_its_run(
        demo_run: DemoCampaign) -> None:
    predicted, took = demo_run.run.forecast.seconds, demo_run.run.seconds
    assert predicted is not None and took is not None
    attempts = demo_run.run.summary["attempts"]
    # The figures, for a failure on a loaded machine (the daemon skips the send slots
    # it wakes too late for, so the rate it reaches there falls short of the CPS).
    seen = f"forecast {predicted:.1f} s, run {took:.1f} s ({attempts / took:.1f} calls/s)"
    assert abs(predicted - took) <= 0.15 * took, seen
    assert abs(demo_run.run.forecast.attempts - attempts) <= 0.15 * attempts


async def _campaign(pool: asyncpg.Pool, name: str, phones: list[str], **spec: object
                    ) -> Campaign:
    await make_campaign(pool, name, phones, state="draft", **spec)
    row = await repository.campaign_by_name(pool, name)
    return Campaign.from_row(row)


async def test_windows_zones_never_reachable_retries_and_concurrency(
        pool: asyncpg.Pool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        dsn: str) -> None:
    # New York and Los Angeles landlines, an Australian mobile (8 zones that share no
    # minute of a 09:00-10:00 window) and a number on the do-not-call list.
    phones = [f"+1212555{i:04d}" for i in range(20)] + [f"+1213555{i:04d}" for i in range(10)]
    phones += ["+61412345678", "+12125559999"]
    retry = RetryPolicy(max_attempts=2, busy_delay=dt.timedelta(minutes=5),
                        no_answer_delay=dt.timedelta(minutes=5),
                        failed_delay=dt.timedelta(minutes=5), backoff=1.0, jitter=0.0)
    campaign = await _campaign(pool, "windows", phones, calendar=parse_weekly(
        "mon-fri 09:00-10:00"), retry=retry, max_concurrent=2)
    await repository.dnc_add(pool, "+12125559999", None, "asked")
    result = await for_campaign(
        pool, campaign, cps=1, start=MONDAY_UTC,
        mix=Mix(human=0.5, machine=0, fax=0, busy=0.5, no_answer=0, failed=0,
                failed_permanent=0),
        times=CallTimes(answer=5, talk=55))
    assert result.contacts == 31  # to call: the listed number is skipped already
    assert result.never["already skipped: dnc"] == 1
    assert sum(result.never.values()) == 2  # and the Australian mobile, by its zones
    new_york = result.zones["America/New_York"]
    los_angeles = result.zones["America/Los_Angeles"]
    assert new_york.opens_at == MONDAY_UTC.replace(hour=14)  # 09:00 EST
    assert los_angeles.opens_at == MONDAY_UTC.replace(hour=17)  # 09:00 PST
    assert result.first_call == MONDAY_UTC.replace(hour=14)
    # Calls last a minute and two may be in flight: two calls a minute, not the CPS.
    assert new_york.busiest_hour <= 2 * 60
    minutes = collections.Counter(h for h, _ in result.hourly)
    assert result.done + result.failed == 30 and result.left_at_end == 0
    assert 30 < result.attempts < 60  # half the first calls busy, retried once
    assert {h % 24 for h in minutes} <= {14, 17}  # every call inside its zone's window
    assert result.seconds is not None and result.seconds > 3 * 3600  # LA, 3 h later

    # The command prints the same, and its page carries the chart and the numbers.
    page = tmp_path / "forecast.html"
    monkeypatch.setenv("DIALER_DATABASE_URL", dsn)
    code = await asyncio.to_thread(cli.main, [
        "forecast", "windows", "--start", "2026-12-07", "--cps", "1", "--human", "0.5",
        "--machine", "0", "--fax", "0", "--busy", "0.5", "--no-answer", "0", "--failed", "0",
        "--failed-permanent", "0", "--answer-seconds", "5", "--talk-seconds", "55",
        "--html", str(page)])
    assert code == 0
    text = page.read_text("utf-8")
    data = json.loads(text.split('id="dialer-figures">')[1].split("</script>")[0])
    assert data["attempts"] == result.attempts and data["seconds"] == result.seconds
    assert "<svg" in text and "Forecast: calls per hour" in text


def test_shares_over_one_are_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["forecast", "any", "--human", "0.9", "--busy", "0.5"]) == 2
    assert "more than 1" in capsys.readouterr().err
