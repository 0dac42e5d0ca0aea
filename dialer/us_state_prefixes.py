"""The US state of a NANP number from its leading digits, without the geocoder.

State rules need the state a number's area code is in. ``phonenumbers`` knows it only
as a place name in its geocoder, whose data for every language is one 40 MB module:
importing it cost each dialer process about 100 MB, and 3-5 s and 300 MB where Python
cannot keep byte code (CI sets ``PYTHONDONTWRITEBYTECODE``). The state is a function
of the number's longest prefix in that data, so the answers are kept as a small table,
``data/us_state_prefixes.json``: each prefix with the state its place name gives
(``US`` when it names none), leaving out a prefix that answers as the shorter prefix
above it does. A longest-prefix lookup in that table answers as the geocoder does; a
test compares both over every prefix, and that the file is what this module derives
from the installed library. After upgrading ``phonenumbers``, write it again::

    .venv/bin/python -m dialer.us_state_prefixes > dialer/data/us_state_prefixes.json
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from functools import cache
from importlib import resources

from dialer.places import UNKNOWN_STATE, state_from_place

__all__ = ["derive", "state_for_digits", "table"]

_COUNTRY = "1"


def derive(geocode_data: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """The table from the geocoder's prefix data: prefix (country code included) ->
    state code. A prefix without an English name is skipped, as the geocoder skips it
    and tries the shorter one; no prefix at all gives the country's name, no state."""
    states = {prefix: state_from_place(names["en"]) or UNKNOWN_STATE
              for prefix, names in geocode_data.items()
              if prefix.startswith(_COUNTRY) and "en" in names}
    table: dict[str, str] = {}
    for prefix in sorted(states, key=len):  # a prefix's parents are decided before it
        if states[prefix] != _lookup(table, prefix):
            table[prefix] = states[prefix]
    return table


def _lookup(table: Mapping[str, str], digits: str) -> str:
    for size in range(len(digits), 0, -1):
        found = table.get(digits[:size])
        if found is not None:
            return found
    return UNKNOWN_STATE


@cache
def table() -> Mapping[str, str]:
    """The table: prefix -> state (``dialer.phonekeys`` proves cache keys from it)."""
    text = resources.files("dialer").joinpath("data", "us_state_prefixes.json").read_text()
    found: dict[str, str] = json.loads(text)
    return found


def state_for_digits(digits: str) -> str:
    """The state of a valid US number given as its E.164 digits without "+"
    ("14055550100" -> "OK"), ``US`` when its prefix names no state."""
    return _lookup(table(), digits)


if __name__ == "__main__":
    from phonenumbers.geodata import GEOCODE_DATA

    json.dump(derive(GEOCODE_DATA), sys.stdout, indent=0, sort_keys=True)
    sys.stdout.write("\n")
