"""Filling a campaign's ``${column}`` placeholders from one contact, escaped for where
each value lands. Pure functions: the dispatcher calls them for every call.

**TwiML URL.** The template is split into its parts *before* it is filled.
Placeholders may stand only in the path, the query and the fragment, and every value
is percent-encoded as one path segment or one query value (``/ ? # & = @ :`` and
``%`` included), so nothing a CSV cell holds can change the scheme, host, port or
structure of the URL Twilio fetches. A placeholder in the scheme, user info, host or
port is refused when the campaign is created or edited (``url_template_problem``)
and again, should such a template reach the database another way, when it is
filled (``TemplateError``).

**Inline TwiML.** Every value is XML-escaped (quotes too, so it is safe inside an
attribute) and loses its control characters, which XML 1.0 does not allow.

**Values.** Every CSV column kept with the contact, found by its header as written
or, failing that, without regard to case (``${first_name}`` finds ``First_Name``).
Braces take any header, spaces included (``${first name}``). The dialer's own fields
(``CONTACT_FIELDS``) win over a column of the same name. A placeholder with no value
is left empty, never as the literal ``${...}``; ``$$`` is a dollar sign.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from string import Template
from typing import Any
from urllib.parse import quote, urlsplit

from dialer.safetext import has_controls, without_controls

__all__ = [
    "CONTACT_FIELDS",
    "TemplateError",
    "contact_fields",
    "fill_twiml",
    "fill_url",
    "missing",
    "placeholders",
    "twiml_template_problem",
    "url_template_problem",
]

# The fields every contact has, besides its CSV columns (see contact_fields).
CONTACT_FIELDS = ("phone", "contact_id", "attempt", "campaign", "opt_out_url")


class TemplateError(ValueError):
    """A template that must not be filled (see ``url_template_problem``)."""


class _Placeholders(Template):
    braceidpattern = r"[^{}$]+"  # ${any CSV header}, spaces and dashes included


_PATTERN: re.Pattern[str] = _Placeholders.pattern


def placeholders(template: str) -> list[str]:
    """The names the template refers to, in order of appearance."""
    return [m.group("named") or m.group("braced") for m in _PATTERN.finditer(template)
            if m.group("named") or m.group("braced")]


def contact_fields(
    attributes: Mapping[str, Any], *, phone: str, contact_id: int, attempt: int, campaign: str,
    opt_out_url: str = "",
) -> dict[str, str]:
    """What a contact's placeholders are filled from: its CSV columns, then the
    number dialed (E.164), its id, the attempt number (1 for the first call), the
    campaign's name and the attempt's opt-out Gather action URL (dialer.optout; empty
    when the campaign has no opt-out key)."""
    values = {str(key): str(value) for key, value in attributes.items()}
    values.update(phone=phone, contact_id=str(contact_id), attempt=str(attempt),
                  campaign=campaign, opt_out_url=opt_out_url)
    return values


def _finder(values: Mapping[str, str]) -> Callable[[str], str | None]:
    """Looks a placeholder's name up: as written, else without regard to case."""
    lowered: dict[str, str] | None = None

    def find(name: str) -> str | None:
        nonlocal lowered
        found = values.get(name)
        if found is None:
            if lowered is None:
                lowered = {}
                for key, value in values.items():
                    lowered.setdefault(key.lower(), value)  # the first spelling wins
            found = lowered.get(name.strip().lower())
        return found

    return find


def missing(template: str, values: Mapping[str, str]) -> list[str]:
    """The placeholders of ``template`` that ``values`` has nothing for (left empty)."""
    find = _finder(values)
    return sorted({name for name in placeholders(template) if find(name) is None})


def _fill(template: str, values: Mapping[str, str], escape: Callable[[str], str]) -> str:
    find = _finder(values)

    def replace(match: re.Match[str]) -> str:
        if match.group("escaped") is not None:
            return "$"
        name = match.group("named") or match.group("braced")
        return match.group() if name is None else escape(find(name) or "")

    return _PATTERN.sub(replace, template)


def url_template_problem(template: str) -> str | None:
    """Why ``template`` cannot be a TwiML URL template, or None when it can."""
    literal = _PATTERN.sub("", template)  # ${first name} may hold a space; the URL not
    if has_controls(template) or any(char.isspace() for char in literal):
        return "must not contain spaces or control characters"
    split = urlsplit(template)
    after_scheme = template[len(split.scheme):]
    if split.scheme.lower() not in ("http", "https") or not after_scheme.startswith("://"):
        return "must be an http:// or https:// URL"
    authority = template[: len(split.scheme) + 3 + len(split.netloc)]
    found = placeholders(authority)
    if found or "$" in authority:
        return (
            "placeholders may stand only in the path, query or fragment, never in the "
            f"scheme, host or port (found {', '.join('${' + n + '}' for n in found) or '$'})"
        )
    if not split.hostname:
        return "has no host"
    try:
        split.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return "has a port that is not a number from 0 to 65535"
    return None


@lru_cache(maxsize=256)
def _split_url(template: str) -> tuple[str, str]:
    """(scheme://authority, the rest) of a template that may be filled."""
    problem = url_template_problem(template)
    if problem is not None:
        raise TemplateError(f"TwiML URL template {problem}")
    split = urlsplit(template)
    cut = len(split.scheme) + 3 + len(split.netloc)
    return template[:cut], template[cut:]


def _url_value(value: str) -> str:
    return quote(value, safe="")


def fill_url(template: str, values: Mapping[str, str]) -> str:
    """The TwiML URL for one contact; TemplateError for a template with placeholders
    where a value could change the host (see the module docstring)."""
    authority, rest = _split_url(template)
    return authority + _fill(rest, values, _url_value)


def _xml_value(value: str) -> str:
    return html.escape(without_controls(value), quote=True)


def twiml_template_problem(template: str) -> str | None:
    """Why ``template`` cannot be inline TwiML, or None."""
    if has_controls(template, allow="\t\n\r"):
        return "must not contain control characters (other than tabs and line breaks)"
    return None


def fill_twiml(template: str, values: Mapping[str, str]) -> str:
    """Inline TwiML for one contact: values XML-escaped, control characters removed."""
    return _fill(template, values, _xml_value)
