"""Rule packs: calling-time law as versioned data, each rule citing its source.

A pack is a TOML file beside this module (``us-tcpa.toml``, ``us-states.toml``). A
campaign names the packs it obeys; the effective window is the campaign calendar
intersected with every rule that applies to the recipient. A rule is one of:

* ``hours``: the local hours it allows per weekday ("all 08:00-21:00");
* ``days``: weekdays it bans (written as the hours it allows: "mon-sat 00:00-24:00");
* ``holidays``: dates it bans, from the ``holidays`` package for a US state plus
  listed extra days;
* ``cap``: at most ``calls`` calls in any rolling ``period``, per number and subject
  (``per = "subject"``) or per number (``per = "number"``), across campaigns
  (dialer.caps): a limit on how often, not on when, so it is kept apart from the time
  rules (``RulePack.caps``).

Each applies to recipients in the US states it names (``*``: anywhere in the US), is
read on the recipient's clock (or on a fixed zone's, for a law that names one), and
may be in force from or until a date. Packs are checked when loaded: a pack with a
bad field fails with the file, the rule and the field named, and a test loads every
shipped pack.
"""

from __future__ import annotations

import datetime as dt
import functools
import tomllib
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal
from zoneinfo import ZoneInfo

from dateutil.easter import easter
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from dialer.caps import Cap, Scope, parse_period
from dialer.places import SUBDIVISIONS, UNKNOWN_STATE
from dialer.windows import LocalRule, WeeklyHours, parse_weekly

__all__ = [
    "CapRule",
    "HolidayDates",
    "PackError",
    "Rule",
    "RulePack",
    "available",
    "load",
    "parse_names",
    "parse_pack",
]

ANY_STATE = "*"
Status = Literal["verified", "verified-secondary", "partial", "unverified"]
Kind = Literal["hours", "days", "holidays", "cap"]


class PackError(ValueError):
    """A pack that is missing or malformed; the message names the pack and the field."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ExtraDay(_Model):
    """A holiday the package does not list: a fixed month-day, or a movable one."""

    name: str
    date: str | None = Field(default=None, pattern=r"^(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$")
    rule: Literal["good-friday", "election-day"] | None = None

    @model_validator(mode="after")
    def _one(self) -> ExtraDay:
        if (self.date is None) == (self.rule is None):
            raise ValueError("give exactly one of date (MM-DD) or rule")
        return self

    def on(self, year: int) -> dt.date | None:
        if self.rule == "good-friday":
            return easter(year) - dt.timedelta(days=2)
        if self.rule == "election-day":  # the Tuesday after the first Monday in November
            first = dt.date(year, 11, 1)
            return first + dt.timedelta(days=(7 - first.weekday()) % 7 + 1)
        assert self.date is not None
        month, day = map(int, self.date.split("-"))
        try:
            return dt.date(year, month, day)
        except ValueError:  # 02-29 in a common year
            return None


class HolidaySpec(_Model):
    subdiv: str
    extra: tuple[ExtraDay, ...] = ()

    @field_validator("subdiv")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in SUBDIVISIONS:
            raise ValueError(f"unknown US subdivision {value!r}")
        return value


class RuleSpec(_Model):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    kind: Kind
    label: str
    states: tuple[str, ...] = Field(min_length=1)
    hours: str | None = None
    holidays: HolidaySpec | None = None
    calls: int | None = Field(default=None, ge=1, le=1000)
    period: str | None = None
    per: Scope = Scope.SUBJECT
    zone: str | None = None
    since: dt.date | None = None
    until: dt.date | None = None
    citation: str
    source: str = Field(pattern=r"^https?://\S+$")
    status: Status
    quote: str | None = None
    note: str | None = None

    @field_validator("states")
    @classmethod
    def _states(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [s for s in value if s != ANY_STATE and s not in SUBDIVISIONS]
        if bad:
            raise ValueError(f"unknown states {bad}: use US codes such as OK, or '*'")
        return value

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: str | None) -> str | None:
        if value is not None:
            parse_weekly(value)
        return value

    @field_validator("zone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is not None:
            ZoneInfo(value)
        return value

    @field_validator("period")
    @classmethod
    def _period(cls, value: str | None) -> str | None:
        if value is not None:
            parse_period(value)  # within the caps' bounds
        return value

    @model_validator(mode="after")
    def _consistent(self) -> RuleSpec:
        if self.kind == "cap":
            if self.calls is None or self.period is None:
                raise ValueError("a cap rule needs `calls` and `period`")
            if self.hours is not None or self.holidays is not None or self.zone is not None:
                raise ValueError("a cap rule has no `hours`, `holidays` or `zone`")
        elif self.calls is not None or self.period is not None:
            raise ValueError(f"a {self.kind} rule has no `calls` or `period`")
        elif self.kind == "holidays" and (self.holidays is None or self.hours is not None):
            raise ValueError("a holidays rule needs `holidays` and no `hours`")
        elif self.kind != "holidays" and (self.hours is None or self.holidays is not None):
            raise ValueError(f"a {self.kind} rule needs `hours` and no `holidays`")
        if self.since and self.until and self.until < self.since:
            raise ValueError("until is before since")
        return self


class PackSpec(_Model):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    version: str = Field(min_length=1)
    title: str
    scope: str
    rules: tuple[RuleSpec, ...]

    @model_validator(mode="after")
    def _unique(self) -> PackSpec:
        ids = [rule.id for rule in self.rules]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise ValueError(f"rule ids used twice: {', '.join(twice)}")
        return self


class HolidayDates:
    """The dates a holiday rule bans, computed per year when first asked about (the
    ``holidays`` package expands years lazily too). Equal and hashed by what it
    lists, so schedules built twice from one pack compare equal."""

    def __init__(self, spec: HolidaySpec) -> None:
        import holidays  # a large package: only campaigns with holiday rules pay for it

        self._spec = spec
        self._calendar = holidays.country_holidays("US", subdiv=spec.subdiv)
        self._extra: dict[int, dict[dt.date, str]] = {}

    def _extra_of(self, year: int) -> dict[dt.date, str]:
        if year not in self._extra:
            days = ((day.on(year), day.name) for day in self._spec.extra)
            self._extra[year] = {date: name for date, name in days if date is not None}
        return self._extra[year]

    def name(self, day: dt.date) -> str | None:
        """The holiday's name, or None when ``day`` is not one."""
        found = self._extra_of(day.year).get(day)
        return found if found is not None else self._calendar.get(day)

    def __contains__(self, day: object) -> bool:
        return isinstance(day, dt.date) and self.name(day) is not None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HolidayDates) and other._spec == self._spec

    def __hash__(self) -> int:
        return hash(self._spec)


