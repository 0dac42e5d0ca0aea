"""``dialer dnc ...``: numbers normalised, lists global or per campaign, and adding a
number skips the matching contacts not dialed yet (and only those)."""

from __future__ import annotations

import asyncio
import csv
import gzip
import subprocess
from pathlib import Path

import asyncpg

from dialer import dnc, repository
from tests.helpers import run_cli
from tests.test_importer import ACCOUNT, make_campaign


async def cli(dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"DIALER_DATABASE_URL": dsn, "DIALER_TWILIO_ACCOUNT_SID": ACCOUNT, "COLUMNS": "120"}
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
