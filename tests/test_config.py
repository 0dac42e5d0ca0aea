"""Settings: defaults work, bad values stop the program naming the variable."""

from __future__ import annotations

import pytest

from dialer.config import SettingsError, load_settings
from tests.helpers import run_cli


def test_defaults_work_locally() -> None:
    settings = load_settings()
    assert settings.twilio_cps == 1.0
    assert settings.bind_port == 8080
    assert settings.database_url is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DIALER_TWILIO_CPS", "fast"),
        ("DIALER_TWILIO_CPS", "0"),
        ("DIALER_CALLBACK_BIND", "8080"),
        ("DIALER_PUBLIC_BASE_URL", "ftp://x"),
        ("DIALER_TWILIO_ACCOUNT_SID", "not-a-sid"),
        ("DIALER_LOG_FORMAT", "xml"),
    ],
)
def test_bad_setting_is_named(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=name):
        load_settings()


def test_cli_exits_2_naming_the_setting() -> None:
    result = run_cli("migrate", env={"DIALER_TWILIO_CPS": "abc"})
    assert result.returncode == 2
    assert "DIALER_TWILIO_CPS" in result.stderr


def test_secret_is_not_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIALER_TWILIO_AUTH_TOKEN", "s3cr3t-token")
    settings = load_settings()
    assert "s3cr3t-token" not in repr(settings)
    assert settings.twilio_auth_token is not None
    assert settings.twilio_auth_token.get_secret_value() == "s3cr3t-token"


def test_auth_token_from_credentials_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    from pathlib import Path

    folder = Path(str(tmp_path))
    (folder / "dialer_twilio_auth_token").write_text("from-file\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(folder))
    settings = load_settings()
    assert settings.twilio_auth_token is not None
    assert settings.twilio_auth_token.get_secret_value() == "from-file"
