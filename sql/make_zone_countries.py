"""Print the INSERT of ``time_zone_countries`` (migration 0005) from this machine's tzdata.

    .venv/bin/python sql/make_zone_countries.py > zone_countries.sql

Every zone of tzdata's ``zone.tab`` (public domain) with its ISO 3166 country code,
plus the old zone names that ``phonenumbers`` still gives for some numbers
(``Asia/Calcutta`` for ``Asia/Kolkata`` ...), each with the country of the numbers it
serves: those names are links in tzdata, and a link's target can lie in another
country (``Africa/Asmera`` links to ``Africa/Nairobi``), so it cannot say the country.
Run it again and write a new migration when tzdata or phonenumbers add zones.
"""

from __future__ import annotations

import sys
from pathlib import Path

import phonenumbers
from phonenumbers.tzdata import TIMEZONE_DATA

ZONE_TAB = Path("/usr/share/zoneinfo/zone.tab")
WIDTH = 88


def countries() -> dict[str, str]:
    found: dict[str, str] = {}
    for line in ZONE_TAB.read_text().splitlines():
        if line and not line.startswith("#"):
            country, _, zone, *_ = line.split("\t")
            found[zone] = country
    old: dict[str, set[str]] = {}
    for prefix, zones in TIMEZONE_DATA.items():
        number = phonenumbers.parse("+" + prefix.ljust(10, "0"), None)
        region = phonenumbers.region_code_for_number(number)
        for zone in zones:
            if zone not in found and region:
                old.setdefault(zone, set()).add(region)
    for zone, regions in old.items():
        if len(regions) != 1:
            raise SystemExit(f"{zone} serves numbers of {sorted(regions)}: which country?")
        found[zone] = regions.pop()
    return found


def main() -> None:
    items = [f"('{zone}', '{country}')" for zone, country in sorted(countries().items())]
    lines, line = [], ""
    for item in items:
        if len(line) + len(item) + 2 > WIDTH:
            lines.append(line.rstrip())
            line = ""
        line += item + ", "
    lines.append(line.rstrip().rstrip(","))
    sys.stdout.write("INSERT INTO time_zone_countries (zone, country) VALUES\n")
    sys.stdout.write(",\n".join("    " + text.rstrip(",") for text in lines) + ";\n")


if __name__ == "__main__":
    main()
