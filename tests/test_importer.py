"""Contact import: bad rows reported and skipped, good rows loaded once, whatever
happens to the process doing it (real Postgres, real CLI for the operator paths)."""

from __future__ import annotations

import asyncio
import gzip
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dialer import importer, phone, repository
from dialer.contactfile import ContactLines
from dialer.importer import ImportFileError, Layout, import_contacts, parse_header, parse_rows
from dialer.phone import is_e164
from dialer.testing import SIM_SID, clean_env, make_campaign, read_csv_rows, run_cli
from dialer.testing.contact_files import contact_rows, write_contacts

# Every kind of row the importer must handle; the comment is its row number.
MIXED = b"".join([
    b"phone,first_name,timezone,plan\n",                       # 1 header
    b"+14155552671,Ada,,gold\n",                               # 2 good, zone from number
    b"hello,Bob,,silver\n",                                    # 3 not a number
    b"+12127365000,Eve,Mars/Olympus,gold\n",                   # 4 bad time zone
    b"+12127365000,Eve,gold\n",                                # 5 wrong column count
    b"+442079460958,\xff\xfeZo\xeb,,gold\n",                   # 6 invalid UTF-8
    b",Nobody,,gold\n",                                        # 7 empty phone
    b"(415) 555-2671,Ada again,,gold\n",                       # 8 duplicate of row 2
    b"+33142685300,Marie,Europe/Paris,platinum\n",             # 9 good, zone given
    b"\n",                                                     # 10 blank: ignored
    b"+12127365000,Dee,,bronze\n",                             # 11 on the do-not-call list
    b"+18005550199,Toll,,free\n",                              # 12 good, zone unknown
    b"+14155550100\x00,Nul,,gold\n",                           # 13 NUL byte
    "+61293744000,Zoë,,gold\n".encode(),                       # 14 good, UTF-8 name
    b'"+4930901820","Multi\nline",,gold\n',                    # 15 good, quoted newline
    b"+1 415 555 2671 ext. 12,Ext,,gold\n",                    # 16 has an extension
])


