"""Named SQL statements, parsed once from ``sql/queries.sql``.

Keeping statements in a .sql file lets them be read, reviewed and EXPLAINed as SQL;
each block starts with ``-- name: <name>`` and a one-line description comment.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

_HEADER = re.compile(r"^-- name: (?P<name>[a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


def parse(text: str) -> dict[str, str]:
    """Split a queries file into {name: statement}; duplicate or empty blocks are errors."""
    parts = _HEADER.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        statement = body.strip()
        if not statement or statement.startswith("-- name"):
            raise ValueError(f"query {name!r} is empty")
        if name in queries:
            raise ValueError(f"query {name!r} is defined twice")
        queries[name] = statement
    return queries


@cache
def load() -> dict[str, str]:
    return parse(resources.files("dialer.sql").joinpath("queries.sql").read_text("utf-8"))


def get(name: str) -> str:
    try:
        return load()[name]
    except KeyError:
        raise KeyError(f"no query named {name!r} in sql/queries.sql") from None
