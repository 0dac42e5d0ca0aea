"""dialer.signature against Twilio's official vectors, vectors computed with its official
validator, and that validator itself."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator, get_signature_algorithm

from dialer.signature import (
    HMAC_SHA1,
    HMAC_SHA256,
    SignatureSettings,
    compute_signature,
    parse_signature_settings,
    validate_signature,
)

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


COMPUTED = [pytest.param(case, id=case["note"]) for case in VECTORS["computed_cases"]["cases"]]


@pytest.mark.parametrize("case", COMPUTED)
def test_computed_vectors_sign_and_validate(case: dict[str, Any]) -> None:
    """SHA-256 shared keys and URLs with the dialer's fragment, as twilio-python signs them."""
    params, key, algorithm = _params(case), case["key"], case["algorithm"]
    assert compute_signature(case["url"], params, key, algorithm) == case["signature"]
    assert validate_signature(case["url"], params, case["signature"], key, algorithm)
    other = HMAC_SHA1 if algorithm == HMAC_SHA256 else HMAC_SHA256
    assert not validate_signature(case["url"], params, case["signature"], key, other)
    assert not validate_signature(case["url"], params, case["signature"], key + "x", algorithm)


def test_a_fragment_is_accepted_only_when_it_is_one_of_the_candidates() -> None:
    """The caller names the URLs a signature may cover; no other fragment validates."""
    signed_with, signed_without = (
        next(c for c in VECTORS["computed_cases"]["cases"] if c["url"] == url)
        for url in ("https://dialer.example.com/twilio/attempts/15753/status#rc=3&rp=all",
                    "https://dialer.example.com/twilio/attempts/15753/status"))
    bare = signed_without["url"]
    params = signed_with["params"]
    both = [bare, bare + "#rc=3&rp=all"]
    assert validate_signature(both, params, signed_with["signature"], TOKEN)
    assert validate_signature(both, params, signed_without["signature"], TOKEN)
    assert not validate_signature(bare, params, signed_with["signature"], TOKEN)
    assert not validate_signature([bare, bare + "#rc=5&rp=all"], params,
                                  signed_with["signature"], TOKEN)


def test_port_toggling_applies_to_every_candidate() -> None:
    params = VECTORS["standard_params"]
    url = "https://host.example/cb"
    signed = compute_signature("https://host.example:443/cb#rc=1&rp=all", params, TOKEN)
    assert validate_signature([url, url + "#rc=1&rp=all"], params, signed, TOKEN)


def test_an_unsupported_algorithm_validates_nothing() -> None:
    url, params = "https://example.com/cb", {"A": "1"}
    assert not validate_signature(url, params, compute_signature(url, params, TOKEN), TOKEN,
                                  "HMAC_MD5")
    with pytest.raises(ValueError, match="HMAC_MD5"):
        compute_signature(url, params, TOKEN, "HMAC_MD5")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("  ", None),
        ("key=webhooks_sharedkey_1,algorithm=HMAC_SHA256",
         SignatureSettings("webhooks_sharedkey_1", HMAC_SHA256)),
        (" algorithm = HMAC_SHA256 , key = k ", SignatureSettings("k", HMAC_SHA256)),
        ("key=k", SignatureSettings("k", HMAC_SHA1)),  # no algorithm: SHA-1, as the libraries
        ("key=k,algorithm=HMAC_SHA512", SignatureSettings("k", "HMAC_SHA512")),
        ("garbage", SignatureSettings(None, HMAC_SHA1)),
    ],
)
def test_signature_settings_header(header: str | None, expected: SignatureSettings | None
                                   ) -> None:
    assert parse_signature_settings(header) == expected


def test_the_settings_header_reads_as_the_official_library_reads_it() -> None:
    header = "key=webhooks_sharedkey_1,algorithm=HMAC_SHA256"
    settings = parse_signature_settings(header)
    assert settings is not None and settings.algorithm == get_signature_algorithm(header)


@given(
    path=st.text(st.characters(min_codepoint=97, max_codepoint=122), max_size=10),
    params=st.dictionaries(param_names, param_values, max_size=6),
    key=st.text(min_size=1, max_size=20),
    fragment=st.sampled_from(["", "#rc=3&rp=all"]),
)
def test_sha256_agrees_with_the_official_validator(
    path: str, params: dict[str, str], key: str, fragment: str
) -> None:
    url = f"https://example.com/{path}{fragment}"
    official = RequestValidator(key).compute_signature(url, params, HMAC_SHA256)
    assert compute_signature(url, params, key, HMAC_SHA256) == official
    assert validate_signature(url, params, official, key, HMAC_SHA256)