async def test_mixed_file_rejects_bad_rows_and_loads_the_rest(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    campaign_id = await make_campaign(pool)
    other = await make_campaign(pool, "other")
    await repository.dnc_add(pool, "+12127365000", None, "asked")
    # Another campaign's list does not apply to this one.
    await repository.dnc_add(pool, "+33142685300", other, None)
    path = tmp_path / "contacts.csv"
    path.write_bytes(MIXED)

    result = await import_contacts(pool, campaign_id, path, workers=0)

    assert (result.read, result.loaded, result.duplicates, result.dnc, result.rejected) == (
        14, 5, 1, 1, 7
    )
    assert result.errors_path == tmp_path / "contacts.errors.csv"
    errors = {int(e["row"]): e for e in read_csv_rows(result.errors_path)}
    assert sorted(errors) == [3, 4, 5, 6, 7, 13, 16]
    assert errors[3]["field"] == "phone" and errors[3]["reason"] == "invalid number: not a number"
    assert errors[3]["raw"] == "hello,Bob,,silver"
    assert errors[4]["field"] == "timezone" and "Mars/Olympus" in errors[4]["reason"]
    assert errors[5]["field"] == "" and errors[5]["reason"] == "expected 4 columns, got 3"
    assert errors[6]["field"] == "first_name" and errors[6]["reason"] == "invalid UTF-8"
    assert errors[6]["raw"] == "+442079460958,\\xff\\xfeZo\\xeb,,gold"
    assert errors[7]["field"] == "phone" and errors[7]["reason"] == "empty phone number"
    assert errors[13]["reason"] == "NUL character"
    assert errors[16]["reason"] == "invalid number: has an extension"

    rows = await pool.fetch(
        "SELECT phone, zones, zone_source, states, state_sources, attributes, state, reason"
        " FROM contacts WHERE campaign_id = $1 ORDER BY id", campaign_id
    )
    got = [(r["phone"], r["zones"], r["zone_source"], r["states"], r["state"], r["reason"])
           for r in rows]
    assert got == [
        ("+14155552671", ["America/Los_Angeles"], "number", ["CA"], "pending", None),
        ("+33142685300", ["Europe/Paris"], "csv", [], "pending", None),
        ("+12127365000", ["America/New_York"], "number", ["NY"], "skipped", "dnc"),
        ("+18005550199", sorted(phone.time_zones_for("+18005550199")), "number", ["US"],
         "pending", None),
        ("+61293744000", ["Australia/Sydney"], "number", [], "pending", None),
        ("+4930901820", ["Europe/Berlin"], "number", [], "pending", None),
    ]
    assert len(rows[3]["zones"]) > 40  # toll-free: every NANP zone
    assert [r["state_sources"] for r in rows] == [["number"], [], ["number"], ["number"], [], []]
    # The first spelling of a number wins; other columns become attributes.
    assert rows[0]["attributes"] == {"first_name": "Ada", "plan": "gold"}
    assert rows[4]["attributes"]["first_name"] == "Zoë"
    assert rows[5]["attributes"]["first_name"] == "Multi\nline"


async def test_rerun_is_idempotent_and_counts_duplicates(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    campaign_id = await make_campaign(pool)
    await repository.dnc_add(pool, "+12127365000", None, None)
    path = tmp_path / "contacts.csv"
    path.write_bytes(MIXED)
    first = await import_contacts(pool, campaign_id, path, workers=0)
    second = await import_contacts(pool, campaign_id, path, workers=0)
    assert (second.read, second.loaded, second.dnc, second.rejected) == (14, 0, 0, 7)
    assert second.duplicates == first.loaded + first.dnc + first.duplicates
    assert await pool.fetchval("SELECT count(*) FROM contacts") == first.loaded + first.dnc


@pytest.mark.parametrize("name", ["contacts.csv.gz", "contacts.csv"])
async def test_gzip_by_name_or_magic_bytes(pool: asyncpg.Pool, tmp_path: Path, name: str) -> None:
    campaign_id = await make_campaign(pool)
    path = tmp_path / name
    path.write_bytes(gzip.compress(MIXED))
    result = await import_contacts(pool, campaign_id, path, workers=0)
    assert (result.loaded, result.rejected) == (6, 7)
    assert result.errors_path == tmp_path / "contacts.errors.csv"


async def test_truncated_gzip_is_a_file_error(pool: asyncpg.Pool, tmp_path: Path) -> None:
    campaign_id = await make_campaign(pool)
    path = tmp_path / "contacts.csv.gz"
    path.write_bytes(gzip.compress(MIXED * 50)[:-40])
    with pytest.raises(ImportFileError, match="gzip"):
        await import_contacts(pool, campaign_id, path, workers=0)


async def test_worker_processes_give_the_same_result(pool: asyncpg.Pool, tmp_path: Path) -> None:
    campaign_id = await make_campaign(pool)
    generated = write_contacts(tmp_path / "big.csv", 3000)
    with (tmp_path / "big.csv").open("a") as f:
        f.write("not a number,x,y,z,c,,1\n")
    seen: list[tuple[int, int]] = []
    result = await import_contacts(
        pool, campaign_id, generated.path, workers=2, batch_rows=500,
        on_progress=lambda done, total: seen.append((done, total)),
    )
    assert result.loaded == generated.distinct
    assert result.duplicates == generated.rows - generated.distinct
    assert result.rejected == 1
    assert result.errors_path is not None
    assert [int(e["row"]) for e in read_csv_rows(result.errors_path)] == [3002]
    size = generated.path.stat().st_size
    assert seen[-1] == (size, size) and len(seen) >= 6
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)


async def test_two_imports_into_one_campaign_take_turns(pool: asyncpg.Pool, tmp_path: Path) -> None:
    """Both start on an empty campaign: one COPYs straight into contacts, the other
    waits its turn and then finds every number there. Contacts keep the file's order."""
    campaign_id = await make_campaign(pool)
    generated = write_contacts(tmp_path / "c.csv", 2000)
    results = await asyncio.gather(*(
        import_contacts(pool, campaign_id, generated.path, workers=0, batch_rows=300)
        for _ in range(2)))
    assert sorted(r.loaded for r in results) == [0, generated.distinct]
    assert sum(r.duplicates for r in results) == 2 * generated.rows - generated.distinct
    first_seen = list(dict.fromkeys(e164 for _, e164 in contact_rows(generated.rows)))
    stored = await pool.fetch("SELECT phone FROM contacts WHERE campaign_id = $1 ORDER BY id",
                              campaign_id)
    assert [row["phone"] for row in stored] == first_seen


async def test_import_into_running_campaign_adds_pending_contacts(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    campaign_id = await make_campaign(pool, state="draft")
    assert await repository.set_campaign_state(pool, campaign_id, "running", ["draft"])
    path = tmp_path / "c.csv"
    path.write_text("Phone Number,name\n+14155552671,Ada\n")
    result = await import_contacts(pool, campaign_id, path, phone_column="phone number")
    assert result.loaded == 1 and result.errors_path is None
    assert await pool.fetchval("SELECT state FROM contacts") == "pending"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"number,name\n+14155552671,Ada\n", "no column 'phone'"),
        (b"phone,name,Name\n", "appears twice"),
        (b"phone,n\xffame\n", "not valid UTF-8"),
        (b",,\n", "header row is empty"),
    ],
)
async def test_unusable_files(
    pool: asyncpg.Pool, tmp_path: Path, content: bytes, message: str
) -> None:
    campaign_id = await make_campaign(pool)
    path = tmp_path / "c.csv"
    path.write_bytes(content)
    with pytest.raises(ImportFileError, match=message):
        await import_contacts(pool, campaign_id, path)


