"""Where accounts' secrets come from (dialer.credentials): the credentials file, with its
mode checked, systemd's per-account credentials, and the settings for the default
account; problems name the file and line, never the secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from dialer import credentials
from dialer.config import Settings
from dialer.credentials import CredentialsError
from dialer.testing import account_sid, write_credentials

A, B, C = account_sid(0), account_sid(1), account_sid(2)


def test_a_file_gives_tokens_and_shared_keys_by_sid() -> None:
    text = f"# the agency's clients\n\n{A}=token-a\n  {B} = token-b  \n{A}:shared_key=key-a\n"
    found = credentials.parse_file(text, where="F")
    assert set(found) == {A, B}
    assert found[A].auth_token is not None and found[A].auth_token.value == "token-a"
    assert found[A].auth_token.source == "F line 3"
    assert found[A].shared_key is not None and found[A].shared_key.value == "key-a"
    assert found[B].auth_token is not None and found[B].auth_token.value == "token-b"
    assert found[B].shared_key is None
    assert "token-a" not in repr(found[A])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ACnot-a-sid=secret-1\n", "F line 1: expected SID=TOKEN"),
        (f"{A} secret-1\n", "F line 1: expected SID=TOKEN"),
        (f"# c\n{A}=\n", f"F line 2: the token of {A} is empty"),
        (f"{A}=secret-1\n{A}=secret-2\n", f"F line 2: the token of {A} is given again (first "
                                          "on line 1)"),
        (f"{A}:shared_key=secret-1\n{A}:shared_key=secret-2\n", "the shared key of"),
    ],
)
def test_a_bad_line_is_named_and_its_secret_is_not_shown(text: str, message: str) -> None:
    with pytest.raises(CredentialsError) as error:
        credentials.parse_file(text, where="F")
    assert message in str(error.value)
    assert "secret-" not in str(error.value)


def test_a_file_others_can_read_is_refused(tmp_path: Path) -> None:
    path = write_credentials(tmp_path / "accounts", {A: "token-a"}, mode=0o640)
    with pytest.raises(CredentialsError) as error:
        credentials.read_file(path)
    assert str(error.value) == (
        f"DIALER_CREDENTIALS_FILE {path}: mode 0640 lets other users read it; it must be "
        f"readable by its owner only (chmod 600 {path})")
    path.chmod(0o400)
    assert credentials.read_file(path)[A].auth_token is not None


def test_a_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError, match="accounts: cannot read it"):
        credentials.read_file(tmp_path / "accounts")


def test_the_file_comes_first_then_systemd_then_the_settings(tmp_path: Path) -> None:
    path = write_credentials(tmp_path / "accounts", {A: "from-file"})
    systemd = tmp_path / "creds"
    systemd.mkdir()
    (systemd / f"dialer_twilio_auth_token_{A}").write_text("from-systemd-a\n")
    (systemd / f"dialer_twilio_auth_token_{B}").write_text("from-systemd-b\n")
    (systemd / f"dialer_twilio_webhook_shared_key_{B}").write_text("key-b")
    (systemd / "dialer_twilio_auth_token_not-a-sid").write_text("ignored")
    settings = Settings(credentials_file=path, twilio_account_sid=C,
                        twilio_auth_token="from-settings")
    keyring = credentials.load(settings, environ={"CREDENTIALS_DIRECTORY": str(systemd)})
    assert keyring.token(A) == "from-file"
    assert keyring.token(B) == "from-systemd-b" and keyring.shared_key(B) == "key-b"
    assert keyring[B].auth_token is not None
    assert keyring[B].auth_token.source == f"credential dialer_twilio_auth_token_{B}"
    assert keyring.token(C) == "from-settings"
    assert keyring[C].auth_token is not None
    assert keyring[C].auth_token.source == "DIALER_TWILIO_AUTH_TOKEN"
    assert keyring.token(account_sid(9)) is None
    assert sorted(keyring) == sorted([A, B, C])


def test_an_empty_systemd_credential_is_refused(tmp_path: Path) -> None:
    (tmp_path / f"dialer_twilio_auth_token_{A}").write_text("\n")
    with pytest.raises(CredentialsError, match=f"credential dialer_twilio_auth_token_{A}: empty"):
        credentials.read_systemd(tmp_path)
