"""All configuration of the dialer, in one place.

Settings come from the environment (prefix ``DIALER_``), from an optional env file
(``DIALER_ENV_FILE``, default ``./.env`` when present) and, for secrets, from files in
systemd's ``$CREDENTIALS_DIRECTORY`` (``LoadCredential=dialer_twilio_auth_token:...``,
``LoadCredential=dialer_twilio_webhook_shared_key:...``).
Secrets are never accepted on the command line and are ``SecretStr`` so that no repr
or log line shows them. The secrets of accounts other than the default one come from
the credentials file or per-account credentials (``dialer.credentials``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from dialer.caps import Cap, parse_caps

ENV_PREFIX = "DIALER_"


class SettingsError(Exception):
    """Raised with a message that names the offending ``DIALER_*`` variable."""


def _default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("dialer", appauthor=False))


def _split_host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected host:port, got {value!r}")
    return host.strip("[]"), int(port)


class Settings(BaseSettings):
    """Every knob of the daemon; defaults work on a laptop with the simulator."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="ignore",
        validate_default=True,
        case_sensitive=False,
    )

    database_url: SecretStr | None = Field(
        default=None, description="Postgres DSN; unset: embedded server in data_dir."
    )
    data_dir: Path = Field(default_factory=_default_data_dir)

    twilio_account_sid: str | None = Field(default=None, pattern=r"^AC[0-9a-fA-F]{32}$")
    twilio_auth_token: SecretStr | None = None
    twilio_webhook_shared_key: SecretStr | None = Field(
        default=None, min_length=1,
        description="the SharedKey secret of a Webhooks Rule that signs our callbacks",
    )
    credentials_file: Path | None = Field(
        default=None,
        description="accounts credentials file (SID=token lines, mode 0600): dialer.credentials",
    )
    twilio_api_base: str = Field(default="https://api.twilio.com", pattern=r"^https?://[^/]+$")
    twilio_cps: float = Field(default=1.0, gt=0, le=1000)
    twilio_max_concurrent_calls: int | None = Field(default=None, gt=0, le=100_000)
    twilio_timeout: float = Field(default=10.0, gt=0, le=120, description="HTTP timeout, s")
    twilio_max_in_flight: int = Field(
        default=32, ge=1, le=1000, description="API requests in flight at once (20429 guard)"
    )

    callback_bind: str = "127.0.0.1:8080"
    public_base_url: str = Field(default="http://127.0.0.1:8080", pattern=r"^https?://[^#?]+$")
    callback_retries: int = Field(
        default=3, ge=0, le=5, description="#rc= retries asked of Twilio for our callbacks"
    )
    callback_max_body: int = Field(default=64 * 1024, ge=1024)
    callback_read_timeout: float = Field(
        default=10.0, gt=0, le=120,
        description="seconds a client has to send a whole request (headers and body)",
    )
    callback_max_connections: int = Field(
        default=500, ge=8, le=65536,
        description="connections and requests at once; past it requests get 503",
    )

    log_format: Literal["console", "json"] | None = None
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_phone_numbers: bool = False

    caps: str = Field(
        default="", max_length=1000,
        description="caps on calls per number and subject for every campaign, e.g. 3/24h,7/7d",
    )

    default_region: str = Field(default="US", pattern=r"^[A-Z]{2}$")
    heartbeat_seconds: float = Field(default=2.0, gt=0, le=60)
    dead_worker_seconds: float = Field(default=15.0, gt=0, le=3600)
    reconcile_after_seconds: float = Field(
        default=5.0, ge=0, le=3600, description="age of an ambiguous attempt before listing"
    )
    stale_call_seconds: float = Field(
        default=900.0, gt=0, description="live call with no final callback: fetch it"
    )
    poll_seconds: float = Field(default=0.5, gt=0, le=10, description="idle poll interval")
    drain_seconds: float = Field(default=10.0, ge=0, le=600)
    shutdown_grace_seconds: float = Field(default=10.0, gt=0, le=600)

    @field_validator("callback_bind")
    @classmethod
    def _check_bind(cls, value: str) -> str:
        _split_host_port(value)
        return value

    @field_validator("caps")
    @classmethod
    def _check_caps(cls, value: str) -> str:
        return ",".join(str(cap) for cap in parse_caps(value, source="settings"))

    @field_validator("public_base_url", "twilio_api_base")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @property
    def cap_rules(self) -> tuple[Cap, ...]:
        """DIALER_CAPS: caps every campaign's calls are checked against."""
        return parse_caps(self.caps, source="settings")

    @property
    def bind_host(self) -> str:
        return _split_host_port(self.callback_bind)[0]

    @property
    def bind_port(self) -> int:
        return _split_host_port(self.callback_bind)[1]


def load_settings() -> Settings:
    """Build Settings, turning validation errors into one message naming each variable."""
    env_file = os.environ.get(f"{ENV_PREFIX}ENV_FILE", ".env")
    secrets_dir = os.environ.get("CREDENTIALS_DIRECTORY")
    try:
        return Settings(
            _env_file=env_file if Path(env_file).is_file() else None,
            _secrets_dir=secrets_dir,
        )
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = ENV_PREFIX + "_".join(str(part) for part in error["loc"]).upper()
            problems.append(f"{name}: {error['msg']}")
        raise SettingsError("invalid setting " + "; ".join(problems)) from None