STATES = b"".join([
    b"phone,state,timezone\n",                  # 1 header
    b"+14055550100,,\n",                         # 2 Oklahoma by its area code
    b"+14055550101,Texas,\n",                    # 3 a Texan with an Oklahoma number: both
    b"+14055550102,ok,\n",                       # 4 the same state, once, from the row
    b"+14155552671,Calfornia,\n",                # 5 a US number, no such state: rejected
    b"+16135550100,ON,\n",                       # 6 Ontario: no US state, kept
    b"+16135550101,NY,\n",                       # 7 a New Yorker with a Canadian number
    b"+442079460958,WA,\n",                      # 8 not NANP: "WA" is not read as a state
    b"+18005550100,,America/Chicago\n",          # 9 toll-free with a zone in the row
])


async def test_states_come_from_the_row_and_the_number(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    campaign_id = await make_campaign(pool)
    path = tmp_path / "states.csv"
    path.write_bytes(STATES)
    result = await import_contacts(pool, campaign_id, path, workers=0)
    assert (result.loaded, result.rejected) == (7, 1)
    assert result.errors_path is not None
    [error] = read_csv_rows(result.errors_path)
    assert (error["row"], error["field"]) == ("5", "state")
    assert "unknown US state 'Calfornia'" in error["reason"]
    rows = await pool.fetch("SELECT phone, zones, zone_source, states, state_sources, attributes"
                            " FROM contacts WHERE campaign_id = $1 ORDER BY id", campaign_id)
    located = {r["phone"]: (r["states"], r["state_sources"]) for r in rows}
    assert located == {
        "+14055550100": (["OK"], ["number"]),
        "+14055550101": (["TX", "OK"], ["csv", "number"]),
        "+14055550102": (["OK"], ["csv"]),
        "+16135550100": ([], []),
        "+16135550101": (["NY"], ["csv"]),
        "+442079460958": ([], []),
        "+18005550100": (["US"], ["number"]),
    }
    toll_free = rows[-1]
    assert (toll_free["zones"], toll_free["zone_source"]) == (["America/Chicago"], "csv")
    assert rows[1]["attributes"] == {"state": "Texas"}  # still there for personalisation


async def test_a_timezone_column_requeues_contacts_skipped_for_their_zones(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    campaign_id = await make_campaign(pool)
    path = tmp_path / "first.csv"
    path.write_bytes(b"phone\n+61412345678\n+61412345679\n+14155552671\n")
    await import_contacts(pool, campaign_id, path, workers=0)
    await pool.execute(
        "UPDATE contacts SET state = 'skipped', reason = 'no common calling time: ...'"
        " WHERE phone LIKE '+61%'")
    again = tmp_path / "again.csv"
    again.write_bytes(b"phone,timezone\n+61412345678,Australia/Perth\n"
                      b"+61412345679,\n+14155552671,America/New_York\n")
    result = await import_contacts(pool, campaign_id, again, workers=0)
    assert (result.loaded, result.duplicates) == (1, 2)
    rows = {r["phone"]: r for r in await pool.fetch(
        "SELECT phone, zones, zone_source, state, reason FROM contacts")}
    assert (rows["+61412345678"]["zones"], rows["+61412345678"]["state"]) == (
        ["Australia/Perth"], "pending")
    assert rows["+61412345678"]["reason"] is None
    assert rows["+61412345679"]["state"] == "skipped"  # no zone in the new row
    # A contact that was not skipped keeps the location it had.
    assert rows["+14155552671"]["zones"] == ["America/Los_Angeles"]


def test_default_error_file_names() -> None:
    assert importer.default_errors_path(Path("/d/x.csv")) == Path("/d/x.errors.csv")
    assert importer.default_errors_path(Path("/d/x.CSV.gz")) == Path("/d/x.errors.csv")
    assert importer.default_errors_path(Path("/d/x.txt")) == Path("/d/x.txt.errors.csv")


def test_region_is_checked() -> None:
    assert importer.check_region(" gb ") == "GB"
    with pytest.raises(ValueError, match="unknown region"):
        importer.check_region("XX")


_LAYOUT = parse_header(["phone", "timezone", "name"], phone_column="phone", region="US")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(st.text(max_size=20), min_size=0, max_size=4), max_size=20))
def test_every_row_is_either_loaded_or_rejected(rows: list[list[str]]) -> None:
    numbered = [(i + 2, fields) for i, fields in enumerate(rows)]
    records, rejected = parse_rows(_LAYOUT, numbered)
    assert sorted([r[0] for r in records] + [r.row for r in rejected]) == [n for n, _ in numbered]
    for _, number, zones, _, states, sources, attributes in records:
        assert number.startswith("+")
        assert len(states.split()) == len(sources.split())
        (zones + attributes).encode("utf-8")  # what Postgres receives must be valid UTF-8


