"""Acceptance: a subject from a CSV column caps two debts of one person apart, and the
quiet period after a human answer holds; `dialer why` names the caps and when each
allows a call again. Campaigns and contacts through the real CLI, calls by the daemon
against the simulator."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import asyncpg
import pytest

from dialer import cli
from dialer.sim.server import SimServer
from dialer.sim.trace import creates
from dialer.testing import (
    SIM_SID,
    campaign_completed,
    daemon_settings,
    running_daemon,
    sim_config,
    wait_until,
)

ANN, BOB = "+14155558010", "+14155558020"  # the simulator's humans
COLLECTIONS = ("--subject", "collections", "--subject-column", "debt_id",
               "--quiet-after-human", "7d", "--calendar", "all 00:00-24:00",
               "--from", "+15005550006", "--twiml-url", "https://example.com/collect")


async def operator(*args: str) -> None:
    """The real command, in this process (in a thread: this test's loop keeps running)."""
    assert await asyncio.to_thread(cli.main, list(args)) == 0


async def campaign(tmp_path: Path, name: str, rows: list[tuple[str, str]],
                   cap: str = "1/24h") -> None:
    await operator("campaign", "create", name, "--cap", cap, *COLLECTIONS)
    path = tmp_path / f"{name}.csv"
    path.write_text("phone,debt_id,name\n" + "".join(f"{p},{d},x\n" for p, d in rows))
    await operator("import", name, str(path))


async def ids(pool: asyncpg.Pool, *names: str) -> list[int]:
    return [await pool.fetchval("SELECT id FROM campaigns WHERE name = $1", n) for n in names]


async def conversation_end(pool: asyncpg.Pool, name: str, phone: str) -> dt.datetime:
    ended: dt.datetime = await pool.fetchval(
        "SELECT a.final_at FROM call_attempts a JOIN contacts k ON k.id = a.contact_id "
        "JOIN campaigns c ON c.id = k.campaign_id WHERE c.name = $1 AND k.phone = $2 "
        "AND a.outcome = 'completed'", name, phone)  # answered, AMD off: a conversation
    return ended


async def waiting_until(pool: asyncpg.Pool, name: str, phone: str) -> dt.datetime:
    row = await pool.fetchrow(
        "SELECT k.state, k.next_attempt_at FROM contacts k JOIN campaigns c "
        "ON c.id = k.campaign_id WHERE c.name = $1 AND k.phone = $2", name, phone)
    assert row is not None and row["state"] == "pending"
    value: dt.datetime = row["next_attempt_at"]
    return value


async def test_two_debts_apart_and_the_quiet_period_holds(
        dsn: str, pool: asyncpg.Pool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DIALER_DATABASE_URL", dsn)
    monkeypatch.setenv("DIALER_TWILIO_ACCOUNT_SID", SIM_SID)
    await campaign(tmp_path, "debt-a", [(ANN, "A-100")])
    await campaign(tmp_path, "debt-b", [(ANN, "B-200")])
    await campaign(tmp_path, "debt-a-again", [(ANN, "A-100"), (BOB, "A-100")])
    # Room under the cap, but a conversation on the debt a moment before.
    await campaign(tmp_path, "debt-b-roomy", [(ANN, "B-200")], cap="5/24h")
    capsys.readouterr()
    first, second, again, roomy = await ids(pool, "debt-a", "debt-b", "debt-a-again",
                                            "debt-b-roomy")
    async with SimServer(sim_config()) as sim:
        settings = daemon_settings(sim.base_url, cps=50)
        async with running_daemon(settings, dsn):
            await start(pool, first, second)
            for campaign_id in (first, second):
                await wait_until(lambda c=campaign_id: campaign_completed(pool, c),
                                 timeout=30, what="both debts called")
            await start(pool, again, roomy)
            await wait_until(lambda: _bob_called(pool, again), timeout=30,
                             what="Bob's call")
            await asyncio.sleep(1.0)  # a few claims more: Ann must still not be called
    # Two debts of one person: both called, once each; Bob's debt A-100 is his own.
    assert sorted(r.params["To"][0] for r in creates(sim.trace)) == sorted([ANN, ANN, BOB])
    subjects = await pool.fetch(
        "SELECT r.phone, r.subject FROM attempt_compliance r ORDER BY r.attempt_id")
    assert sorted((r["phone"], r["subject"]) for r in subjects) == sorted([
        (ANN, "collections#A-100"), (ANN, "collections#B-200"), (BOB, "collections#A-100")])
    # Ann's debt A-100 again: capped (1/24h) and quiet (7 days after the conversation);
    # she waits for the later of the two. Her debt B-200 has room under its cap, and
    # waits for the quiet period alone.
    a_ended = await conversation_end(pool, "debt-a", ANN)
    b_ended = await conversation_end(pool, "debt-b", ANN)
    assert abs(await waiting_until(pool, "debt-a-again", ANN) - (a_ended + dt.timedelta(days=7))
               ) < dt.timedelta(seconds=1)
    assert abs(await waiting_until(pool, "debt-b-roomy", ANN) - (b_ended + dt.timedelta(days=7))
               ) < dt.timedelta(seconds=1)

    code = await asyncio.to_thread(cli.main, ["why", "debt-a-again", ANN])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "subject: subject 'collections#A-100'" in out
    [cap] = [line for line in out.splitlines() if "  cap  " in line]
    assert cap.startswith("  BLOCKED") and "1 of 1 in the last 24h" in cap
    assert "allows a call again at" in cap
    [quiet] = [line for line in out.splitlines() if "  quiet  " in line]
    assert quiet.startswith("  BLOCKED") and "12 CFR 1006.14(b)(2)(i)(B)" in quiet
    assert f"allows a call again at {a_ended + dt.timedelta(days=7):%Y-%m-%d %H:%M:%S} UTC" \
        in quiet
    assert "verdict: may not be called" in out


async def start(pool: asyncpg.Pool, *campaign_ids: int) -> None:
    await pool.execute("UPDATE campaigns SET state = 'running' WHERE id = ANY($1)",
                       list(campaign_ids))


async def _bob_called(pool: asyncpg.Pool, campaign_id: int) -> bool:
    state = await pool.fetchval(
        "SELECT state FROM contacts WHERE campaign_id = $1 AND phone = $2", campaign_id, BOB)
    return bool(state == "done")