@dataclass(frozen=True, slots=True)
class Rule:
    """A loaded rule: its spec, what it allows by a local clock, and whose clock."""

    pack: str
    spec: RuleSpec
    local: LocalRule
    zone: ZoneInfo | None

    @property
    def ref(self) -> str:
        return f"{self.pack}/{self.spec.id}"

    def applies_to(self, states: tuple[str, ...]) -> bool:
        return _binds(self.spec.states, states)


def _binds(wanted: tuple[str, ...], states: tuple[str, ...]) -> bool:
    """Whether a rule for ``wanted`` binds a recipient who may be in any of ``states``.
    ``US`` (state unknown) is bound by every state's rules."""
    if not states:
        return False
    return ANY_STATE in wanted or UNKNOWN_STATE in states or any(s in wanted for s in states)


@dataclass(frozen=True, slots=True)
class CapRule:
    """A loaded cap rule: its spec and the cap it sets (dialer.caps.StateCap)."""

    pack: str
    spec: RuleSpec
    cap: Cap

    @property
    def ref(self) -> str:
        return f"{self.pack}/{self.spec.id}"

    def applies_to(self, states: tuple[str, ...]) -> bool:
        return _binds(self.spec.states, states)


@dataclass(frozen=True, slots=True)
class RulePack:
    name: str
    version: str
    title: str
    rules: tuple[Rule, ...]
    caps: tuple[CapRule, ...] = ()

    @property
    def tag(self) -> str:
        """What an attempt records: ``us-tcpa@2026.12.1``."""
        return f"{self.name}@{self.version}"


def _cap_rule(pack: str, spec: RuleSpec) -> CapRule:
    assert spec.calls is not None and spec.period is not None
    cap = Cap(spec.calls, parse_period(spec.period), spec.per, f"{pack}/{spec.id}", spec.label,
              spec.citation, spec.status)
    return CapRule(pack, spec, cap)


def _rule(pack: str, spec: RuleSpec) -> Rule:
    closed: Any = frozenset()
    hours = WeeklyHours.ALWAYS
    if spec.holidays is not None:
        closed = HolidayDates(spec.holidays)
    else:
        assert spec.hours is not None
        hours = parse_weekly(spec.hours)
    local = LocalRule(hours=hours, closed=closed, since=spec.since, until=spec.until)
    return Rule(pack, spec, local, ZoneInfo(spec.zone) if spec.zone else None)


def available() -> tuple[str, ...]:
    """The names of the packs shipped with the dialer."""
    files = resources.files(__name__).iterdir()
    return tuple(sorted(f.name.removesuffix(".toml") for f in files if f.name.endswith(".toml")))


@functools.cache
def load(name: str) -> RulePack:
    """The shipped pack called ``name`` (PackError when unknown or malformed)."""
    if name not in available():
        raise PackError(f"unknown rule pack {name!r} (available: {', '.join(available())})")
    return parse_pack(name, (resources.files(__name__) / f"{name}.toml").read_text("utf-8"))


def parse_pack(name: str, text: str) -> RulePack:
    """A pack from the text of ``NAME.toml``; PackError naming the file, the rule and the
    field when anything is wrong."""
    try:
        data = tomllib.loads(text)
        spec = PackSpec.model_validate(data)
    except tomllib.TOMLDecodeError as exc:
        raise PackError(f"rule pack {name}.toml: {exc}") from None
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = list(error["loc"])
            if loc[:1] == ["rules"] and len(loc) > 1 and isinstance(loc[1], int):
                rules = data.get("rules", [])
                rule_id = rules[loc[1]].get("id", loc[1]) if loc[1] < len(rules) else loc[1]
                loc = [f"rule {rule_id}", *loc[2:]]
            where = ".".join(str(part) for part in loc)
            problems.append(f"{where}: {str(error['msg']).removeprefix('Value error, ')}")
        raise PackError(f"rule pack {name}.toml: {'; '.join(problems)}") from None
    if spec.name != name:
        raise PackError(f"rule pack {name}.toml calls itself {spec.name!r}")
    return RulePack(spec.name, spec.version, spec.title,
                    tuple(_rule(spec.name, rule) for rule in spec.rules if rule.kind != "cap"),
                    tuple(_cap_rule(spec.name, rule) for rule in spec.rules
                          if rule.kind == "cap"))


def parse_names(text: str) -> tuple[str, ...]:
    """Pack names from "us-tcpa,us-states" ("none" or "" for none), each checked."""
    cleaned = text.strip().lower()
    if cleaned in ("", "none"):
        return ()
    names: list[str] = []
    for name in (part.strip() for part in cleaned.split(",")):
        if not name:
            raise PackError(f"empty item in rule pack list {text!r}")
        load(name)
        if name not in names:
            names.append(name)
    return tuple(names)