def _copy_unescaped(field: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"t": "\t", "n": "\n", "r": "\r"}.get(m[1], m[1]), field)


# Values with what JSON or COPY text escapes (quotes, backslashes, control characters)
# and without: the plain rows' generated line and the escaping path must agree.
_values = st.text(st.sampled_from('ab é"\\\t\x01\x7f\u2028%{}:,'), max_size=6)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(names=st.lists(st.text(st.sampled_from('xy"\\%{} é'), min_size=1, max_size=4),
                      max_size=4, unique_by=lambda n: n.strip().lower()),
       rows=st.lists(st.lists(_values, min_size=4, max_size=4), min_size=1, max_size=8))
def test_copy_lines_carry_the_attributes_as_json_dumps_spells_them(
    names: list[str], rows: list[list[str]]
) -> None:
    names = [n for n in names if n.strip() and n.strip().lower() not in ("phone", "timezone")]
    layout = parse_header(["phone", *names], phone_column="phone", region="US")
    numbered = [(i + 2, [f"+1415555{2000 + i}", *values[:len(names)]])
                for i, values in enumerate(rows)]
    batch, rejected = ContactLines(layout, 7).convert(numbered)
    assert rejected == [] and len(batch.lines) == len(rows)
    for line, (_, fields) in zip(batch.lines, numbered, strict=True):
        attributes = line.rstrip("\n").split("\t")[7]
        expected = json.dumps({n.strip(): v for n, v in zip(names, fields[1:], strict=True)},
                              ensure_ascii=False, separators=(",", ":"))
        assert _copy_unescaped(attributes) == expected


