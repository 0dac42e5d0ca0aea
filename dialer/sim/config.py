"""The simulator's configuration: keyword-only dataclasses, one for the simulator
(which is also its first account) and one per further account it serves.

They are deliberately mutable: the callback switches (duplicates, ordering, dropping),
an account's CPS, token and status are read afresh for every call, request and
callback, so a test can change them on a running simulator.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from dialer.signature import ALGORITHMS, HMAC_SHA256
from dialer.sim.scenario import (
    DEFAULT_WEIGHTS,
    DeterministicScenario,
    Outcome,
    Scenario,
    WeightedScenario,
)

DEFAULT_ACCOUNT_SID = "AC" + "5151" * 8
DEFAULT_AUTH_TOKEN = "sim-auth-token"
DEFAULT_SHARED_KEY_SID = "webhooks_sharedkey_" + "5151" * 8
# Twilio's test credentials accept this one From number; the simulator's account owns it.
DEFAULT_PHONE_NUMBER = "+15005550006"
ACCOUNT_STATUSES = ("active", "suspended", "closed")
ANY_NUMBER = "*"
_E164 = re.compile(r"^\+[1-9]\d{1,14}$")
_PRESS = re.compile(r"^[0-9*#]{1,32}(@[1-9][0-9]{0,5})?$")
_ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")


@dataclass(kw_only=True)
class SimAccountConfig:
    """One account the simulator serves (mutable, read at every request).

    account_sid, auth_token: HTTP Basic credentials; ``secondary_auth_token`` also
        authenticates (Twilio's secondary token during a rotation: both work until the
        secondary is promoted), while callbacks are signed with ``auth_token``.
    cps: the account's calls per second; calls created faster wait in its own queue
        and start at this rate in real time, with ``queue_time`` telling how long.
    strict_rate: in strict mode, 429/20429 past this many creates in any one-second
        window (default: cps); strict_max_concurrent_requests: past this many of the
        account's requests in flight (if set).
    max_concurrent_calls: refuse creates with 400/10004 while this many of its calls
        are queued or live (None: no limit).
    webhook_shared_key: sign its callbacks with this key instead of the auth token, as
        a Webhooks Rule does, and announce it in X-Twilio-Webhooks-Signature-Settings
        (``key=<webhook_shared_key_sid>,algorithm=<webhook_signature_algorithm>``).
    account_status, phone_numbers, caller_ids: its status (``active``, ``suspended``
        or ``closed``: see ``accounts`` for what it refuses), the numbers it owns
        (IncomingPhoneNumbers) and its verified caller IDs (OutgoingCallerIds), E.164.
    """

    account_sid: str = DEFAULT_ACCOUNT_SID
    auth_token: str = field(default=DEFAULT_AUTH_TOKEN, repr=False)
    secondary_auth_token: str | None = field(default=None, repr=False)
    cps: float = 1.0
    strict_rate: float | None = None
    strict_max_concurrent_requests: int | None = None
    max_concurrent_calls: int | None = None
    webhook_shared_key: str | None = field(default=None, repr=False)
    webhook_shared_key_sid: str = DEFAULT_SHARED_KEY_SID
    webhook_signature_algorithm: str = HMAC_SHA256
    account_status: Literal["active", "suspended", "closed"] = "active"
    phone_numbers: tuple[str, ...] = (DEFAULT_PHONE_NUMBER,)
    caller_ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self._check_account()

    def _check_account(self) -> None:
        if not _ACCOUNT_SID.match(self.account_sid):
            raise ValueError("account_sid must be AC followed by 32 hex digits")
        if not self.auth_token or self.secondary_auth_token == "":
            raise ValueError("auth tokens must not be empty")
        if self.cps <= 0 or (self.strict_rate is not None and self.strict_rate <= 0):
            raise ValueError("cps and strict_rate must be positive")
        if self.webhook_shared_key == "":
            raise ValueError("webhook_shared_key must not be empty")
        if self.webhook_signature_algorithm not in ALGORITHMS:
            raise ValueError(
                f"webhook_signature_algorithm must be one of {', '.join(ALGORITHMS)}")
        if self.account_status not in ACCOUNT_STATUSES:
            raise ValueError(f"account_status must be one of {', '.join(ACCOUNT_STATUSES)}")
        for number in (*self.phone_numbers, *self.caller_ids):
            if not _E164.match(number):
                raise ValueError(f"phone numbers and caller IDs must be E.164: {number!r}")

    @property
    def strict_window_limit(self) -> int:
        """Creates allowed in any one-second window in strict mode (at least one)."""
        return max(1, int((self.strict_rate or self.cps) + 1e-9))


@dataclass(kw_only=True)
class SimConfig(SimAccountConfig):
    """Everything that shapes one simulator: where it listens, how calls go, and the
    accounts it serves. Its own account fields (``SimAccountConfig``) are its first
    account's; ``more_accounts`` are the others, each with its own token, CPS queue,
    limits, numbers and faults (``SimServer.faults_of``).

    host, port: where to listen (port 0: any free port).
    strict: answer 429/20429 past each account's strict limits.
    scenario, seed, weights, talk_seconds: how calls go (see ``scenario``); the seed
        also drives the probabilistic faults.
    time_scale: factor on every simulated duration (ringing, talking, AMD), e.g.
        0.001 so that a 20 s call takes 20 ms. Not applied to CPS queueing.
    duplicate_callbacks: deliver every callback twice (same idempotency token).
    out_of_order_callbacks: hold a call's progress events and deliver them after its
        ``completed`` event, newest first.
    drop_callbacks: deliver no callbacks at all (they are still recorded on the call).
    sign_fragment: sign each callback over its URL exactly as the client gave it,
        fragment of connection overrides included (``...#rc=3&rp=all``), as
        twilio-python's validator does when handed that string; by default the URL
        is signed as requested, without the fragment. Twilio does not document which
        it does, so a receiver must accept both (see dialer.signature).
    press_digits: the keys a person who answers presses into the call's ``<Gather>``
        (inline TwiML with an action: see ``twiml``), by To number or ``*`` for every
        number: ``"9"`` on every call, ``"9@1"`` on the first call to the number only.
        Machines, faxes and unanswered calls press nothing.
    """

    host: str = "127.0.0.1"
    port: int = 0
    strict: bool = False
    scenario: Literal["deterministic", "weighted"] = "deterministic"
    seed: int = 0
    weights: Mapping[Outcome, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    time_scale: float = 1.0
    talk_seconds: float = 20.0
    duplicate_callbacks: bool = False
    out_of_order_callbacks: bool = False
    drop_callbacks: bool = False
    sign_fragment: bool = False
    more_accounts: tuple[SimAccountConfig, ...] = ()
    press_digits: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be 0 to 65535, got {self.port}")
        if self.time_scale < 0 or self.talk_seconds < 0:
            raise ValueError("time_scale and talk_seconds must not be negative")
        if self.scenario not in ("deterministic", "weighted"):
            raise ValueError(f"unknown scenario {self.scenario!r}")
        sids = [account.account_sid for account in self.accounts]
        if len(set(sids)) != len(sids):
            raise ValueError("every account the simulator serves needs a SID of its own")
        self.make_scenario()  # rejects bad weights now rather than at the first call
        for number, keys in self.press_digits.items():
            if number != ANY_NUMBER and not _E164.match(number):
                raise ValueError(f"press_digits: {number!r} is not E.164 (or {ANY_NUMBER})")
            if not _PRESS.match(keys):
                raise ValueError(f"press_digits: {keys!r} is not keys (0-9 * #), optionally "
                                 "@N for the Nth call only")

    @property
    def accounts(self) -> tuple[SimAccountConfig, ...]:
        """Every account served, the first one first."""
        return (self, *self.more_accounts)

    def account(self, sid: str) -> SimAccountConfig | None:
        return next((a for a in self.accounts if a.account_sid == sid), None)

    def keys_for(self, to: str, previous_calls: int) -> str | None:
        """The keys pressed on a call to ``to`` that ``previous_calls`` calls preceded."""
        spec = self.press_digits.get(to, self.press_digits.get(ANY_NUMBER))
        if spec is None:
            return None
        keys, _, nth = spec.partition("@")
        return keys if not nth or int(nth) == previous_calls + 1 else None

    def make_scenario(self) -> Scenario:
        if self.scenario == "weighted":
            return WeightedScenario(self.weights, seed=self.seed, talk_seconds=self.talk_seconds)
        return DeterministicScenario(self.talk_seconds)
