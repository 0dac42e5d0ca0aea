"""What a campaign is: the validated operator input and the row the daemon works from.

``CampaignSpec`` checks everything an operator types before it reaches the
database (the schema checks again); ``Campaign`` is a loaded row with the pure
policy and calling-time objects the dispatcher and callback handler need.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dialer import rules
from dialer.caps import MAX_PERIOD, MIN_PERIOD, Cap, CapPolicy, format_period, parse_caps
from dialer.compliance import CallingPolicy, Planner
from dialer.location import check_zone
from dialer.optout import OPT_OUT_PLACEHOLDER, OptOutScope
from dialer.personalise import placeholders, twiml_template_problem, url_template_problem
from dialer.policy import (
    AmdMode,
    CampaignPolicy,
    MachinePolicy,
    RetryPolicy,
    retry_policy_from_json,
    retry_policy_to_json,
)
from dialer.safetext import has_controls
from dialer.windows import WeeklyHours, parse_weekly

STATES = ("draft", "running", "paused", "stopped", "completed")
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"
E164_PATTERN = r"^\+[1-9][0-9]{1,14}$"
# Calls in progress at once for one campaign: far above any account's limit, and
# within the database's integer column.
MAX_CONCURRENT = 100_000
# Twilio's parameters take up to 4000 characters (the Twiml parameter's documented
# limit); the URL template is held to the same before it is filled.
MAX_TWIML_CHARS = 4000
DEFAULT_CALENDAR = "mon-fri 09:00-20:00"
# The CampaignSpec fields calling time depends on (dialer.compliance.CallingPolicy).
CALLING_FIELDS = ("calendar", "blackout_dates", "start_at", "end_at", "last_call_margin",
                  "rule_packs", "default_timezone")
# ... and the fields its caps depend on (dialer.caps.CapPolicy).
CAP_FIELDS = ("caps", "subject", "subject_column", "quiet_after_human", "rule_packs")
SUBJECT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$"
MAX_SUBJECT_COLUMN_CHARS = 200
MAX_OPT_OUT_MESSAGE_CHARS = 500


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
    # Calling time (dialer.compliance): weekly local hours, dates off, a scheduled
    # start and end, the last-call margin, the rule packs obeyed, and the zone of
    # numbers that give none (None: such numbers are not called).
    calendar: WeeklyHours = parse_weekly(DEFAULT_CALENDAR)
    blackout_dates: frozenset[dt.date] = frozenset()
    start_at: dt.datetime | None = None
    end_at: dt.datetime | None = None
    last_call_margin: int = Field(default=60, ge=0, le=3600)
    rule_packs: tuple[str, ...] = ()
    default_timezone: str | None = None
    # How often (dialer.caps): the campaign's own caps, what its calls are about (a
    # subject, or a CSV column after it), and the quiet period after a conversation.
    caps: tuple[Cap, ...] = ()
    subject: str | None = Field(default=None, pattern=SUBJECT_PATTERN)
    subject_column: str | None = Field(default=None, min_length=1,
                                       max_length=MAX_SUBJECT_COLUMN_CHARS)
    quiet_after_human: dt.timedelta | None = None
    # Opt-out during the call (dialer.optout): the key, the list, what the caller hears.
    opt_out_digit: str | None = Field(default=None, pattern=r"^[0-9*#]$")
    opt_out_scope: OptOutScope = OptOutScope.GLOBAL
    opt_out_message: str | None = Field(default=None, min_length=1,
                                        max_length=MAX_OPT_OUT_MESSAGE_CHARS)

    @field_validator("subject_column", "opt_out_message")
    @classmethod
    def _plain_text(cls, value: str | None) -> str | None:
        if value is not None and has_controls(value):
            raise ValueError("must not contain control characters or line breaks")
        return value

    @field_validator("quiet_after_human")
    @classmethod
    def _quiet(cls, value: dt.timedelta | None) -> dt.timedelta | None:
        if value is not None and not MIN_PERIOD <= value <= MAX_PERIOD:
            raise ValueError(f"must be from {format_period(MIN_PERIOD)} to "
                             f"{format_period(MAX_PERIOD)}")
        return value

    @field_validator("default_timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        return None if value is None else check_zone(value)

    @field_validator("calendar")
    @classmethod
    def _calendar(cls, value: WeeklyHours) -> WeeklyHours:
        if not value.open_days:
            raise ValueError("the calendar opens on no day")
        return value

    @field_validator("start_at", "end_at")
    @classmethod
    def _aware(cls, value: dt.datetime | None) -> dt.datetime | None:
        if value is not None and value.utcoffset() is None:
            raise ValueError(f"{value.isoformat()} has no time zone: add one, e.g. "
                             f"{value.isoformat()}+00:00 or ...-05:00")
        return value

    @field_validator("rule_packs")
    @classmethod
    def _packs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            rules.load(name)  # PackError (a ValueError) names the unknown pack
        return value

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
        if self.start_at and self.end_at and self.end_at <= self.start_at:
            raise ValueError("end_at (--end-at) must be after start_at (--start-at)")
        template = self.twiml_url or self.twiml or ""
        if self.opt_out_digit is None and OPT_OUT_PLACEHOLDER in (
                name.strip().lower() for name in placeholders(template)):
            raise ValueError(f"${{{OPT_OUT_PLACEHOLDER}}} needs an opt-out key "
                             "(opt_out_digit, --opt-out-digit)")
        return self

    def calling_key(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in CALLING_FIELDS)

    def cap_key(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in CAP_FIELDS)

    def cap_policy(self, everywhere: tuple[Cap, ...]) -> CapPolicy:
        """The caps the daemon checks for this campaign's calls: ``everywhere``
        (DIALER_CAPS), its own, and its rule packs' cap rules."""
        return CapPolicy(
            caps=everywhere + self.caps,
            rules=tuple(rule for name in self.rule_packs for rule in rules.load(name).caps),
            quiet=self.quiet_after_human,
            subject=self.subject,
            subject_column=self.subject_column,
        )

    def calling_policy(self) -> CallingPolicy:
        """The pure calling-time policy (rule packs loaded) the daemon decides with."""
        return CallingPolicy(
            calendar=self.calendar,
            blackouts=self.blackout_dates,
            start_at=self.start_at,
            end_at=self.end_at,
            margin=self.last_call_margin,
            packs=tuple(rules.load(name) for name in self.rule_packs),
            default_zone=self.default_timezone,
        )

    def to_row(self) -> dict[str, Any]:
        """Column values for campaigns."""
        row = self.model_dump(exclude={"retry", "calendar", "blackout_dates", "rule_packs",
                                       "caps", "quiet_after_human"})
        row["retry_policy"] = retry_policy_to_json(self.retry)
        row["caps"] = [str(cap) for cap in self.caps]
        quiet = self.quiet_after_human
        row["quiet_after_human"] = None if quiet is None else int(quiet.total_seconds())
        row["opt_out_scope"] = self.opt_out_scope.value
        row["calendar"] = str(self.calendar)
        row["blackout_dates"] = sorted(self.blackout_dates)
        row["rule_packs"] = list(self.rule_packs)
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
            calendar=parse_weekly(row["calendar"]),
            blackout_dates=frozenset(row["blackout_dates"]),
            start_at=row["start_at"],
            end_at=row["end_at"],
            last_call_margin=row["last_call_margin"],
            rule_packs=tuple(row["rule_packs"]),
            default_timezone=row["default_timezone"],
            caps=parse_caps(",".join(row["caps"])),
            subject=row["subject"],
            subject_column=row["subject_column"],
            quiet_after_human=(None if row["quiet_after_human"] is None
                               else dt.timedelta(seconds=row["quiet_after_human"])),
            opt_out_digit=row["opt_out_digit"],
            opt_out_scope=OptOutScope(row["opt_out_scope"]),
            opt_out_message=row["opt_out_message"],
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

    @property
    def planner(self) -> Planner:
        """The calling-time planner of the campaign's settings, shared by every user in
        the process (its interval cache is what makes decisions cheap)."""
        key = self.spec.calling_key()
        planner = _PLANNERS.get(key)
        if planner is None:
            if len(_PLANNERS) >= _PLANNER_LIMIT:
                _PLANNERS.clear()
            planner = _PLANNERS[key] = Planner(self.spec.calling_policy())
        return planner

    def caps(self, everywhere: tuple[Cap, ...]) -> CapPolicy:
        """The campaign's cap policy with the caps of the settings, shared by every user
        in the process (its per-state cache is what makes checks cheap)."""
        key = (everywhere, *self.spec.cap_key())
        policy = _CAP_POLICIES.get(key)
        if policy is None:
            if len(_CAP_POLICIES) >= _PLANNER_LIMIT:
                _CAP_POLICIES.clear()
            policy = _CAP_POLICIES[key] = self.spec.cap_policy(everywhere)
        return policy


_PLANNERS: dict[tuple[object, ...], Planner] = {}
_CAP_POLICIES: dict[tuple[object, ...], CapPolicy] = {}
_PLANNER_LIMIT = 256
