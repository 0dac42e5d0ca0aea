"""Where each account's secrets come from: its auth token and, when a Twilio Webhooks
Rule signs its callbacks, that rule's shared key. Never the command line, never the
database, never a log line.

For an account, each secret is taken from the first of these that has it:

1. the accounts credentials file (``DIALER_CREDENTIALS_FILE``), one secret per line::

       # comments and blank lines are ignored
       ACxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx=auth token
       ACxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx:shared_key=the Webhooks Rule's shared key

   It must be readable by its owner only (mode 0600 or 0400): a file others can read
   is refused, naming the file and its mode;
2. systemd credentials named per account in ``$CREDENTIALS_DIRECTORY``:
   ``dialer_twilio_auth_token_<SID>`` and ``dialer_twilio_webhook_shared_key_<SID>``;
3. for the default account only (``DIALER_TWILIO_ACCOUNT_SID``), the settings
   ``DIALER_TWILIO_AUTH_TOKEN`` and ``DIALER_TWILIO_WEBHOOK_SHARED_KEY`` (environment,
   env file, or the credentials ``dialer_twilio_auth_token`` and
   ``dialer_twilio_webhook_shared_key``), as before there were several accounts.

``dialer run`` reads them at start and again on SIGHUP (``systemctl reload``), so a
token is rotated without a restart by writing the new one into the file. systemd
copies its credentials when the service starts, so a token given that way changes
with a restart (``LoadCredential=``; whether a reload refreshes them is not
documented and was not verified here). Problems are one line naming the file and the
line, never the secret.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dialer.accounts import is_sid
from dialer.config import Settings

FILE_SETTING = "DIALER_CREDENTIALS_FILE"
TOKEN_CREDENTIAL = "dialer_twilio_auth_token_"
SHARED_KEY_CREDENTIAL = "dialer_twilio_webhook_shared_key_"
SHARED_KEY_SUFFIX = ":shared_key"
MAX_FILE_BYTES = 1 << 20
MAX_SECRET_CHARS = 4096


class CredentialsError(Exception):
    """A credentials source that cannot be used; the message names it (exit code 2)."""


@dataclass(frozen=True, slots=True)
class Secret:
    value: str = field(repr=False)
    source: str
    """Where it came from, for logs and ``dialer account show`` (never the value)."""


@dataclass(frozen=True, slots=True)
class AccountSecrets:
    auth_token: Secret | None = None
    shared_key: Secret | None = None


def parse_file(text: str, *, where: str) -> dict[str, AccountSecrets]:
    """The secrets of a credentials file, by account SID. ``where`` names the file in
    messages. Every line is checked; a problem names its line, never its content."""
    tokens: dict[str, Secret] = {}
    keys: dict[str, Secret] = {}
    first_line: dict[tuple[str, bool], int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, equals, value = line.partition("=")
        name, value = name.strip(), value.strip()
        shared = name.endswith(SHARED_KEY_SUFFIX)
        sid = name.removesuffix(SHARED_KEY_SUFFIX)
        if not equals or not is_sid(sid):
            raise CredentialsError(
                f"{where} line {number}: expected SID=TOKEN or SID{SHARED_KEY_SUFFIX}=KEY "
                "(SID: AC and 32 hex digits)")
        what = "shared key" if shared else "token"
        if not value or len(value) > MAX_SECRET_CHARS or not value.isprintable():
            raise CredentialsError(
                f"{where} line {number}: the {what} of {sid} is empty, longer than "
                f"{MAX_SECRET_CHARS} characters or not printable")
        if (sid, shared) in first_line:
            raise CredentialsError(
                f"{where} line {number}: the {what} of {sid} is given again (first on "
                f"line {first_line[sid, shared]})")
        first_line[sid, shared] = number
        (keys if shared else tokens)[sid] = Secret(value, f"{where} line {number}")
    return {sid: AccountSecrets(tokens.get(sid), keys.get(sid))
            for sid in sorted({*tokens, *keys})}


def read_file(path: Path) -> dict[str, AccountSecrets]:
    """The credentials file, after checking that only its owner can read it."""
    where = f"{FILE_SETTING} {path}"
    try:
        with path.open("rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise CredentialsError(f"{where}: not a regular file")
            if info.st_mode & 0o077:
                mode = stat.S_IMODE(info.st_mode)
                raise CredentialsError(
                    f"{where}: mode {mode:04o} lets other users read it; it must be "
                    f"readable by its owner only (chmod 600 {path})")
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise CredentialsError(f"{where}: cannot read it ({exc.strerror or exc})") from None
    if len(data) > MAX_FILE_BYTES:
        raise CredentialsError(f"{where}: larger than {MAX_FILE_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise CredentialsError(f"{where}: not UTF-8 text") from None
    return parse_file(text, where=where)


def read_systemd(directory: Path) -> dict[str, AccountSecrets]:
    """The per-account credentials systemd put in ``$CREDENTIALS_DIRECTORY``."""
    tokens: dict[str, Secret] = {}
    keys: dict[str, Secret] = {}
    try:
        entries = sorted(directory.iterdir())
    except OSError as exc:
        raise CredentialsError(
            f"CREDENTIALS_DIRECTORY {directory}: cannot list it ({exc.strerror or exc})"
        ) from None
    for entry in entries:
        for prefix, found in ((TOKEN_CREDENTIAL, tokens), (SHARED_KEY_CREDENTIAL, keys)):
            sid = entry.name.removeprefix(prefix)
            if sid == entry.name or not is_sid(sid):
                continue
            try:
                value = entry.read_text("utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                raise CredentialsError(f"credential {entry.name}: cannot read it ({exc})"
                                       ) from None
            if not value:
                raise CredentialsError(f"credential {entry.name}: empty")
            found[sid] = Secret(value, f"credential {entry.name}")
    return {sid: AccountSecrets(tokens.get(sid), keys.get(sid))
            for sid in sorted({*tokens, *keys})}


class Keyring:
    """Every account's secrets this process found, by SID."""

    def __init__(self, secrets: Mapping[str, AccountSecrets]) -> None:
        self._secrets = dict(secrets)

    def __getitem__(self, sid: str) -> AccountSecrets:
        return self._secrets.get(sid, AccountSecrets())

    def __iter__(self) -> Iterator[str]:
        return iter(self._secrets)

    def token(self, sid: str) -> str | None:
        secret = self[sid].auth_token
        return None if secret is None else secret.value

    def shared_key(self, sid: str) -> str | None:
        secret = self[sid].shared_key
        return None if secret is None else secret.value


