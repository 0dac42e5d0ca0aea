"""Contact files for tests and the import benchmark (bench/import.py).

Numbers come from templates that ``dialer.phone.normalize`` accepts (several
countries and time zones, E.164 and national spellings), so the generator can tell
the canonical E.164 of every row without calling phonenumbers, which keeps the
generation of a million rows to a few seconds.
"""

from __future__ import annotations

import csv
import gzip
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

HEADER = ["phone", "first_name", "last_name", "customer_id", "city", "timezone", "balance"]

_FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Ken", "Margaret", "José", "Zoë"]
_LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Thompson", "Müller"]
_US_AREAS = ["201", "212", "213", "305", "312", "415", "503", "617", "702", "808", "907"]

# (city, zone for the timezone column, maker of (spelling in the file, E.164)).
Template = tuple[str, str, Callable[[random.Random], tuple[str, str]]]


def _us(rng: random.Random) -> tuple[str, str]:
    digits = (f"{rng.choice(_US_AREAS)}{rng.randint(2, 9)}{rng.randint(0, 9)}"
              f"{rng.randint(2, 9)}{rng.randint(0, 9999):04d}")
    return f"+1{digits}", f"+1{digits}"


def _us_national(rng: random.Random) -> tuple[str, str]:
    area = rng.choice(["206", "404", "512"])
    exchange = f"{rng.randint(2, 9)}{rng.randint(0, 9)}{rng.randint(2, 9)}"
    line = f"{rng.randint(0, 9999):04d}"
    return f"({area}) {exchange}-{line}", f"+1{area}{exchange}{line}"


def _fixed(prefix: str, spaced: str, width: int, low: int = 0) -> Callable[
    [random.Random], tuple[str, str]
]:
    def make(rng: random.Random) -> tuple[str, str]:
        rest = f"{rng.randint(low, 10**width - 1):0{width}d}"
        return f"{spaced} {rest}", f"{prefix}{rest}"

    return make


TEMPLATES: list[Template] = [
    ("New York", "America/New_York", _us),
    ("Seattle", "America/Los_Angeles", _us_national),
    ("London", "Europe/London", _fixed("+44207", "+44 20 7", 7)),
    ("Berlin", "Europe/Berlin", _fixed("+4930", "+49 30", 8, 10_000_000)),
    ("Paris", "Europe/Paris", _fixed("+331", "+33 1", 8)),
    ("Sydney", "Australia/Sydney", _fixed("+6129", "+61 2 9", 7)),
    ("São Paulo", "America/Sao_Paulo", _fixed("+55119", "+55 11 9", 8, 60_000_000)),
    ("Mumbai", "Asia/Kolkata", _fixed("+9198", "+91 98", 8)),
    ("Mexico City", "America/Mexico_City", _fixed("+5255", "+52 55", 8)),
]


def contact_rows(count: int, *, seed: int = 1) -> Iterator[tuple[list[str], str]]:
    """``count`` rows (fields in HEADER order) with the E.164 each should become.
    One row in ten fills the timezone column; the others leave it to the number."""
    rng = random.Random(seed)
    for i in range(count):
        city, zone, make = TEMPLATES[i % len(TEMPLATES)]
        spelled, e164 = make(rng)
        fields = [
            spelled,
            rng.choice(_FIRST),
            rng.choice(_LAST),
            f"C{i:08d}",
            city,
            zone if i % 10 == 0 else "",
            f"{rng.randint(0, 100_000) / 100:.2f}",
        ]
        yield fields, e164


@dataclass(frozen=True, slots=True)
class Generated:
    path: Path
    rows: int
    distinct: int


def write_contacts(path: Path, count: int, *, seed: int = 1) -> Generated:
    """Write a contact CSV (gzip when the name ends in .gz); returns what it holds."""
    seen: set[str] = set()
    out: TextIO
    if path.name.endswith(".gz"):
        out = gzip.open(  # noqa: SIM115
            path, "wt", encoding="utf-8", newline="", compresslevel=1
        )
    else:
        out = open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115
    with out:
        writer = csv.writer(out)
        writer.writerow(HEADER)
        for fields, e164 in contact_rows(count, seed=seed):
            writer.writerow(fields)
            seen.add(e164)
    return Generated(path, count, len(seen))
