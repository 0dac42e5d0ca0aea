"""``dialer account ...`` and ``campaign create --account``: accounts are rows with
limits and a label, their tokens never an option; mistakes are one line naming the
option (exit 2) or the account (exit 1); every change wakes the daemons."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import asyncpg
import pytest

from dialer import cli
from dialer.testing import account_sid, write_credentials

DEFAULT, ACME, GLOBEX = account_sid(0), account_sid(1), account_sid(2)
BASE = ("--from", "+14155552671", "--twiml-url", "https://example.com/twiml")


@pytest.fixture
def account_env(dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The default account from the settings, ACME's token in a credentials file."""
    path = write_credentials(tmp_path / "accounts", {ACME: "acme-secret-token"})
    monkeypatch.setenv("DIALER_DATABASE_URL", dsn)
    monkeypatch.setenv("DIALER_TWILIO_ACCOUNT_SID", DEFAULT)
    monkeypatch.setenv("DIALER_TWILIO_CPS", "7")
    monkeypatch.setenv("DIALER_CREDENTIALS_FILE", str(path))
    monkeypatch.setenv("COLUMNS", "400")  # rich's tables: no path wrapped in a cell
    return path


async def dialer(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """The real command in a thread (this loop keeps running), its exit code and output."""
    code = await asyncio.to_thread(cli.main, list(args))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


async def test_add_list_show_edit_remove(
    account_env: Path, pool: asyncpg.Pool, dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    listener = await asyncpg.connect(dsn)
    woken: list[str] = []
    await listener.add_listener("dialer_accounts", lambda *a: woken.append(a[3]))
    try:
        code, out = await dialer(capsys, "account", "add", ACME, "--cps", "5",
                                 "--max-concurrent", "20", "--label", "acme")
        assert code == 0, out
        assert f"account {ACME} (acme) added: 5 CPS, max concurrent 20" in out
        assert "next: give its token" not in out  # the file has it
        code, out = await dialer(capsys, "account", "add", GLOBEX, "--max-in-flight", "8")
        assert code == 0, out
        assert f"next: give its token as {GLOBEX}=TOKEN" in out
        row = await pool.fetchrow("SELECT * FROM accounts WHERE sid = $1", GLOBEX)
        assert (float(row["cps"]), row["max_in_flight"], row["label"]) == (1.0, 8, None)

        code, out = await dialer(capsys, "account", "show", "acme")
        assert code == 0, out
        assert f"{account_env} line 1" in out and "acme-secret-token" not in out
        code, out = await dialer(capsys, "account", "list")
        assert code == 0, out
        assert ACME in out and GLOBEX in out and "none found here" in out

        code, out = await dialer(capsys, "account", "edit", "acme", "--cps", "12.5",
                                 "--max-concurrent", "none")
        assert code == 0, out
        assert "updated: cps, max concurrent" in out
        row = await pool.fetchrow("SELECT * FROM accounts WHERE sid = $1", ACME)
        assert (float(row["cps"]), row["max_concurrent_calls"]) == (12.5, None)

        code, out = await dialer(capsys, "account", "remove", GLOBEX)
        assert code == 0, out
        assert await pool.fetchval("SELECT count(*) FROM accounts WHERE sid = $1", GLOBEX) == 0
        await asyncio.sleep(0.1)
        assert woken.count(ACME) == 2 and woken.count(GLOBEX) == 2
    finally:
        await listener.close()


async def test_a_campaign_belongs_to_the_account_named_by_sid_or_label(
    account_env: Path, pool: asyncpg.Pool, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (await dialer(capsys, "account", "add", ACME, "--label", "acme"))[0] == 0
    assert (await dialer(capsys, "campaign", "create", "ours", *BASE))[0] == 0
    assert (await dialer(capsys, "campaign", "create", "theirs", *BASE,
                         "--account", "acme"))[0] == 0
    assert (await dialer(capsys, "campaign", "create", "by-sid", *BASE,
                         "--account", ACME))[0] == 0
    owners = dict(await pool.fetch("SELECT name, account_sid FROM campaigns"))
    assert owners == {"ours": DEFAULT, "theirs": ACME, "by-sid": ACME}
    code, out = await dialer(capsys, "campaign", "create", "lost", *BASE, "--account", "nobody")
    assert code == 1
    assert out.strip() == ("dialer: --account: no account 'nobody' (see `dialer account "
                           "list`, or add it with `dialer account add SID`)")
    code, out = await dialer(capsys, "account", "remove", "acme")
    assert code == 1 and "has 2 campaign(s)" in out


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("account", "add", "AC123"), 2, "an account SID is AC followed by 32 hex digits"),
        (("account", "add", ACME, "--cps", "0"), 2, "--cps"),
        (("account", "add", ACME, "--max-concurrent", "lots"), 2, "--max-concurrent"),
        (("account", "add", ACME, "--label", DEFAULT), 2, "not an account SID"),
        (("account", "add", DEFAULT), 2, "is the default account"),
        (("account", "edit", DEFAULT, "--cps", "3"), 2, "DIALER_TWILIO_CPS"),
        (("account", "remove", DEFAULT), 2, "unset that setting"),
        (("account", "show", "nobody"), 1, "no account 'nobody'"),
    ],
)
async def test_mistakes_are_one_line(
    account_env: Path, pool: asyncpg.Pool, capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...], code: int, message: str,
) -> None:
    assert (await dialer(capsys, "campaign", "create", "ours", *BASE))[0] == 0  # DEFAULT's row
    try:
        got, out = await dialer(capsys, *args)
    except SystemExit as exit_:  # argparse refuses the value
        got, out = int(str(exit_.code)), capsys.readouterr().err
    assert got == code, out
    assert message in out
    assert "Traceback" not in out and out.strip().count("\n") == 0


async def test_a_taken_label_is_refused(
    account_env: Path, pool: asyncpg.Pool, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (await dialer(capsys, "account", "add", ACME, "--label", "acme"))[0] == 0
    code, out = await dialer(capsys, "account", "add", GLOBEX, "--label", "acme")
    assert code == 1 and "'acme' names another account already" in out
    code, out = await dialer(capsys, "account", "add", ACME)
    assert code == 1 and "exists already" in out


async def test_a_readable_credentials_file_is_reported_not_used(
    account_env: Path, pool: asyncpg.Pool, capsys: pytest.CaptureFixture[str]
) -> None:
    os.chmod(account_env, 0o644)
    assert (await dialer(capsys, "account", "add", ACME))[0] == 0
    code, out = await dialer(capsys, "account", "show", ACME)
    assert code == 0
    assert "none found here" in out and "mode 0644 lets other users read it" in out
