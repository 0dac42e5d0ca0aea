"""The named-query loader: every block parsed, mistakes in the file caught."""

from __future__ import annotations

import pytest

from dialer import queries


def test_parse_splits_blocks() -> None:
    text = "-- name: a\n-- first\nSELECT 1;\n\n-- name: b\nSELECT 2;\n"
    assert queries.parse(text) == {"a": "-- first\nSELECT 1;", "b": "SELECT 2;"}


@pytest.mark.parametrize(
    "text", ["-- name: a\nSELECT 1;\n-- name: a\nSELECT 2;", "-- name: a\n\n-- name: b\nSELECT 1;"]
)
def test_parse_rejects_duplicates_and_empty_blocks(text: str) -> None:
    with pytest.raises(ValueError, match="query 'a'"):
        queries.parse(text)


def test_shipped_file_loads_and_unknown_name_is_named() -> None:
    assert "list_campaigns" in queries.load()
    with pytest.raises(KeyError, match="nope"):
        queries.get("nope")
