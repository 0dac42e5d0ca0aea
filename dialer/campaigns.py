"""What a campaign is: the validated operator input and the row the daemon works from.

``CampaignSpec`` checks everything an operator types before it reaches the
database (the schema checks again); ``Campaign`` is a loaded row with the pure
policy and window objects the dispatcher and callback handler need.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dialer.personalise import twiml_template_problem, url_template_problem
from dialer.policy import (
    AmdMode,
    CampaignPolicy,
    MachinePolicy,
    RetryPolicy,
    retry_policy_from_json,
    retry_policy_to_json,
)
from dialer.windows import CallingWindow

STATES = ("draft", "running", "paused", "stopped", "completed")
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"
E164_PATTERN = r"^\+[1-9][0-9]{1,14}$"
# Calls in progress at once for one campaign: far above any account's limit, and
# within the database's integer column.
MAX_CONCURRENT = 100_000
# Twilio's parameters take up to 4000 characters (the Twiml parameter's documented
# limit); the URL template is held to the same before it is filled.
MAX_TWIML_CHARS = 4000


def check_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None
    return name


class CampaignSpec(BaseModel):
    """Operator input for ``campaign create`` / ``campaign edit``."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    name: str = Field(pattern=NAME_PATTERN)
    from_number: str = Field(pattern=E164_PATTERN)
    # ${column} placeholders only in the path, query or fragment (dialer.personalise).
    twiml_url: str | None = Field(default=None, max_length=MAX_TWIML_CHARS)
    twiml: str | None = Field(default=None, min_length=1, max_length=MAX_TWIML_CHARS)
    weight: int = Field(default=1, ge=1, le=1000)
    max_concurrent: int | None = Field(default=None, gt=0, le=MAX_CONCURRENT)
    ring_timeout: int = Field(default=30, ge=5, le=600)
    amd_mode: AmdMode = AmdMode.OFF
    amd_async: bool = False
    machine_policy: MachinePolicy = MachinePolicy.HANGUP_RETRY
    unknown_is_machine: bool = False
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    window_start: dt.time = dt.time(9, 0)
    # time(0, 0) as the end means midnight, the end of the day.
    window_end: dt.time = dt.time(20, 0)
    window_days: frozenset[int] = frozenset({1, 2, 3, 4, 5})
    default_timezone: str = "UTC"

    @field_validator("default_timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return check_zone(value)

    @field_validator("twiml_url")
    @classmethod
    def _url_template(cls, value: str | None) -> str | None:
        problem = None if value is None else url_template_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("twiml")
    @classmethod
    def _twiml_template(cls, value: str | None) -> str | None:
        problem = None if value is None else twiml_template_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if (self.twiml_url is None) == (self.twiml is None):
            raise ValueError("give exactly one of twiml_url (--twiml-url) or twiml (--twiml)")
        if self.amd_async and self.amd_mode is AmdMode.OFF:
            raise ValueError("amd_async needs an AMD mode (Enable or DetectMessageEnd)")
        self.window()  # raises ValueError naming the bad field
        return self

    def window(self) -> CallingWindow:
        return CallingWindow(start=self.window_start, end=self.window_end, days=self.window_days)

    def to_row(self) -> dict[str, Any]:
        """Column values for campaigns (the database spells midnight as 24:00)."""
        row = self.model_dump(exclude={"retry", "window_days", "window_end"})
        row["retry_policy"] = retry_policy_to_json(self.retry)
        row["window_days"] = sorted(self.window_days)
        row["window_end"] = self.window_end if self.window_end != dt.time(0, 0) else dt.time.max
        row["amd_mode"] = self.amd_mode.value
        row["machine_policy"] = self.machine_policy.value
        return row


@dataclass(frozen=True, slots=True)
class Campaign:
    """A campaign row as the daemon uses it."""

    id: int
    name: str
    state: str
    account_sid: str
    spec: CampaignSpec

    @classmethod
    def from_row(cls, row: Any) -> Campaign:
        end: dt.time = row["window_end"]
        spec = CampaignSpec(
            name=row["name"],
            from_number=row["from_number"],
            twiml_url=row["twiml_url"],
            twiml=row["twiml"],
            weight=row["weight"],
            max_concurrent=row["max_concurrent"],
            ring_timeout=row["ring_timeout"],
            amd_mode=AmdMode(row["amd_mode"]),
            amd_async=row["amd_async"],
            machine_policy=MachinePolicy(row["machine_policy"]),
            unknown_is_machine=row["unknown_is_machine"],
            retry=retry_policy_from_json(row["retry_policy"]),
            window_start=row["window_start"],
            window_end=dt.time(0, 0) if end >= dt.time(23, 59, 59) else end,
            window_days=frozenset(row["window_days"]),
            default_timezone=row["default_timezone"],
        )
        return cls(row["id"], row["name"], row["state"], row["account_sid"], spec)

    @property
    def policy(self) -> CampaignPolicy:
        return CampaignPolicy(
            retry=self.spec.retry,
            amd_mode=self.spec.amd_mode,
            machine_policy=self.spec.machine_policy,
            unknown_is_machine=self.spec.unknown_is_machine,
        )

    def zone(self, contact_timezone: str | None) -> ZoneInfo:
        """The contact's own zone when known, else the campaign's default."""
        return ZoneInfo(contact_timezone or self.spec.default_timezone)
