"""Placeholders: a contact's values land escaped where the template puts them, and no
value can change the scheme, host or port of the URL (pure functions)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialer.personalise import (
    TemplateError,
    contact_fields,
    fill_twiml,
    fill_url,
    placeholders,
    url_template_problem,
)

TEMPLATE = "https://tts.example.com:8443/say/${name}?who=${name}&n=${phone}#${name}"


def fields(**attributes: str) -> dict[str, str]:
    return contact_fields(attributes, phone="+14155550100", contact_id=7, attempt=2,
                          campaign="spring")


@given(value=st.text())
def test_no_value_changes_the_url_structure(value: str) -> None:
    url = fill_url(TEMPLATE, fields(name=value))
    split = urlsplit(url)
    assert (split.scheme, split.hostname, split.port) == ("https", "tts.example.com", 8443)
    assert split.path.startswith("/say/") and split.path.count("/") == 2
    assert unquote(split.path.removeprefix("/say/"), errors="surrogatepass") == value
    assert unquote(split.fragment, errors="surrogatepass") == value
    query = parse_qs(split.query, keep_blank_values=True, errors="surrogatepass")
    assert query == {"who": [value], "n": ["+14155550100"]}


def test_the_issue_value_stays_one_segment() -> None:
    url = fill_url("https://tts.example.com/x/${host}", fields(host="evil.example/steal?"))
    assert url == "https://tts.example.com/x/evil.example%2Fsteal%3F"


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("https://${host}.tts.example.com/x", "never in the scheme, host or port"),
        ("https://tts.example.com${path}/x", "never in the scheme, host or port"),
        ("https://tts.example.com:${port}/x", "never in the scheme, host or port"),
        ("https://${user}@tts.example.com/x", "never in the scheme, host or port"),
        ("${scheme}://tts.example.com/x", "must be an http:// or https:// URL"),
        ("https://$host/x", "never in the scheme, host or port"),
        ("ftp://tts.example.com/x", "must be an http:// or https:// URL"),
        ("https:/tts.example.com/x", "must be an http:// or https:// URL"),
        ("https:///x", "has no host"),
        ("https://tts.example.com:99999/x", "port"),
        ("https://tts.example.com/a b", "spaces or control characters"),
        ("https://tts.example.com/\x1b[2J", "spaces or control characters"),
    ],
)
def test_templates_with_placeholders_in_the_authority_are_refused(
    template: str, problem: str
) -> None:
    found = url_template_problem(template)
    assert found is not None and problem in found
    with pytest.raises(TemplateError):
        fill_url(template, fields())


def test_good_templates() -> None:
    assert url_template_problem(TEMPLATE) is None
    assert url_template_problem("https://tts.example.com/${first name}") is None
    assert url_template_problem("http://127.0.0.1:8080/t.xml") is None


def test_fields_the_dialer_knows_and_case_insensitive_columns() -> None:
    values = fields(First_Name="Ada", phone="not this one")
    url = fill_url(
        "https://t.example/${phone}/${contact_id}/${attempt}/${campaign}/${first_name}"
        "/${missing}/$$", values)
    assert url == "https://t.example/%2B14155550100/7/2/spring/Ada//$"
    assert placeholders("a ${b} $c $$d ${e f}") == ["b", "c", "e f"]


def test_twiml_values_are_escaped_and_lose_control_characters() -> None:
    hostile = '</Say><Dial>+19005550100</Dial><Say a="\x1b[31m\x00\u202e'
    twiml = fill_twiml('<Response><Say voice="${v}">Hello ${name}\n</Say></Response>',
                       fields(name=hostile, v='x" loop="10'))
    root = ET.fromstring(twiml)  # still well-formed, still one <Say>
    assert [child.tag for child in root] == ["Say"]
    say = root[0]
    assert say.attrib == {"voice": 'x" loop="10'}
    assert say.text is not None and "</Say><Dial>+19005550100</Dial>" in say.text
    assert not any(c in twiml for c in "\x1b\x00\u202e")
    assert fill_twiml("line\tbreak ${x}", fields(x="a\nb\rc\td")) == "line\tbreak a b c d"