def test_dnc_layout_ignores_other_columns() -> None:
    layout = parse_header(["Phone", "timezone", "x"], phone_column="phone", region="US",
                          contacts=False)
    assert layout == Layout(("Phone", "timezone", "x"), 0, None, (), "US", with_zone=False)
    records, rejected = parse_rows(layout, [(2, ["+14155552671", "Bad/Zone", "y"])])
    assert records == [(2, "+14155552671", "", "number", "", "", "{}")] and rejected == []


# ---- the real CLI ----------------------------------------------------------------


def cli_env(dsn: str, **extra: str) -> dict[str, str]:
    return {"DIALER_DATABASE_URL": dsn, "DIALER_TWILIO_ACCOUNT_SID": SIM_SID, **extra}


async def test_cli_import_summary_and_errors(pool: asyncpg.Pool, dsn: str, tmp_path: Path) -> None:
    await make_campaign(pool)
    path = tmp_path / "contacts.csv"
    path.write_bytes(MIXED)
    errors = tmp_path / "out" / "bad.csv"
    errors.parent.mkdir()

    done = run_cli("import", "spring", str(path), "--errors", str(errors), env=cli_env(dsn))
    assert done.returncode == 0, done.stderr
    assert "read:       14" in done.stdout
    assert "loaded:     6" in done.stdout
    assert "duplicates: 1" in done.stdout
    assert "dnc:        0" in done.stdout
    assert f"rejected:   7  (see {errors})" in done.stdout
    assert len(read_csv_rows(errors)) == 7

    for args, code, message in [
        (("import", "nope", str(path)), 1, "no campaign named 'nope'"),
        (("import", "spring", str(tmp_path / "missing.csv")), 2, "no such file"),
        (("import", "spring", str(path), "--region", "XX"), 2, "--region: unknown region"),
        (("import", "spring", str(path), "--phone-column", "tel"), 1, "no column 'tel'"),
    ]:
        done = run_cli(*args, env=cli_env(dsn))
        assert done.returncode == code, done
        assert message in done.stderr
        assert "Traceback" not in done.stderr
    assert run_cli("import", "spring", env=cli_env(dsn)).returncode == 2


async def test_cli_region_reads_national_numbers(
    pool: asyncpg.Pool, dsn: str, tmp_path: Path
) -> None:
    await make_campaign(pool)
    path = tmp_path / "uk.csv"
    path.write_text("phone\n020 7946 0958\n")
    done = run_cli("import", "spring", str(path), "--region", "GB", env=cli_env(dsn))
    assert done.returncode == 0, done.stderr
    assert await pool.fetchval("SELECT phone FROM contacts") == "+442079460958"