def _merged(*layers: Mapping[str, AccountSecrets]) -> dict[str, AccountSecrets]:
    """Each secret from the first layer that has it."""
    merged: dict[str, AccountSecrets] = {}
    for layer in reversed(layers):
        for sid, secrets in layer.items():
            below = merged.get(sid, AccountSecrets())
            merged[sid] = AccountSecrets(secrets.auth_token or below.auth_token,
                                         secrets.shared_key or below.shared_key)
    return merged


def from_settings(settings: Settings) -> dict[str, AccountSecrets]:
    """The default account's secrets, as the settings give them."""
    sid = settings.twilio_account_sid
    if sid is None:
        return {}
    token, key = settings.twilio_auth_token, settings.twilio_webhook_shared_key
    return {sid: AccountSecrets(
        None if token is None else Secret(token.get_secret_value(), "DIALER_TWILIO_AUTH_TOKEN"),
        None if key is None else Secret(key.get_secret_value(),
                                        "DIALER_TWILIO_WEBHOOK_SHARED_KEY"),
    )}


def load(settings: Settings, *, environ: Mapping[str, str] | None = None) -> Keyring:
    """Every source, in the order of the module docstring. ``environ`` gives
    ``CREDENTIALS_DIRECTORY`` (default: this process's environment)."""
    environ = os.environ if environ is None else environ
    layers: list[Mapping[str, AccountSecrets]] = []
    if settings.credentials_file is not None:
        layers.append(read_file(settings.credentials_file))
    directory = environ.get("CREDENTIALS_DIRECTORY")
    if directory:
        layers.append(read_systemd(Path(directory)))
    layers.append(from_settings(settings))
    return Keyring(_merged(*layers))
