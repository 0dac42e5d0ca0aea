"""US states from CSV cells and from the phone-number library's place names."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import phonenumbers
import pytest
from phonenumbers import geocoder
from phonenumbers.geodata import GEOCODE_DATA

from dialer import us_state_prefixes
from dialer.phone import us_state_for
from dialer.places import SUBDIVISIONS, UNKNOWN_STATE, parse_state, state_from_place
from dialer.us_state_prefixes import state_for_digits


@pytest.mark.parametrize(
    ("text", "code"),
    [("OK", "OK"), ("ok", "OK"), (" Oklahoma ", "OK"), ("new  york", "NY"),
     ("District of Columbia", "DC"), ("Washington D.C.", "DC"), ("Puerto Rico", "PR"),
     ("washington", "WA")],
)
def test_parse_state(text: str, code: str) -> None:
    assert parse_state(text) == code


@pytest.mark.parametrize("text", ["", "Okla", "XX", "Ontario", "NSW"])
def test_parse_state_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="unknown US state"):
        parse_state(text)


def test_every_us_place_the_geocoder_names_is_a_state() -> None:
    """Each NANP prefix the library places in the US (its region is US) names a place
    that maps to a state: a state name, or a city with the state's code."""
    seen = 0
    for prefix, names in GEOCODE_DATA.items():
        if not prefix.startswith("1") or "en" not in names or len(prefix) < 4:
            continue
        number = phonenumbers.parse("+" + prefix.ljust(11, "0"))
        if phonenumbers.region_code_for_number(number) != "US":
            continue
        seen += 1
        state = state_from_place(names["en"])
        assert state in SUBDIVISIONS, (prefix, names["en"])
    assert seen > 20_000


def test_places_outside_the_us_are_no_state() -> None:
    for place in ("Ontario", "Toronto, ON", "Long Island", "Nassau", ""):
        assert state_from_place(place) is None


def test_the_state_table_is_what_the_installed_geocoder_gives() -> None:
    """The shipped table is derived from this phonenumbers' data (regenerate it after
    an upgrade: see dialer/us_state_prefixes.py)."""
    shipped = json.loads(
        (Path(us_state_prefixes.__file__).parent / "data" / "us_state_prefixes.json")
        .read_text())
    assert shipped == us_state_prefixes.derive(GEOCODE_DATA)


def test_the_table_answers_as_the_geocoder_for_every_prefix() -> None:
    """Every prefix of the geocoder's data for +1, as a number (its digits padded both
    ways, so that the prefix and the one after it are hit): the table's state is the
    one of the geocoder's place name. Validity is not asked: the lookup of both is by
    prefix alone, and ``us_state_for`` checks it before."""
    compared = 0
    for prefix in GEOCODE_DATA:
        if not prefix.startswith("1"):
            continue
        for pad in "09":
            digits = prefix.ljust(11, pad)
            place = geocoder.description_for_valid_number(
                phonenumbers.parse("+" + digits), "en")
            assert state_for_digits(digits) == (state_from_place(place) or UNKNOWN_STATE), (
                digits, place)
            compared += 1
    assert compared > 60_000
    assert us_state_for("+14055550100") == "OK"


def test_the_daemon_never_loads_the_geocoder() -> None:
    """Its data costs 100 MB, and 3-5 s where byte code is not kept."""
    code = ("import sys, dialer.cli, dialer.service, dialer.importer, dialer.phone as p;"
            "p.us_state_for('+14055550100');"
            # the import's cache proves its keys from the state table, not the geocoder
            "p.locate('+14055550100'); p.locate('+14055550101');"
            "print('phonenumbers.geodata' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "False"
