"""Calling time end to end: the real daemon, the simulator and Postgres, with the
daemon's clock injected. A number that may ring in many zones is called only when the
window is open in all of them; each attempt records why it was legal."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg
import phonenumbers

from dialer import importer, report, repository
from dialer.sim.server import SimServer
from dialer.testing import (
    called_numbers,
    campaign_completed,
    daemon_settings,
    make_campaign,
    running_daemon,
    sim_config,
    wait_until,
)
from dialer.windows import parse_weekly


def valid(prefix: str, count: int, width: int) -> list[str]:
    """``count`` valid numbers ``prefix`` + ``width`` digits, each ending in 0-2 (the
    simulator's deterministic scenario answers those as a human on the first call)."""
    found: list[str] = []
    n = 0
    while len(found) < count:
        number = f"{prefix}{n * 10 + n % 3:0{width}d}"
        if phonenumbers.is_valid_number(phonenumbers.parse(number)):
            found.append(number)
        n += 1
    return found


async def _called(sim: SimServer, n: int) -> bool:
    return sum(called_numbers(sim).values()) >= n


async def test_numbers_of_many_zones_wait_until_every_zone_is_open(
    dsn: str, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    # Wednesday 2026-03-04 12:00 UTC: 09:00-20:00 is open in UTC and in London, but an
    # Australian mobile may ring in Perth (20:00) or Sydney (23:00), and a Moscow
    # mobile in Kamchatka (00:00): neither is called then.
    now = [dt.datetime(2026, 3, 4, 12, 0, tzinfo=dt.UTC)]
    australia = valid("+6141", 40, 7)
    moscow = valid("+7916", 40, 7)
    london = valid("+44207946", 10, 4)
    campaign_id = await make_campaign(pool, "zones", [], cps=50,
                                      calendar=parse_weekly("all 09:00-20:00"))
    path = tmp_path / "contacts.csv"
    path.write_text("phone\n" + "\n".join(australia + moscow + london) + "\n")
    loaded = await importer.import_contacts(pool, campaign_id, path, workers=0)
    assert loaded.loaded == 90
    zones = {r["phone"]: r["zones"] for r in await pool.fetch("SELECT phone, zones FROM contacts")}
    assert min(len(zones[p]) for p in australia) == 8 and len(zones[moscow[0]]) == 16
    assert all(zones[p] == ["Europe/London"] for p in london)

    async with SimServer(sim_config()) as sim:
        settings = daemon_settings(sim.base_url, cps=50)
        async with running_daemon(settings, dsn, clock=lambda: now[0]):
            await wait_until(lambda: _called(sim, 10), timeout=20, what="London calls")
            await asyncio.sleep(1.0)
            assert set(called_numbers(sim)) == set(london)
            due = {r["phone"]: r["next_attempt_at"] for r in await pool.fetch(
                "SELECT phone, next_attempt_at FROM contacts WHERE state = 'pending'")}
            # Every Australian zone reads 09:00-20:00 from 02:30 UTC (09:00 on the
            # Cocos Islands, +06:30) to 09:00 UTC (20:00 in Sydney, +11).
            assert {due[p] for p in australia} == {dt.datetime(2026, 3, 5, 2, 30, tzinfo=dt.UTC)}
            # ... every Russian zone of a Moscow mobile from 07:00 UTC (09:00 in
            # Europe/Bucharest, +02) to 08:00 (20:00 in Kamchatka, +12).
            assert {due[p] for p in moscow} == {dt.datetime(2026, 3, 5, 7, 0, tzinfo=dt.UTC)}

            now[0] = dt.datetime(2026, 3, 5, 2, 31, tzinfo=dt.UTC)
            await wait_until(lambda: _called(sim, 50), timeout=20, what="Australian calls")
            await asyncio.sleep(1.0)
            assert set(called_numbers(sim)) == set(london) | set(australia)
            now[0] = dt.datetime(2026, 3, 5, 7, 1, tzinfo=dt.UTC)
            await wait_until(lambda: campaign_completed(pool, campaign_id), timeout=20,
                             what="completion")
    assert set(called_numbers(sim)) == set(london) | set(australia) | set(moscow)
    assert max(called_numbers(sim).values()) == 1

    # The record of each attempt: the zones it may have rung in, and the clock of each
    # at the moment of the request, every one inside 09:00-20:00.
    records = await pool.fetch(
        "SELECT k.phone, a.requested_at, r.* FROM attempt_compliance r"
        " JOIN call_attempts a ON a.id = r.attempt_id JOIN contacts k ON k.id = a.contact_id")
    assert len(records) == 90
    for record in records:
        assert record["zones"] == zones[record["phone"]]
        assert record["zone_source"] == "number" and record["decided_at"] == record["requested_at"]
        for zone, local in zip(record["zones"], record["local_times"], strict=True):
            reading = dt.datetime.fromisoformat(local)
            assert reading == record["requested_at"].astimezone(ZoneInfo(zone))
            assert reading.utcoffset() == record["requested_at"].astimezone(
                ZoneInfo(zone)).utcoffset()
            assert dt.time(9) <= reading.time() < dt.time(20), (record["phone"], zone, local)
        assert record["rules"] == ["calendar"] and record["rule_packs"] == []
        assert record["open_until"] > record["requested_at"]


async def test_rule_packs_and_the_report_columns(dsn: str, pool: asyncpg.Pool,
                                                 tmp_path: Path) -> None:
    """An Oklahoma number under us-tcpa and us-states: 08:00 Central is inside the
    campaign's calendar and the TCPA's hours, but Oklahoma's automated-call hours start
    at 09:00; the call goes at 09:00 and the report's CSV says why it was legal."""
    now = [dt.datetime(2026, 3, 4, 14, 0, tzinfo=dt.UTC)]  # Wednesday 08:00 CST
    campaign_id = await make_campaign(pool, "okla", ["+14055550100"], cps=50,
                                      calendar=parse_weekly("all 07:00-22:00"),
                                      rule_packs=("us-tcpa", "us-states"))
    async with SimServer(sim_config()) as sim:
        settings = daemon_settings(sim.base_url, cps=50)
        async with running_daemon(settings, dsn, clock=lambda: now[0]):
            await asyncio.sleep(1.0)
            assert not called_numbers(sim)
            assert await pool.fetchval("SELECT next_attempt_at FROM contacts") == dt.datetime(
                2026, 3, 4, 15, 0, tzinfo=dt.UTC)
            now[0] = dt.datetime(2026, 3, 4, 15, 0, 5, tzinfo=dt.UTC)
            await wait_until(lambda: campaign_completed(pool, campaign_id), timeout=20,
                             what="completion")
    path = tmp_path / "attempts.csv"
    await report.write_export(
        path, lambda sink: repository.copy_attempts(pool, sink, campaign_id))
    with path.open(newline="") as f:
        [exported] = list(csv.DictReader(f))
    assert exported["zones"] == "America/Chicago" and exported["zone_source"] == "number"
    assert (exported["states"], exported["state_sources"]) == ("OK", "number")
    assert exported["local_times"] == "2026-03-04T09:00:05-06:00"
    packs = exported["rule_packs"].split()
    assert [p.split("@")[0] for p in packs] == ["us-tcpa", "us-states"]
    assert exported["rules"].split() == ["calendar", "us-tcpa/hours", "us-states/OK-hours",
                                          "us-states/OK-adad-hours"]
    # Oklahoma's 20:00 close, minus the 60 s margin: the latest the request could go.
    assert exported["open_until"].startswith("2026-03-05 01:59:00")



async def test_contacts_from_before_the_migration_get_their_location_at_claim(
    dsn: str, pool: asyncpg.Pool
) -> None:
    """Migration 0005 leaves contacts without a zone (and every contact without states)
    for the claim: it works them out from the number, keeping a migrated zone and the
    CSV state the attributes carry, and stores them."""
    campaign_id = await make_campaign(pool, "old", ["+14155552670", "+14055550101"], cps=50,
                                      locate_contacts=False)
    await pool.execute(
        "UPDATE contacts SET zones = '{America/Chicago}', zone_source = 'migrated',"
        " attributes = '{\"state\": \"Texas\"}' WHERE phone = '+14055550101'")
    async with SimServer(sim_config()) as sim:
        settings = daemon_settings(sim.base_url, cps=50)
        async with running_daemon(settings, dsn):
            await wait_until(lambda: campaign_completed(pool, campaign_id), timeout=20,
                             what="completion")
    located = {r["phone"]: (r["zones"], r["zone_source"], r["states"], r["state_sources"])
               for r in await pool.fetch("SELECT * FROM contacts")}
    assert located == {
        "+14155552670": (["America/Los_Angeles"], "number", ["CA"], ["number"]),
        "+14055550101": (["America/Chicago"], "migrated", ["TX", "OK"], ["csv", "number"]),
    }


async def test_a_claim_whose_slot_comes_after_the_last_call_is_handed_back(
    dsn: str, pool: asyncpg.Pool
) -> None:
    """At 1 CPS a claimed contact waits about a second for its slot. When the clock
    passes the window's end less the margin meanwhile, it is not sent: it goes back,
    and the next claim defers it to the next opening."""
    now = [dt.datetime(2026, 3, 4, 19, 58, tzinfo=dt.UTC)]
    phones = [f"+4420794609{n}0" for n in range(10, 15)]
    campaign_id = await make_campaign(pool, "late", phones, cps=1, timezone="UTC",
                                      calendar=parse_weekly("all 09:00-20:00"))
    async with SimServer(sim_config()) as sim:
        settings = daemon_settings(sim.base_url, cps=1)
        async with running_daemon(settings, dsn, clock=lambda: now[0]):
            await wait_until(lambda: _called(sim, 1), timeout=20, what="the first call")
            now[0] = dt.datetime(2026, 3, 4, 19, 59, 30, tzinfo=dt.UTC)  # past 19:59:00
            await asyncio.sleep(3.0)
            assert sum(called_numbers(sim).values()) == 1
            states = await pool.fetch(
                "SELECT state, attempts, next_attempt_at FROM contacts WHERE campaign_id = $1"
                " AND state <> 'done' AND state <> 'in_call'", campaign_id)
    assert len(states) == 4
    assert {(r["state"], r["attempts"]) for r in states} == {("pending", 0)}
    assert {r["next_attempt_at"] for r in states} == {
        dt.datetime(2026, 3, 5, 9, 0, tzinfo=dt.UTC)}
    assert await pool.fetchval("SELECT count(*) FROM call_attempts") == 1


async def test_scheduled_start_and_end(dsn: str, pool: asyncpg.Pool) -> None:
    """A draft campaign starts by itself at its start; a running one past its end is
    completed and not called."""
    db_now: dt.datetime = await pool.fetchval("SELECT now()")
    starting = await make_campaign(pool, "starting", ["+14155552670"], state="draft",
                                   start_at=db_now - dt.timedelta(seconds=1))
    ended = await make_campaign(pool, "ended", ["+14155552671"],
                                start_at=db_now - dt.timedelta(days=2),
                                end_at=db_now - dt.timedelta(seconds=1))
    waiting = await make_campaign(pool, "waiting", ["+14155552672"], state="draft",
                                  start_at=db_now + dt.timedelta(days=1))
    async with SimServer(sim_config()) as sim:
        settings = daemon_settings(sim.base_url, cps=50)
        async with running_daemon(settings, dsn):
            await wait_until(lambda: campaign_completed(pool, starting), timeout=20,
                             what="the scheduled campaign")
            await wait_until(lambda: campaign_completed(pool, ended), timeout=20,
                             what="the ended campaign")
    assert set(called_numbers(sim)) == {"+14155552670"}
    assert await pool.fetchval("SELECT state FROM campaigns WHERE id = $1", waiting) == "draft"
    assert await pool.fetchval("SELECT state FROM contacts WHERE phone = '+14155552671'") == (
        "pending")