def children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.update(int(p) for p in (task / "children").read_text().split())
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize("workers", ["0", "2"])
async def test_killed_import_then_rerun_ends_with_exact_contacts(
    pool: asyncpg.Pool, dsn: str, tmp_path: Path, workers: str
) -> None:
    """SIGKILL mid-import: committed batches stay whole, a re-run adds the rest, and
    no parser process outlives the killed import."""
    campaign_id = await make_campaign(pool)
    generated = write_contacts(tmp_path / "big.csv", 40_000)
    env = clean_env(cli_env(dsn))
    proc = subprocess.Popen(
        [sys.executable, "-m", "dialer.cli", "import", "spring", str(generated.path),
         "--batch-rows", "1000", "--workers", workers],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while await pool.fetchval("SELECT count(*) FROM contacts") < 3000:
            assert proc.poll() is None, "the import ended before it could be killed"
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        helpers = children(proc.pid)
        assert len(helpers) >= int(workers)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(10) == -signal.SIGKILL
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in helpers):
            assert time.monotonic() < deadline, "parser processes outlived the import"
            await asyncio.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # The killed import's server sessions end on their own: a COMMIT that reached the
    # server before the kill still commits, maybe after the client is gone, so the
    # rows present are counted once no session of it is inside a transaction.
    deadline = time.monotonic() + 10
    while await pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND backend_type = 'client backend' AND xact_start IS NOT NULL"
            " AND pid <> pg_backend_pid()"):
        assert time.monotonic() < deadline, "the killed import's sessions never ended"
        await asyncio.sleep(0.02)
    before = await pool.fetchval("SELECT count(*) FROM contacts")
    assert 3000 <= before < generated.distinct

    done = run_cli("import", "spring", str(generated.path), env=cli_env(dsn))
    assert done.returncode == 0, done.stderr
    loaded = generated.distinct - before
    assert f"loaded:     {loaded}\n" in done.stdout
    assert f"duplicates: {generated.rows - loaded}\n" in done.stdout
    counts = await pool.fetchrow(
        "SELECT count(*) AS n, count(DISTINCT phone) AS d,"
        " count(*) FILTER (WHERE attributes ? 'customer_id') AS a"
        " FROM contacts WHERE campaign_id = $1", campaign_id
    )
    assert counts is not None
    assert (counts["n"], counts["d"], counts["a"]) == (generated.distinct,) * 3


# ---- random files --------------------------------------------------------------------


@st.composite
def damaged_files(draw: st.DrawFn) -> bytes:
    """The mixed file re-encoded, cut, spliced with random bytes or a huge field."""
    text = MIXED.decode("utf-8", errors="replace")  # its bad-encoding row, as U+FFFD
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "latin-1", "cp1252", "utf-16"]))
    data = text.encode(encoding, errors="replace")
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(data)))
        insert = draw(st.one_of(
            st.binary(max_size=40),
            st.sampled_from([b"\x00", b"\r", b'"', b"\n", b",", b"\xff\xfe", b"\xe2\x82"]),
            st.integers(1, 300_000).map(lambda n: b"9" * n),  # a huge field
        ))
        data = data[:at] + insert + data[at + draw(st.integers(0, 5)):]
    return data


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=damaged_files())
async def test_damaged_files_load_good_rows_or_fail_whole_and_never_store_bad_ones(
    pool: asyncpg.Pool, tmp_path_factory: pytest.TempPathFactory, data: bytes
) -> None:
    folder = tmp_path_factory.mktemp("fuzz")
    path = folder / "c.csv"
    path.write_bytes(data)
    campaign_id = await make_campaign(pool, f"fuzz{time.monotonic_ns()}")
    try:
        result = await import_contacts(pool, campaign_id, path, errors_path=folder / "e.csv")
    except ImportFileError as exc:
        assert str(exc)  # says what is wrong with the file
        result = None
    rows = await pool.fetch(
        "SELECT phone, attributes FROM contacts WHERE campaign_id = $1", campaign_id)
    for row in rows:  # whatever was stored came from a good row
        assert is_e164(row["phone"])
        assert "\x00" not in str(row["attributes"])
    if result is None:
        return
    assert result.read == result.loaded + result.duplicates + result.dnc + result.rejected
    assert len(rows) == result.loaded + result.dnc
    rejected = read_csv_rows(folder / "e.csv") if result.rejected else []
    assert len(rejected) == result.rejected
    assert all(r["reason"] for r in rejected)
