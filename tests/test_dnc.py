"""``dialer dnc ...``: numbers normalised, lists global or per campaign, and adding a
number skips the matching contacts not dialed yet (and only those)."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import gzip
import subprocess
import time
from pathlib import Path

import asyncpg

from dialer import dnc, repository
from dialer.testing import SIM_SID, make_campaign, run_cli


async def cli(dsn: str, *args: str, columns: int = 120) -> subprocess.CompletedProcess[str]:
    env = {"DIALER_DATABASE_URL": dsn, "DIALER_TWILIO_ACCOUNT_SID": SIM_SID,
           "COLUMNS": str(columns)}
    return await asyncio.to_thread(run_cli, *args, env=env)


async def test_add_skips_undialed_contacts_of_every_campaign(
    pool: asyncpg.Pool, dsn: str
) -> None:
    spring, autumn = await make_campaign(pool, "spring"), await make_campaign(pool, "autumn")
    # A unique constraint allows one contact per number and campaign: spread the states.
    for campaign_id in (spring, autumn):
        await pool.execute(
            "INSERT INTO contacts (campaign_id, phone) VALUES ($1, '+14155552671')", campaign_id
        )

    done = await cli(dsn, "dnc", "add", "(415) 555-2671", "--reason", "asked twice")
    assert done.returncode == 0, done.stderr
    assert "+14155552671 added to the global do-not-call list; 2 contact(s) skipped" in done.stdout
    rows = await pool.fetch("SELECT state, reason FROM contacts")
    assert [(r["state"], r["reason"]) for r in rows] == [("skipped", "dnc")] * 2

    again = await cli(dsn, "dnc", "add", "+14155552671")
    assert again.returncode == 0 and "already on the global" in again.stdout
    assert await pool.fetchval("SELECT reason FROM dnc_numbers") == "asked twice"


async def test_only_pending_and_retry_wait_contacts_are_skipped(pool: asyncpg.Pool) -> None:
    campaign_ids = [await make_campaign(pool, f"c{i}") for i in range(7)]
    states_ = ["pending", "dialing", "in_call", "retry_wait", "done", "failed", "skipped"]
    for campaign_id, state in zip(campaign_ids, states_, strict=True):
        await pool.execute(
            "INSERT INTO contacts (campaign_id, phone, state, reason, claimed_by)"
            " VALUES ($1, '+14155552671', $2, CASE WHEN $2 IN ('failed', 'skipped') THEN 'x' END,"
            " CASE WHEN $2 = 'dialing' THEN 'w' END)",
            campaign_id, state,
        )
    added, skipped = await repository.dnc_add(pool, "+14155552671", None, None)
    assert (added, skipped) == (True, 2)
    rows = await pool.fetch("SELECT state, reason FROM contacts ORDER BY campaign_id")
    assert [(r["state"], r["reason"]) for r in rows] == [
        ("skipped", "dnc"), ("dialing", None), ("in_call", None), ("skipped", "dnc"),
        ("done", None), ("failed", "x"), ("skipped", "x"),
    ]


async def test_campaign_lists_are_separate(pool: asyncpg.Pool, dsn: str) -> None:
    spring, autumn = await make_campaign(pool, "spring"), await make_campaign(pool, "autumn")
    for campaign_id in (spring, autumn):
        await pool.execute(
            "INSERT INTO contacts (campaign_id, phone) VALUES ($1, '+442079460958')", campaign_id
        )
    done = await cli(dsn, "dnc", "add", "+44 20 7946 0958", "--campaign", "spring")
    assert done.returncode == 0, done.stderr
    assert "do-not-call list of spring; 1 contact(s) skipped" in done.stdout
    got = await pool.fetch("SELECT campaign_id, state FROM contacts ORDER BY campaign_id")
    assert [(r["campaign_id"], r["state"]) for r in got] == [
        (spring, "skipped"), (autumn, "pending")
    ]
    await repository.dnc_add(pool, "+14155552671", None, "global")

    listed = await cli(dsn, "dnc", "list", "--campaign", "autumn")
    assert "+14155552671" in listed.stdout and "+442079460958" not in listed.stdout
    listed = await cli(dsn, "dnc", "list")
    assert "+14155552671" in listed.stdout and "+442079460958" in listed.stdout
    assert "spring" in listed.stdout and "(all)" in listed.stdout

    # Removing from the global list leaves the campaign's entry alone, and vice versa.
    assert (await cli(dsn, "dnc", "remove", "+442079460958")).returncode == 1
    removed = await cli(dsn, "dnc", "remove", "+442079460958", "--campaign", "spring")
    assert removed.returncode == 0
    assert "removed from the do-not-call list of spring" in removed.stdout
    assert await pool.fetchval("SELECT count(*) FROM dnc_active") == 1
    assert await pool.fetchval("SELECT count(*) FROM dnc_numbers") == 2  # kept as history
    # Contacts skipped for it stay skipped.
    assert await pool.fetchval("SELECT state FROM contacts WHERE campaign_id = $1", spring) == (
        "skipped"
    )


async def test_bad_numbers_and_names(pool: asyncpg.Pool, dsn: str) -> None:
    await make_campaign(pool, "spring")
    for args, code, message in [
        (("dnc", "add", "hello"), 2, "NUMBER: invalid number 'hello': not a number"),
        (("dnc", "add", "+14155552671", "--campaign", "nope"), 1, "no campaign named 'nope'"),
        (("dnc", "add", "020 7946 0958", "--region", "XX"), 2, "--region: unknown region"),
        (("dnc", "import", "/nonexistent.csv"), 2, "no such file"),
    ]:
        done = await cli(dsn, *args)
        assert done.returncode == code and message in done.stderr, done
    uk = await cli(dsn, "dnc", "add", "020 7946 0958", "--region", "GB")
    assert uk.returncode == 0 and "+442079460958" in uk.stdout
    empty = await cli(dsn, "dnc", "list", "--campaign", "spring")
    assert "+442079460958" in empty.stdout


async def test_import_numbers_from_csv(pool: asyncpg.Pool, dsn: str, tmp_path: Path) -> None:
    spring = await make_campaign(pool, "spring")
    for phone in ("+14155552671", "+12127365000"):
        await pool.execute(
            "INSERT INTO contacts (campaign_id, phone) VALUES ($1, $2)", spring, phone
        )
    await repository.dnc_add(pool, "+12127365000", spring, None)
    path = tmp_path / "dnc.csv.gz"
    path.write_bytes(gzip.compress(
        b"Phone,why\n(415) 555-2671,asked\n+12127365000,\nnope,\n+14155552671,twice\n\xff,x\n"
    ))
    done = await cli(dsn, "dnc", "import", str(path), "--campaign", "spring", "--reason", "file")
    assert done.returncode == 0, done.stderr
    for line in ("read:             5", "added:            1", "already listed:   2",
                 "rejected:         2", "contacts skipped: 1"):
        assert line in done.stdout
    with (tmp_path / "dnc.errors.csv").open(newline="") as f:
        errors = list(csv.DictReader(f))
    assert [(e["row"], e["field"], e["reason"]) for e in errors] == [
        ("4", "Phone", "invalid number: not a number"), ("6", "Phone", "invalid UTF-8"),
    ]
    assert await pool.fetchval(
        "SELECT reason FROM dnc_numbers WHERE phone = '+14155552671'"
    ) == "file"

    # In-process, to the global list; numbers already listed count as such.
    result = await dnc.import_numbers(pool, path, campaign_id=None, errors_path=tmp_path / "e.csv")
    assert (result.read, result.added, result.already_listed, result.rejected) == (5, 2, 1, 2)
    assert result.contacts_skipped == 0  # both contacts were skipped already


# ---- the lifecycle: source, expiry, removal kept as history ----------------------------


async def states_of(pool: asyncpg.Pool) -> list[tuple[str, str, str]]:
    rows = await repository.dnc_list(pool, None)
    return [(r["phone"], r["source"], r["state"]) for r in rows]


async def test_entries_expire_and_stay_as_history(pool: asyncpg.Pool, dsn: str,
                                                  tmp_path: Path) -> None:
    spring = await make_campaign(pool, "spring")
    added = await cli(dsn, "dnc", "add", "+14155552671", "--until", "2099-06-01",
                      "--reason", "until summer")
    assert added.returncode == 0, added.stderr
    assert "until 2099-06-01 00:00 UTC" in added.stdout
    listed = await cli(dsn, "dnc", "list", columns=200)
    assert "active" in listed.stdout and "2099-06-01 00:00" in listed.stdout
    assert "cli" in listed.stdout
    for until, message in (("2001-01-01", "is not in the future"),
                           ("next tuesday", "is not a date (YYYY-MM-DD) or an ISO-8601")):
        refused = await cli(dsn, "dnc", "add", "+14155552672", "--until", until)
        assert refused.returncode == 2 and "--until: " in refused.stderr
        assert message in refused.stderr
    # Expired: no longer blocking, still listed.
    await pool.execute("UPDATE dnc_numbers SET expires_at = now() - interval '1 minute'")
    assert await states_of(pool) == [("+14155552671", "cli", "expired")]
    assert "expired" in (await cli(dsn, "dnc", "list", "--state", "expired")).stdout
    path = tmp_path / "contacts.csv"
    path.write_text("phone\n+14155552671\n")
    imported = await cli(dsn, "import", "spring", str(path))
    assert imported.returncode == 0, imported.stderr
    assert await pool.fetchval("SELECT state FROM contacts WHERE campaign_id = $1",
                               spring) == "pending"
    # Listed again: a new entry beside the expired one.
    assert (await repository.dnc_add(pool, "+14155552671", None, None, source="cli"))[0]
    assert await states_of(pool) == [("+14155552671", "cli", "expired"),
                                     ("+14155552671", "cli", "active")]


async def test_adding_again_extends_an_entry_never_shortens_it(pool: asyncpg.Pool) -> None:
    later, sooner = (dt.datetime(2099, m, 1, tzinfo=dt.UTC) for m in (9, 3))
    number = "+14155552671"
    assert (await repository.dnc_add(pool, number, None, "a", expires_at=later))[0]
    assert not (await repository.dnc_add(pool, number, None, "b", expires_at=sooner))[0]
    assert await pool.fetchval("SELECT expires_at FROM dnc_numbers") == later
    assert await pool.fetchval("SELECT reason FROM dnc_numbers") == "b"
    await repository.dnc_add(pool, number, None, None)  # for good
    await repository.dnc_add(pool, number, None, None, expires_at=later)
    assert await pool.fetchval("SELECT expires_at FROM dnc_numbers") is None
    assert await pool.fetchval("SELECT count(*) FROM dnc_numbers") == 1


async def test_remove_keeps_an_audit_row(pool: asyncpg.Pool, dsn: str) -> None:
    await repository.dnc_add(pool, "+14155552671", None, "asked", source="cli")
    removed = await cli(dsn, "dnc", "remove", "+14155552671", "--reason", "consent given")
    assert removed.returncode == 0, removed.stderr
    assert "kept as history, removed by cli:" in removed.stdout
    row = await pool.fetchrow("SELECT * FROM dnc_numbers")
    assert row["removed_at"] is not None and row["removed_by"].startswith("cli:")
    assert "@" in row["removed_by"] and row["removal_reason"] == "consent given"
    assert row["reason"] == "asked"  # what it was listed for stays
    assert await pool.fetchval("SELECT count(*) FROM dnc_active") == 0
    assert (await cli(dsn, "dnc", "remove", "+14155552671")).returncode == 1
    listed = await cli(dsn, "dnc", "list", "--state", "removed", columns=250)
    assert "consent given" in listed.stdout and "removed" in listed.stdout
    none_active = await cli(dsn, "dnc", "list", "--state", "active")
    assert "no entries on the global do-not-call list that match the filters" in (
        none_active.stdout)


async def test_list_filters_by_source_campaign_origin_and_state(pool: asyncpg.Pool,
                                                                dsn: str) -> None:
    spring, autumn = await make_campaign(pool, "spring"), await make_campaign(pool, "autumn")
    await repository.dnc_add(pool, "+14155550001", None, None, source="cli")
    await repository.dnc_add(pool, "+14155550002", spring, None, source="cli")
    await repository.dnc_add(pool, "+14155550003", None, "opted out", source="opt-out",
                             origin_campaign_id=autumn, call_sid="CA" + "b" * 32)
    await repository.dnc_add(pool, "+14155550004", None, None)  # another program: api
    by_source = await repository.dnc_list(pool, None, source="opt-out")
    assert [r["phone"] for r in by_source] == ["+14155550003"]
    assert by_source[0]["origin"] == "autumn" and by_source[0]["call_sid"] == "CA" + "b" * 32
    assert [r["phone"] for r in await repository.dnc_list(pool, autumn)] == [
        "+14155550001", "+14155550003", "+14155550004"]
    assert [r["phone"] for r in await repository.dnc_list(pool, None, source="api")] == [
        "+14155550004"]
    listed = await cli(dsn, "dnc", "list", "--origin", "autumn", columns=200)
    assert "+14155550003" in listed.stdout and "+14155550001" not in listed.stdout
    assert "opt-out" in listed.stdout
    bad = await cli(dsn, "dnc", "list", "--source", "rumour")
    assert bad.returncode == 2 and "invalid choice: 'rumour'" in bad.stderr


async def test_import_reads_an_expires_column(pool: asyncpg.Pool, dsn: str,
                                              tmp_path: Path) -> None:
    spring = await make_campaign(pool, "spring")
    for phone in ("+14155550001", "+14155550005"):
        await pool.execute("INSERT INTO contacts (campaign_id, phone) VALUES ($1, $2)",
                           spring, phone)
    path = tmp_path / "dnc.csv"
    path.write_text("phone,Expires\n+14155550001,2099-01-02\n+14155550002,2099-01-02T09:00-05:00\n"
                    "+14155550003,\n+14155550004,soon\n+14155550005,2001-01-01\n")
    done = await cli(dsn, "dnc", "import", str(path), "--until", "2098-12-31")
    assert done.returncode == 0, done.stderr
    assert "added:            4" in done.stdout and "rejected:         1" in done.stdout
    assert "contacts skipped: 1" in done.stdout  # +14155550005 expired long ago
    rows = {r["phone"]: (r["expires_at"], r["source"], r["state"])
            for r in await repository.dnc_list(pool, None)}
    utc = dt.UTC
    assert rows == {
        "+14155550001": (dt.datetime(2099, 1, 2, tzinfo=utc), "import", "active"),
        "+14155550002": (dt.datetime(2099, 1, 2, 14, tzinfo=utc), "import", "active"),
        "+14155550003": (dt.datetime(2098, 12, 31, tzinfo=utc), "import", "active"),
        "+14155550005": (dt.datetime(2001, 1, 1, tzinfo=utc), "import", "expired"),
    }
    with (tmp_path / "dnc.errors.csv").open(newline="") as f:
        [error] = list(csv.DictReader(f))
    assert (error["row"], error["field"]) == ("5", "Expires")
    assert "'soon' is not a date" in error["reason"]
    states = await pool.fetch("SELECT phone, state FROM contacts ORDER BY phone")
    assert [tuple(r) for r in states] == [("+14155550001", "skipped"),
                                          ("+14155550005", "pending")]


async def test_every_daemon_is_told_when_a_number_is_listed(pool: asyncpg.Pool, dsn: str,
                                                           tmp_path: Path) -> None:
    spring = await make_campaign(pool, "spring")
    heard: list[str] = []
    conn = await asyncpg.connect(dsn)
    await conn.add_listener(dnc.NOTIFY_CHANNEL, lambda *args: heard.append(args[3]))
    try:
        await repository.dnc_add(pool, "+14155550001", None, None)
        await repository.dnc_add(pool, "+14155550002", spring, None)
        path = tmp_path / "dnc.csv"
        path.write_text("phone\n+14155550003\n")
        await dnc.import_numbers(pool, path, campaign_id=None)
        # An import is one "look every claim up"; a program writing a row itself is heard
        # too (the table's trigger).
        await pool.execute("INSERT INTO dnc_numbers (phone) VALUES ('+14155550004')")
        for _ in range(50):
            if len(heard) == 4:
                break
            await asyncio.sleep(0.05)
    finally:
        await conn.close()
    assert heard == ["+14155550001", f"+14155550002 {spring}", "", "+14155550004"]
    barrier = dnc.DncBarrier()
    for payload in [*heard, "nonsense", "+1 x"]:
        barrier.note(payload)
    assert barrier.check_due
    assert barrier.bars("+14155550001", 7, claimed_since=0.0)
    assert barrier.bars("+14155550002", spring, claimed_since=0.0)
    assert not barrier.bars("+14155550002", spring + 1, claimed_since=0.0)
    # A claim that began after the number was listed saw the entry itself.
    assert not barrier.bars("+14155550001", 7, claimed_since=time.monotonic() + 1)



async def test_adds_at_once_keep_one_active_entry(pool: asyncpg.Pool) -> None:
    # An opt-out is recorded in a transaction (repository.record_opt_out) while an
    # operator lists the same number: the second add waits for the first to commit and
    # extends its entry, rather than writing a second active one beside it.
    number = "+14155552671"
    async with pool.acquire() as conn:
        opt_out = conn.transaction()
        await opt_out.start()
        assert (await repository.dnc_add(conn, number, None, "pressed 9", source="opt-out"))[0]
        operator = asyncio.create_task(
            repository.dnc_add(pool, number, None, "asked by letter", source="cli"))
        await asyncio.sleep(0.3)
        assert not operator.done()  # waiting for the opt-out's transaction
        await opt_out.commit()
    assert await operator == (False, 0)
    rows = await pool.fetch("SELECT source, reason FROM dnc_active")
    assert [(r["source"], r["reason"]) for r in rows] == [("opt-out", "asked by letter")]
