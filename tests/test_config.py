"""Settings: defaults work, bad values stop the program naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from dialer.config import SettingsError, load_settings
from dialer.testing import run_cli


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
        ("DIALER_CAPS", "3/24x"),
        ("DIALER_CAPS", "3/24h,"),
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


def test_caps_for_every_campaign(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIALER_CAPS", " 3/24h, 7/7d ")
    settings = load_settings()
    assert settings.caps == "3/24h,7/7d"
    assert [(c.source, str(c)) for c in settings.cap_rules] == [("settings", "3/24h"),
                                                              ("settings", "7/7d")]


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


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DIALER_TWILIO_WEBHOOK_SHARED_KEY", ""),
        ("DIALER_CALLBACK_READ_TIMEOUT", "0"),
        ("DIALER_CALLBACK_READ_TIMEOUT", "121"),
        ("DIALER_CALLBACK_MAX_CONNECTIONS", "7"),
        ("DIALER_CALLBACK_MAX_CONNECTIONS", "70000"),
    ],
)
def test_bad_callback_setting_is_named(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=name):
        load_settings()


@pytest.mark.parametrize("source", ["environment", "env file", "credentials directory"])
def test_webhook_shared_key_is_read_like_the_auth_token(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, source: str
) -> None:
    if source == "environment":
        monkeypatch.setenv("DIALER_TWILIO_WEBHOOK_SHARED_KEY", "rule-secret")
    elif source == "env file":
        env_file = tmp_path / "dialer.env"
        env_file.write_text("DIALER_TWILIO_WEBHOOK_SHARED_KEY=rule-secret\n")
        monkeypatch.setenv("DIALER_ENV_FILE", str(env_file))
    else:
        (tmp_path / "dialer_twilio_webhook_shared_key").write_text("rule-secret\n")
        monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    settings = load_settings()
    assert settings.twilio_webhook_shared_key is not None
    assert settings.twilio_webhook_shared_key.get_secret_value() == "rule-secret"
    assert "rule-secret" not in repr(settings)
