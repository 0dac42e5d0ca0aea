"""Careless or hostile operator input, through the real CLI in a subprocess: every case
ends with the right exit code (2 usage or configuration, 1 a failed operation), one
line on stderr naming what is wrong, no traceback, and nothing half-written."""

from __future__ import annotations

import asyncio
import gzip
import os
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import asyncpg
import pytest

from dialer import importer
from dialer.testing import clean_env, make_campaign, read_csv_rows, run_cli

ACCOUNT = "AC" + "ab" * 16
BASE = ("--from", "+14155552671", "--twiml-url", "https://example.com/twiml")
SECRET = "s3cr3t-pa55"


async def cli(dsn: str | None, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {"DIALER_TWILIO_ACCOUNT_SID": ACCOUNT, **extra}
    if dsn is not None:
        env["DIALER_DATABASE_URL"] = dsn
    return await asyncio.to_thread(run_cli, *args, env=env)


def one_line(done: subprocess.CompletedProcess[str], code: int, *words: str) -> str:
    """The command failed with ``code`` and said so on one clean line naming ``words``."""
    assert done.returncode == code, done
    assert done.stderr.count("\n") == 1 and done.stderr.endswith("\n"), done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr[:-1].isprintable(), repr(done.stderr)
    for word in words:
        assert word in done.stderr, (word, done.stderr)
    return done.stderr


async def count(pool: asyncpg.Pool, table: str) -> int:
    return int(await pool.fetchval(f"SELECT count(*) FROM {table}"))


# ---- campaign options -----------------------------------------------------------------


BAD_NUMBERS = [
    (("--busy-delay", "99999999999d"), ("--busy-delay", "longer than a year")),
    (("--no-answer-delay", "9" * 5000), ("--no-answer-delay", "too long")),
    (("--max-concurrent", "²"), ("--max-concurrent", "expected a number")),
    (("--max-concurrent", "99999999999"), ("--max-concurrent", "100000")),
    (("--max-concurrent", "100001"), ("--max-concurrent", "100000")),
    (("--weight", "٣"), ("--weight", "expected a whole number")),
    (("--weight", "99999999999999999999999"), ("--weight",)),
    (("--ring-timeout", "1e400"), ("--ring-timeout", "expected a whole number")),
    (("--backoff", "nan"), ("--backoff", "expected a number")),
    (("--backoff", "1e300"), ("--backoff", "at most 100")),
    (("--jitter", "inf"), ("--jitter", "expected a number")),
    (("--max-attempts", "-5"), ("--max-attempts",)),
]


async def test_numeric_options_are_bounded(pool: asyncpg.Pool, dsn: str) -> None:
    gate = asyncio.Semaphore(4)

    async def create(options: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
        async with gate:
            return await cli(dsn, "campaign", "create", "spring", *BASE, *options)

    done = await asyncio.gather(*(create(options) for options, _ in BAD_NUMBERS))
    for (_, words), result in zip(BAD_NUMBERS, done, strict=True):
        one_line(result, 2, *words)
    assert await count(pool, "campaigns") == 0


async def test_a_placeholder_in_the_host_is_refused_at_create_and_edit(
    pool: asyncpg.Pool, dsn: str
) -> None:
    hostile = "https://${host}.tts.example.com/x"
    done = await cli(dsn, "campaign", "create", "spring", "--from", "+14155552671",
                     "--twiml-url", hostile)
    one_line(done, 2, "--twiml-url", "never in the scheme, host or port", "${host}")
    assert await count(pool, "campaigns") == 0

    assert (await cli(dsn, "campaign", "create", "spring", *BASE)).returncode == 0
    before = await pool.fetchrow("SELECT * FROM campaigns")
    for url in (hostile, "https://tts.example.com:${port}/x", "https://example.com${x}/"):
        one_line(await cli(dsn, "campaign", "edit", "spring", "--twiml-url", url), 2,
                 "--twiml-url")
    one_line(await cli(dsn, "campaign", "edit", "spring", "--twiml", "<Say>\x1b[2J</Say>"), 2,
             "--twiml", "control characters")
    assert await pool.fetchrow("SELECT * FROM campaigns") == before
    done = await cli(dsn, "campaign", "edit", "spring", "--twiml-url",
                     "https://tts.example.com/x/${first name}?p=${phone}")
    assert done.returncode == 0, done.stderr


# ---- the database setting ---------------------------------------------------------------


def _every_command(folder: Path) -> list[tuple[str, ...]]:
    contacts = folder / "c.csv"
    contacts.write_text("phone\n+14155552671\n")
    return [
        ("migrate",), ("campaign", "list"), ("campaign", "show", "x"),
        ("campaign", "create", "x", *BASE), ("campaign", "edit", "x", "--weight", "2"),
        ("campaign", "start", "x"), ("import", "x", str(contacts)),
        ("dnc", "add", "+14155552671"), ("dnc", "remove", "+14155552671"),
        ("dnc", "import", str(contacts)), ("dnc", "list"), ("report", "x"), ("run",),
        ("demo", "--contacts", "10"),
    ]


@pytest.mark.parametrize(
    ("url", "words", "commands"),
    [
        (f"postgresql://dialer:{SECRET}@127.0.0.1:1/dialer",
         ("cannot use the database at", "postgresql://dialer@127.0.0.1:1"), "every"),
        (f"postgresql://dialer:{SECRET}@127.0.0.1:port/dialer", ("not a valid URL",), "every"),
        (f"mysql://dialer:{SECRET}@127.0.0.1/dialer", ("not a Postgres URL",), "one"),
        ("not a url at all", ("not a Postgres URL",), "one"),
    ],
)
async def test_a_bad_database_url_is_named_by_every_command(
    tmp_path: Path, url: str, words: tuple[str, ...], commands: str
) -> None:
    every = _every_command(tmp_path)
    gate = asyncio.Semaphore(4)

    async def attempt(args: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
        async with gate:
            return await cli(url, *args, DIALER_TWILIO_AUTH_TOKEN="token")

    runs = every if commands == "every" else every[1:2]
    for args, done in zip(runs, await asyncio.gather(*map(attempt, runs)), strict=True):
        stderr = one_line(done, 2, "DIALER_DATABASE_URL", *words)
        assert SECRET not in stderr, args


async def test_a_database_that_does_not_exist_is_named(dsn: str) -> None:
    missing = dsn.replace("/t_", "/missing_t_", 1)
    one_line(await cli(missing, "campaign", "list"), 2, "DIALER_DATABASE_URL",
             "does not exist")


# ---- files the commands write ------------------------------------------------------------


def unwritable_paths(folder: Path) -> list[Path]:
    """Paths no one can create a file at, root included."""
    (folder / "a-file").write_text("x")
    return [folder / "missing" / "out.csv", folder / "a-file" / "out.csv"]


async def test_an_unwritable_errors_file(
    pool: asyncpg.Pool, dsn: str, tmp_path: Path
) -> None:
    await make_campaign(pool)
    contacts = tmp_path / "c.csv"
    contacts.write_text("phone\n+14155552671\nnot a number\n")
    for errors in unwritable_paths(tmp_path):
        done = await cli(dsn, "import", "spring", str(contacts), "--errors", str(errors))
        one_line(done, 2, "--errors", str(errors), "cannot write there")
        done = await cli(dsn, "dnc", "import", str(contacts), "--errors", str(errors))
        one_line(done, 2, "--errors", "cannot write there")
    done = await cli(dsn, "import", "spring", str(contacts), "--errors", str(tmp_path))
    one_line(done, 2, "--errors", "is a directory")
    assert await count(pool, "contacts") == 0 and await count(pool, "dnc_numbers") == 0
    assert sorted(os.listdir(tmp_path)) == ["a-file", "c.csv"]


async def test_the_default_errors_file_in_a_read_only_folder(
    pool: asyncpg.Pool, dsn: str, tmp_path: Path
) -> None:
    await make_campaign(pool)
    folder = tmp_path / "ro"
    folder.mkdir()
    (folder / "c.csv").write_text("phone\n+14155552671\n")
    folder.chmod(0o500)
    if os.access(folder, os.W_OK):
        pytest.skip("this user can write anywhere (root)")
    done = await cli(dsn, "import", "spring", str(folder / "c.csv"))
    one_line(done, 2, "--errors", "the default error file")
    assert await count(pool, "contacts") == 0


async def test_an_unwritable_report_csv(pool: asyncpg.Pool, dsn: str, tmp_path: Path) -> None:
    campaign_id = await make_campaign(pool)
    await pool.execute(
        """WITH k AS (INSERT INTO contacts (campaign_id, phone, state, reason, attempts)
                      VALUES ($1, '+14155552671', 'failed', 'twilio error 21211', 1)
                      RETURNING id)
           INSERT INTO call_attempts (contact_id, campaign_id, attempt_no, requested_at,
                                      state, error_code)
           SELECT id, $1, 1, now(), 'rejected', 21211 FROM k""", campaign_id)
    for path in unwritable_paths(tmp_path):
        done = await cli(dsn, "report", "spring", "--csv", str(path))
        one_line(done, 2, "--csv", str(path), "cannot write there")
    assert sorted(os.listdir(tmp_path)) == ["a-file"]
    done = await cli(dsn, "report", "spring", "--csv", "/dev/full")  # fails while writing
    one_line(done, 1, "--csv", "writing failed")


async def test_a_long_or_controlled_dnc_reason(pool: asyncpg.Pool, dsn: str) -> None:
    done = await cli(dsn, "dnc", "add", "+14155552671", "--reason", "x" * 100_000)
    one_line(done, 2, "--reason", "at most 500 characters", "100,000")
    done = await cli(dsn, "dnc", "add", "+14155552671", "--reason", "a\x1b[2Jb")
    one_line(done, 2, "--reason", "control characters")
    assert await count(pool, "dnc_numbers") == 0
    assert (await cli(dsn, "dnc", "add", "+14155552671", "--reason", "r" * 500)).returncode == 0


# ---- import input --------------------------------------------------------------------------


def _one_gb_line(path: Path) -> None:
    """A 1 GiB line between two good rows, in a gzip file of about 1 MB: the line is
    1024 gzip members of 1 MiB each (a gzip file may hold several; readers join them)."""
    member = gzip.compress(b"9" * (1 << 20), compresslevel=9)
    with path.open("wb") as out:
        out.write(gzip.compress(b"phone,name\n+14155552671,Ada\n+14155550100,"))
        for _ in range(1024):
            out.write(member)
        out.write(gzip.compress(b"\n+14155550101,Bob\n"))


# The peak RSS must be the CLI's own. A child started from pytest inherits pytest's
# high-water mark at exec (Linux keeps the larger of the old and new address space's),
# and pytest is large by then; a small Python in between starts the CLI and measures it.
_MEASURE = """import os, subprocess, sys
child = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(child.pid, 0)
with open(sys.argv[1], "w") as out:
    out.write(str(usage.ru_maxrss // 1024))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def _run_measured(args: list[str], env: dict[str, str]) -> tuple[int, str, str, int]:
    """Run the CLI; (exit code, stdout, stderr, peak RSS in MiB) of that process."""
    with tempfile.TemporaryDirectory() as folder:
        peak = Path(folder) / "peak"
        done = subprocess.run(
            [sys.executable, "-c", _MEASURE, str(peak), sys.executable, "-m", "dialer.cli",
             *args], env=clean_env(env), capture_output=True, text=True, check=False)
        return done.returncode, done.stdout, done.stderr, int(peak.read_text())


async def test_a_one_gigabyte_line_in_a_small_gzip_costs_no_memory(
    pool: asyncpg.Pool, dsn: str, tmp_path: Path
) -> None:
    campaign_id = await make_campaign(pool)
    path = tmp_path / "huge.csv.gz"
    _one_gb_line(path)
    assert path.stat().st_size < 2 << 20
    code, stdout, stderr, peak_mib = await asyncio.to_thread(
        _run_measured, ["import", "spring", str(path)], {"DIALER_DATABASE_URL": dsn})
    assert code == 0, stderr
    assert "loaded:     2" in stdout and "rejected:   1" in stdout
    assert peak_mib < 300, f"peak RSS {peak_mib} MiB"  # it took 2 GiB before
    errors = read_csv_rows(tmp_path / "huge.errors.csv")
    assert [(e["row"], e["reason"][:21], e["raw"]) for e in errors] == [
        ("3", "row longer than 65,53", "")]
    phones = await pool.fetch("SELECT phone FROM contacts WHERE campaign_id = $1 ORDER BY 1",
                              campaign_id)
    assert [r["phone"] for r in phones] == ["+14155550101", "+14155552671"]


async def test_a_long_field_is_an_error_row(pool: asyncpg.Pool, dsn: str, tmp_path: Path) -> None:
    await make_campaign(pool)
    path = tmp_path / "c.csv"
    long = "n" * (importer.MAX_FIELD_CHARS + 1)
    path.write_text(f"phone,note\n+14155552671,ok\n+14155550100,{long}\n")
    done = await cli(dsn, "import", "spring", str(path))
    assert done.returncode == 0, done.stderr
    assert "loaded:     1" in done.stdout and "rejected:   1" in done.stdout
    [error] = read_csv_rows(tmp_path / "c.errors.csv")
    assert (error["row"], error["field"]) == ("3", "note")
    assert error["reason"] == "value longer than 2,000 characters (2,001)"


def _contacts_file(rows: int) -> bytes:
    return b"phone,name\n" + b"".join(
        f"+1415{3000000 + i:07d},name{i}\n".encode() for i in range(rows))


def _packed(whole: bytes, *, every: int) -> bytes:
    """gzip data with a full flush every ``every`` lines: the damage then comes after
    whole batches, and a block header can be found to damage."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
    lines = whole.splitlines(keepends=True)
    return b"".join(
        compressor.compress(b"".join(lines[i:i + every])) + compressor.flush(zlib.Z_FULL_FLUSH)
        for i in range(0, len(lines), every)
    ) + compressor.flush()


async def test_a_truncated_gzip_keeps_what_was_loaded_and_says_how_much(
    pool: asyncpg.Pool, dsn: str, tmp_path: Path
) -> None:
    campaign_id = await make_campaign(pool)
    whole = _contacts_file(30_000)
    packed = _packed(whole, every=5_000)
    path = tmp_path / "c.csv.gz"
    path.write_bytes(packed[: len(packed) * 3 // 4])

    done = await cli(dsn, "import", "spring", str(path), "--batch-rows", "2500")
    stderr = one_line(done, 1, str(path), "the gzip data ends early", "truncated",
                      "contacts were loaded before it and they stay",
                      "run the same import again")
    loaded = await count(pool, "contacts")
    assert 0 < loaded < 30_000
    assert f"; {loaded:,} contacts were loaded" in stderr
    assert f"loaded:     {loaded}\n" in done.stdout
    # Every row loaded is a row of the file, as it is in the file.
    stored = {(r["phone"], r["attributes"]["name"]) for r in await pool.fetch(
        "SELECT phone, attributes FROM contacts WHERE campaign_id = $1", campaign_id)}
    assert stored <= {(f"+1415{3000000 + i:07d}", f"name{i}") for i in range(30_000)}

    path.write_bytes(gzip.compress(whole))  # whole again: the same import
    again = await cli(dsn, "import", "spring", str(path))
    assert again.returncode == 0, again.stderr
    assert f"loaded:     {30_000 - loaded}\n" in again.stdout
    assert f"duplicates: {loaded}\n" in again.stdout
    assert await count(pool, "contacts") == 30_000


@pytest.mark.parametrize("damage", ["invalid block", "garbled bytes"])
async def test_corrupt_gzip_data_is_refused_before_anything_is_loaded(
    pool: asyncpg.Pool, dsn: str, tmp_path: Path, damage: str
) -> None:
    await make_campaign(pool)
    packed = _packed(_contacts_file(30_000), every=5_000)
    cut = len(packed) * 3 // 4
    if damage == "invalid block":  # the block after a flush point gets the reserved type
        at = packed.rfind(b"\x00\x00\xff\xff", 0, cut) + 4
        broken = packed[:at] + b"\x07" + packed[at + 1:]
    else:  # bytes that still decode, into wrong rows: only the checksum at the end tells
        broken = packed[:cut] + bytes(b ^ 0x5A for b in packed[cut:cut + 64]) + packed[cut + 64:]
    path = tmp_path / "c.csv.gz"
    path.write_bytes(broken)
    for command in (("import", "spring"), ("dnc", "import")):
        one_line(await cli(dsn, *command, str(path)), 1, str(path),
                 "the gzip data is corrupt", "nothing was imported")
    assert await count(pool, "contacts") == 0 and await count(pool, "dnc_numbers") == 0


ANSI = b"\x1b]0;owned\x07\x1b[2J"


@pytest.mark.parametrize(
    ("content", "words"),
    [
        # no data rows
        (b"phone,name\n", ("has a header row but no data rows",)),
        (b"phone,name\n\n\n", ("has a header row but no data rows",)),
        (b"", ("is empty",)),
        (b"\xef\xbb\xbf", ("is empty",)),
        (gzip.compress(b""), ("is empty",)),
        (gzip.compress(b"phone\n"), ("has a header row but no data rows",)),
        # not CSV text: named, never echoed
        (b"\x7fELF\x02\x01\x01" + bytes(range(256)) * 8, ("binary data",)),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200), ("binary data",)),
        (b"PK\x03\x04" + bytes(100), ("ZIP archive", "export the sheet as CSV")),
        ("phone,name\n+14155552671,Zoë\n".encode("utf-16"), ("UTF-16",)),
        (b"phone," + ANSI + b"name\n+14155552671,x\n", ("control characters",)),
        (b"phone,n\xff\xfeame\n+14155552671,x\n", ("not valid UTF-8",)),
        (gzip.compress(os.urandom(3000)), ("binary data",)),
        (b"\x1f\x8b\x08\x00" + ANSI * 20, ("the gzip data is corrupt", "nothing was imported")),
    ],
)
async def test_unusable_files_are_named_and_never_echoed(
    pool: asyncpg.Pool, dsn: str, tmp_path: Path, content: bytes, words: tuple[str, ...]
) -> None:
    await make_campaign(pool)
    path = tmp_path / "contacts.csv"
    path.write_bytes(content)
    for command in (("import", "spring"), ("dnc", "import")):
        stderr = one_line(await cli(dsn, *command, str(path)), 1, str(path), *words)
        assert "\x1b" not in stderr and "owned" not in stderr and "\ufffd" not in stderr
    assert await count(pool, "contacts") == 0 and await count(pool, "dnc_numbers") == 0


# ---- what is not the operator's fault ------------------------------------------------------


async def test_an_unexpected_error_is_one_line_unless_debugging(
    pool: asyncpg.Pool, dsn: str
) -> None:
    await make_campaign(pool)
    await pool.execute("DROP VIEW campaign_summary")  # a database broken by hand
    args = ("report", "spring", "--csv", os.devnull)
    one_line(await cli(dsn, *args), 1, "unexpected error", "UndefinedTableError",
             "--debug")
    for debug in (await cli(dsn, "--debug", *args), await cli(dsn, *args,
                                                              DIALER_LOG_LEVEL="debug")):
        assert debug.returncode == 1
        assert "Traceback" in debug.stderr and "UndefinedTableError" in debug.stderr
