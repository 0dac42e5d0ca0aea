"""`dialer report NAME --csv FILE`: streamed through COPY, one row per attempt, the
same bytes every time, filtered by --since/--until, gzip when FILE ends in .gz, and a
failed export never leaves a broken file behind."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import os
import resource
import subprocess
import sys
from pathlib import Path

import asyncpg

from dialer.testing import clean_env, make_campaign, run_cli

START = dt.datetime(2026, 3, 2, 15, 0, tzinfo=dt.UTC)
HEADER = ["campaign", "contact_id", "phone", "contact_state", "contact_outcome",
          "contact_reason", "attempts_used", "attempt_no", "attempt_state", "call_sid",
          "call_status", "answered_by", "duration", "sip_response_code", "error_code",
          "error_message", "outcome", "queue_time_ms", "requested_at", "final_at",
          "sent_at", "zones", "zone_source", "states", "state_sources", "local_times",
          "rule_packs", "rules", "open_until", "attempt_id", "subject", "caps"]


async def campaign_with_attempts(pool: asyncpg.Pool, name: str, contacts: int) -> int:
    """``contacts`` contacts with two attempts each, a minute apart per contact: the
    first busy, the second answered or refused by Twilio with a message that needs
    quoting in CSV. The first contact also has a void attempt that gave its number
    back to the attempt after it."""
    campaign_id = await make_campaign(pool, name, [], state="completed")
    await pool.execute(
        """INSERT INTO contacts (campaign_id, phone, state, attempts, last_outcome, reason)
           SELECT $1, '+1415' || lpad(i::text, 7, '0'),
                  CASE WHEN i % 2 = 0 THEN 'done' ELSE 'failed' END, 2,
                  CASE WHEN i % 2 = 0 THEN 'human' ELSE 'rejected' END,
                  CASE WHEN i % 2 = 1 THEN 'twilio error 21211: invalid "To", it said' END
           FROM generate_series(1, $2::int) AS i""", campaign_id, contacts)
    await pool.execute(
        """INSERT INTO call_attempts (contact_id, campaign_id, attempt_no, state, requested_at,
                                      outcome)
           SELECT min(id), $1, 2, 'void', $2, 'void' FROM contacts WHERE campaign_id = $1""",
        campaign_id, START)
    await pool.execute(
        """INSERT INTO call_attempts (contact_id, campaign_id, attempt_no, state, requested_at,
                                      call_sid, call_status, answered_by, duration,
                                      error_code, error_message, outcome, final_at)
           SELECT k.id, $1, g, CASE WHEN g = 2 AND k.state = 'failed' THEN 'rejected'
                                    ELSE 'final' END,
                  $2::timestamptz + make_interval(mins => (k.id % 1000)::int * 2 + g),
                  CASE WHEN g = 1 OR k.state = 'done'
                       THEN 'CA' || lpad(to_hex(k.id), 30, '0') || '0' || g END,
                  CASE WHEN g = 1 THEN 'busy' WHEN k.state = 'done' THEN 'completed' END,
                  CASE WHEN g = 2 AND k.state = 'done' THEN 'human' END,
                  CASE WHEN g = 2 AND k.state = 'done' THEN 30 END,
                  CASE WHEN g = 2 AND k.state = 'failed' THEN 21211 END,
                  CASE WHEN g = 2 AND k.state = 'failed'
                       THEN e'invalid "To",\nsecond line' END,
                  CASE WHEN g = 1 THEN 'busy' WHEN k.state = 'done' THEN 'human'
                       ELSE 'rejected' END,
                  CASE WHEN g = 1 OR k.state = 'done'
                       THEN $2::timestamptz + make_interval(mins => (k.id % 1000)::int * 2 + g,
                                                            secs => 20) END
           FROM contacts k, generate_series(1, 2) AS g WHERE k.campaign_id = $1""",
        campaign_id, START)
    await pool.execute(
        """INSERT INTO attempt_compliance (attempt_id, decided_at, zones, zone_source, states,
                                           state_sources, local_times, rule_packs, rules,
                                           open_until)
           SELECT id, requested_at, '{America/New_York,America/Chicago}', 'number', '{NY}',
                  '{number}',
                  ARRAY[to_char(requested_at AT TIME ZONE 'America/New_York',
                                'YYYY-MM-DD"T"HH24:MI:SS') || '-05:00',
                        to_char(requested_at AT TIME ZONE 'America/Chicago',
                                'YYYY-MM-DD"T"HH24:MI:SS') || '-06:00'],
                  '{us-tcpa@1}', '{calendar,us-tcpa/hours}', requested_at + interval '1 hour'
           FROM call_attempts WHERE campaign_id = $1 AND attempt_no = 1""", campaign_id)
    return campaign_id


def export(dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("report", *args, env={"DIALER_DATABASE_URL": dsn}, timeout=300)


async def test_export_is_the_same_bytes_every_time_one_row_per_attempt(
    pool: asyncpg.Pool, dsn: str, tmp_path: Path
) -> None:
    campaign_id = await campaign_with_attempts(pool, "big", 50_000)
    await make_campaign(pool, "other", ["+14155550100"])  # not in the export
    attempts = await pool.fetch(
        "SELECT id, requested_at FROM call_attempts WHERE campaign_id = $1", campaign_id)
    assert len(attempts) == 100_001
    first, second, packed = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv.gz"
    for path in (first, second, packed):
        done = export(dsn, "big", "--csv", str(path))
        assert done.returncode == 0, done.stderr
        assert f"100001 attempts written to {path}" in done.stdout
    data = first.read_bytes()
    assert data == second.read_bytes()
    assert gzip.decompress(packed.read_bytes()) == data
    rows = list(csv.DictReader(io.StringIO(data.decode())))
    assert list(rows[0]) == HEADER
    assert sorted(int(r["attempt_id"]) for r in rows) == sorted(r["id"] for r in attempts)
    keys = [(int(r["contact_id"]), int(r["attempt_no"]), int(r["attempt_id"])) for r in rows]
    assert keys == sorted(keys)
    # The void attempt comes before the one that took its number, quoting survives.
    void, after = rows[1], rows[2]
    assert (void["attempt_state"], void["attempt_no"]) == ("void", "2")
    assert (after["attempt_no"], after["contact_id"]) == ("2", void["contact_id"])
    assert after["error_message"] == 'invalid "To",\nsecond line'
    assert after["contact_reason"] == 'twilio error 21211: invalid "To", it said'
    # The compliance record's lists, space-separated.
    first = rows[0]
    assert (first["zones"], first["states"], first["rules"]) == (
        "America/New_York America/Chicago", "NY", "calendar us-tcpa/hours")
    assert [t[11:] for t in first["local_times"].split()] == ["10:03:00-05:00",
                                                             "09:03:00-06:00"]
    assert after["zones"] == ""  # no record
    # Times in UTC whatever the session's zone: the database's own value back.
    requested = {r["id"]: r["requested_at"] for r in attempts}
    sample = rows[5]
    assert dt.datetime.fromisoformat(sample["requested_at"]) == requested[int(
        sample["attempt_id"])]
    assert sample["requested_at"].endswith("+00")


async def test_since_and_until_choose_by_request_time(
    pool: asyncpg.Pool, dsn: str, tmp_path: Path
) -> None:
    campaign_id = await campaign_with_attempts(pool, "window", 300)
    since, until = START + dt.timedelta(minutes=100), START + dt.timedelta(minutes=200)
    path = tmp_path / "window.csv"
    done = export(dsn, "window", "--csv", str(path), "--since", since.isoformat(),
                  "--until", "2026-03-02T19:20:00+01:00")  # = START + 200 min, as an offset
    assert done.returncode == 0, done.stderr
    expected = {r["id"] for r in await pool.fetch(
        "SELECT id FROM call_attempts WHERE campaign_id = $1 AND requested_at >= $2 "
        "AND requested_at < $3", campaign_id, since, until)}
    got = {int(r["attempt_id"]) for r in csv.DictReader(io.StringIO(path.read_text()))}
    assert got == expected and 0 < len(got) < 600
    # A date alone is its midnight in UTC.
    done = export(dsn, "window", "--csv", str(path), "--since", "2026-03-04")
    assert done.returncode == 0, done.stderr
    assert path.read_text().splitlines() == [",".join(HEADER)]


async def test_bad_options_are_one_line_errors(
    pool: asyncpg.Pool, dsn: str, tmp_path: Path
) -> None:
    await campaign_with_attempts(pool, "c", 10)
    cases = {
        ("c", "--since", "2026-03-01"): (2, "--since and --until choose the attempts of "
                                            "the --csv export"),
        ("c", "--csv", str(tmp_path / "x.csv"), "--since", "2026-03-02",
         "--until", "2026-03-01"): (2, "is not before --until"),
        ("c", "--csv", str(tmp_path / "x.csv"), "--since", "yesterday"): (
            2, "expected a date or an ISO-8601 time"),
        ("c", "--csv", str(tmp_path)): (2, "is a directory"),
        ("c", "--csv", str(tmp_path / "missing" / "x.csv")): (
            2, "cannot write there (No such file or directory)"),
        ("nope", "--csv", str(tmp_path / "x.csv")): (1, "no campaign named 'nope'"),
        ("c", "--csv", "/dev/full"): (1, "writing failed (No space left on device)"),
    }
    for args, (code, message) in cases.items():
        done = export(dsn, *args)
        assert done.returncode == code, (args, done.stderr)
        assert done.stderr.count("\n") == 1 and message in done.stderr, (args, done.stderr)
    assert not (tmp_path / "x.csv").exists()


async def test_a_failed_export_leaves_the_old_file_as_it_was(
    pool: asyncpg.Pool, dsn: str, tmp_path: Path
) -> None:
    """The export is written beside FILE and renamed over it only once complete: when
    writing fails (here the process may not write more than 64 kB: EFBIG) the file that
    was there is untouched and no partial file is left."""
    await campaign_with_attempts(pool, "limited", 2000)
    path = tmp_path / "limited.csv"
    path.write_text("the previous export\n")

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    done = subprocess.run(
        [sys.executable, "-m", "dialer.cli", "report", "limited", "--csv", str(path)],
        env=clean_env({"DIALER_DATABASE_URL": dsn}), capture_output=True, text=True,
        timeout=120, check=False, preexec_fn=small_files)
    assert done.returncode == 1, done.stderr
    assert done.stderr == f"dialer: --csv '{path}': writing failed (File too large)\n"
    assert path.read_text() == "the previous export\n"
    assert os.listdir(tmp_path) == ["limited.csv"]
