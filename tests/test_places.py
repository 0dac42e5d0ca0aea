"""US states from CSV cells and from the phone-number library's place names."""

from __future__ import annotations

import phonenumbers
import pytest
from phonenumbers.geodata import GEOCODE_DATA

from dialer.places import SUBDIVISIONS, parse_state, state_from_place


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
