"""Where a contact may be: its candidate zones and US states, each with its source.

Kept apart from ``dialer.compliance`` (which decides calling times from it) so that an
import's parser process, which locates every row, does not load the rule packs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["CSV", "NUMBER", "Location", "check_zone", "locate"]

# Where a location's parts came from (stored in contacts and attempt records).
CSV = "csv"
NUMBER = "number"


@dataclass(frozen=True, slots=True)
class Location:
    """Where a contact may be: candidate zones and US states, with their sources."""

    zones: tuple[str, ...]
    zone_source: str
    states: tuple[str, ...] = ()
    state_sources: tuple[str, ...] = ()

    @property
    def place(self) -> str:
        """The location as one text, "source|zone zone|state state|source source": the
        claim query spells it so (select_due_contacts), and a claim decides once per
        distinct place instead of building a Location for every row."""
        return "|".join((self.zone_source, " ".join(self.zones), " ".join(self.states),
                         " ".join(self.state_sources)))

    @classmethod
    def from_place(cls, place: str) -> Location:
        source, zones, states, sources = place.split("|")
        return cls(tuple(zones.split()), source, tuple(states.split()), tuple(sources.split()))


def locate(
    *, csv_zone: str | None, number_zones: Iterable[str], csv_state: str | None,
    number_state: str | None,
) -> Location:
    """A contact's location from what its row and its number say: the row's zone,
    else every zone of the number; the row's state and the number's, both kept (see
    ``dialer.compliance``)."""
    zones: tuple[str, ...]
    if csv_zone:
        zones, zone_source = (csv_zone,), CSV
    else:
        zones, zone_source = tuple(sorted(number_zones)), NUMBER
    states: list[str] = []
    sources: list[str] = []
    for state, source in ((csv_state, CSV), (number_state, NUMBER)):
        if state and state not in states:
            states.append(state)
            sources.append(source)
    return Location(zones, zone_source, tuple(states), tuple(sources))


def check_zone(name: str) -> str:
    """``name`` when it is an IANA zone this machine knows, else ValueError naming it."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None
    return name
