"""dialer.signature against Twilio's official vectors and its official validator."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from dialer.signature import compute_signature, validate_signature

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parent / "data" / "signature-vectors.json").read_text()
)
TOKEN: str = VECTORS["auth_token"]


def _params(case: dict[str, Any]) -> dict[str, str | list[str]]:
    params = case["params"]
    return dict(VECTORS["standard_params"] if params == "standard" else params)


CASES = [pytest.param(case, id=case["url"]) for case in VECTORS["cases"]]


@pytest.mark.parametrize("case", CASES)
def test_every_vector_validates(case: dict[str, Any]) -> None:
    assert validate_signature(case["url"], _params(case), case["signature"], TOKEN)


@pytest.mark.parametrize("case", CASES)
def test_vectors_fail_with_another_token_or_changed_params(case: dict[str, Any]) -> None:
    params = _params(case)
    assert not validate_signature(case["url"], params, case["signature"], TOKEN + "x")
    assert not validate_signature(case["url"], {**params, "Extra": "1"}, case["signature"], TOKEN)


def test_signature_covers_the_query_string() -> None:
    case = VECTORS["cases"][0]
    other = case["url"].replace("foo=1", "foo=2")
    assert not validate_signature(other, _params(case), case["signature"], TOKEN)


def test_default_port_is_accepted_added_or_removed() -> None:
    """The vectors for :443 and :80 were signed as sent; the port-less form must pass too."""
    params = VECTORS["standard_params"]
    with_port = "https://mycompany.com:443/myapp.php?foo=1&bar=2"
    without_port = "https://mycompany.com/myapp.php?foo=1&bar=2"
    signed_with = compute_signature(with_port, params, TOKEN)
    signed_without = compute_signature(without_port, params, TOKEN)
    assert signed_with != signed_without
    for url in (with_port, without_port):
        assert validate_signature(url, params, signed_with, TOKEN)
        assert validate_signature(url, params, signed_without, TOKEN)


def test_repeated_values_are_sorted_and_deduplicated() -> None:
    url = "https://example.com/cb"
    assert compute_signature(url, {"E": ["b", "a", "b"]}, TOKEN) == compute_signature(
        url, {"E": ["a", "b"]}, TOKEN
    )


def test_json_body_vector() -> None:
    """JSON webhooks sign the URL (carrying bodySHA256) with no parameters."""
    case = VECTORS["json_body_case"]
    assert hashlib.sha256(case["body"].encode()).hexdigest() == case["body_sha256"]
    assert f"bodySHA256={case['body_sha256']}" in case["url"]
    assert compute_signature(case["url"], {}, TOKEN) == case["signature"]
    assert validate_signature(case["url"], {}, case["signature"], TOKEN)


def test_malformed_port_is_not_an_error() -> None:
    assert not validate_signature("http://example.com:port/x", {}, "c2ln", TOKEN)


param_names = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=8)
param_values = st.text(st.characters(codec="utf-8"), max_size=12)


@given(
    path=st.text(st.characters(min_codepoint=97, max_codepoint=122), max_size=10),
    params=st.dictionaries(param_names, param_values, max_size=6),
    token=st.text(min_size=1, max_size=20),
)
def test_agrees_with_the_official_validator(path: str, params: dict[str, str], token: str) -> None:
    url = f"https://example.com/{path}?a=1"
    official = RequestValidator(token)
    signature = compute_signature(url, params, token)
    assert signature == official.compute_signature(url, params)
    assert official.validate(url, params, signature)
    assert validate_signature(url, params, official.compute_signature(url, params), token)
