"""US states and territories: the codes rule packs use, read from CSV cells and from
the phone-number library's place names.

A rule pack's state rules need the recipient's state. It comes from a CSV ``state``
column (a code such as ``OK`` or a name such as ``Oklahoma``) or from the number,
whose NANP area code ``phonenumbers``' geocoder names as a place ("Oklahoma",
"Tulsa, OK", "Washington State"). ``US`` stands for "in the United States, state
unknown" (toll-free and other non-geographic numbers): every state's rules apply.
"""

from __future__ import annotations

import re

__all__ = ["SUBDIVISIONS", "TERRITORIES", "UNKNOWN_STATE", "parse_state", "state_from_place"]

UNKNOWN_STATE = "US"
# Territories with their own NANP region code in phonenumbers.
TERRITORIES = {"PR": "Puerto Rico", "GU": "Guam", "VI": "U.S. Virgin Islands",
               "AS": "American Samoa", "MP": "Northern Mariana Islands"}
SUBDIVISIONS: dict[str, str] = {
    "AL": "Alabama", "AK": "Alaska", "AZ": "Arizona", "AR": "Arkansas", "CA": "California",
    "CO": "Colorado", "CT": "Connecticut", "DE": "Delaware", "DC": "District of Columbia",
    "FL": "Florida", "GA": "Georgia", "HI": "Hawaii", "ID": "Idaho", "IL": "Illinois",
    "IN": "Indiana", "IA": "Iowa", "KS": "Kansas", "KY": "Kentucky", "LA": "Louisiana",
    "ME": "Maine", "MD": "Maryland", "MA": "Massachusetts", "MI": "Michigan",
    "MN": "Minnesota", "MS": "Mississippi", "MO": "Missouri", "MT": "Montana",
    "NE": "Nebraska", "NV": "Nevada", "NH": "New Hampshire", "NJ": "New Jersey",
    "NM": "New Mexico", "NY": "New York", "NC": "North Carolina", "ND": "North Dakota",
    "OH": "Ohio", "OK": "Oklahoma", "OR": "Oregon", "PA": "Pennsylvania",
    "RI": "Rhode Island", "SC": "South Carolina", "SD": "South Dakota", "TN": "Tennessee",
    "TX": "Texas", "UT": "Utah", "VT": "Vermont", "VA": "Virginia", "WA": "Washington",
    "WV": "West Virginia", "WI": "Wisconsin", "WY": "Wyoming", **TERRITORIES,
}
_BY_NAME = {name.lower(): code for code, name in SUBDIVISIONS.items()}
# Other spellings, from CSV files and from the geocoder's place names.
_BY_NAME.update({
    "washington state": "WA", "washington d.c.": "DC", "washington dc": "DC",
    "d.c.": "DC", "virgin islands": "VI", "us virgin islands": "VI",
})
_CITY_STATE = re.compile(r",\s*([A-Z]{2})$")


def parse_state(text: str) -> str:
    """The code of a US state or territory from its code or name (any case);
    ValueError naming the value otherwise."""
    cleaned = " ".join(text.split())
    code = cleaned.upper()
    if code in SUBDIVISIONS:
        return code
    found = _BY_NAME.get(cleaned.lower())
    if found is None:
        raise ValueError(f"unknown US state {text!r}: use a code such as OK or a name "
                         "such as Oklahoma")
    return found


def state_from_place(place: str) -> str | None:
    """The state of a geocoder place name ("Tulsa, OK", "Oklahoma"), or None."""
    match = _CITY_STATE.search(place)
    if match is not None:
        return match[1] if match[1] in SUBDIVISIONS else None
    return _BY_NAME.get(place.strip().lower())
