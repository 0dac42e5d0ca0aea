"""Phone numbers: one canonical spelling (E.164), and where a number may ring.

Contacts arrive from spreadsheets in every spelling people use; Twilio, the
do-not-call list and deduplication all need one. Parsing and validity come from
``phonenumbers`` (Google's libphonenumber metadata) rather than home-made rules,
because numbering plans change every month. Where a number rings is a guess from its
prefix: the library gives every IANA zone the prefix is used in (one for a New York
landline, eight for an Australian mobile) and, for NANP numbers, a place name that
names the US state. Calling hours are a legal limit, so the zones are always the
whole set: the window must be open in every one of them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import phonenumbers
from phonenumbers import (
    NumberParseException,
    PhoneNumber,
    PhoneNumberType,
    ValidationResult,
)
from phonenumbers import timezone as number_timezone

from dialer.places import TERRITORIES
from dialer.us_state_prefixes import state_for_digits

__all__ = [
    "InvalidNumber",
    "is_e164",
    "mask",
    "normalize",
    "normalize_with_location",
    "time_zones_for",
    "us_state_for",
]

# [0-9], not \d: \d also matches other scripts' digits, which no network dials.
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")
_UNKNOWN_ZONE = "Etc/Unknown"
# Country calling codes are at most three digits (ITU-T E.164).
_MAX_COUNTRY_CODE_DIGITS = 3

_PARSE_REASONS = {
    NumberParseException.INVALID_COUNTRY_CODE: "invalid country code",
    NumberParseException.NOT_A_NUMBER: "not a number",
    NumberParseException.TOO_SHORT_AFTER_IDD: "too short",
    NumberParseException.TOO_SHORT_NSN: "too short",
    NumberParseException.TOO_LONG: "too long",
}
_POSSIBLE_REASONS = {
    ValidationResult.INVALID_COUNTRY_CODE: "invalid country code",
    ValidationResult.TOO_SHORT: "too short",
    ValidationResult.TOO_LONG: "too long",
    ValidationResult.INVALID_LENGTH: "invalid length",
}


class InvalidNumber(ValueError):
    """A number that cannot be dialed; the message says why, for import error reports."""


def _parse(raw: str, region: str | None) -> PhoneNumber:
    try:
        return phonenumbers.parse(raw, region)
    except NumberParseException as exc:
        reason = _PARSE_REASONS.get(exc.error_type, "not a number")
        if reason == "invalid country code" and region is None:
            reason = "no country code (write it as +<country code>...)"
        raise InvalidNumber(reason) from None


def normalize(raw: str, default_region: str = "US") -> str:
    """The E.164 form of ``raw``, or ``InvalidNumber`` saying why there is none.

    Numbers without a leading + are read as national numbers of ``default_region``
    (an ISO 3166 code such as "US" or "GB"; "ZZ" demands the + form). Whatever
    ``phonenumbers`` accepts is accepted, e.g. "(415) 555-2671", "+44 20 7946 0958",
    "tel:+1-415-555-2671", "00 44 ..." when the region dials 00 abroad. A number with
    an extension is refused: E.164 cannot carry it, so the call would reach the
    switchboard and not the person.
    """
    number, _ = _valid_number(raw, default_region)
    return _format(number)


def normalize_with_location(
    raw: str, default_region: str = "US"
) -> tuple[str, frozenset[str], str | None]:
    """``normalize``, ``time_zones_for`` and ``us_state_for`` in one parse and one
    classification: the importer's hot path. ``is_valid_number`` and
    ``time_zones_for_number`` would each work out the number's region and type again,
    which was a third of a row's cost."""
    number, kind = _valid_number(raw, default_region)
    if phonenumbers.is_number_type_geographical(kind, number.country_code or 0):
        zones = number_timezone.time_zones_for_geographical_number(number)
    else:  # country-wide or no zone: rare, let the library classify again
        zones = number_timezone.time_zones_for_number(number)
    return _format(number), _known(zones), _us_state(number)


def _valid_number(raw: str, default_region: str) -> tuple[PhoneNumber, int]:
    """The parsed number and its PhoneNumberType. A type other than UNKNOWN is exactly
    what ``is_valid_number`` tests: both classify the number for the region it is in."""
    region = default_region.upper()
    if region != "ZZ" and region not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"unknown default region {default_region!r} (use an ISO code like US)")
    if not raw.strip():
        raise InvalidNumber("empty")
    number = _parse(raw, None if region == "ZZ" else region)
    if number.extension:
        raise InvalidNumber("has an extension")
    kind = phonenumbers.number_type(number)
    if kind != PhoneNumberType.UNKNOWN:
        return number, kind
    # Only an invalid number pays for working out why.
    possible = phonenumbers.is_possible_number_with_reason(number)
    if possible in _POSSIBLE_REASONS:
        raise InvalidNumber(_POSSIBLE_REASONS[possible])
    number_region = phonenumbers.region_code_for_country_code(number.country_code or 0)
    where = number_region if number_region != "ZZ" else f"+{number.country_code}"
    raise InvalidNumber(f"invalid for region {where}")


def _format(number: phonenumbers.PhoneNumber) -> str:
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if not is_e164(e164):  # libphonenumber's E.164 is always valid; keep the promise
        raise InvalidNumber("not a number")
    return e164


def _known(zones: Sequence[str]) -> frozenset[str]:
    return frozenset(zone for zone in zones if zone != _UNKNOWN_ZONE)


def _us_state(number: PhoneNumber) -> str | None:
    """The US state or territory a valid NANP number's area code is in; ``US`` for a
    US number of no one state (toll-free, non-geographic); None outside the US."""
    if number.country_code != 1:
        return None
    region = phonenumbers.region_code_for_number(number)
    if region in TERRITORIES:
        return region
    if region != "US":
        return None
    return state_for_digits(f"1{phonenumbers.national_significant_number(number)}")


def _parse_e164(e164: str) -> PhoneNumber | None:
    if not is_e164(e164):
        raise InvalidNumber(f"not in E.164 form: {mask(e164)}")
    try:
        return phonenumbers.parse(e164, None)
    except NumberParseException:
        return None


def is_e164(text: str) -> bool:
    """Whether ``text`` is spelled as E.164 (+, country code, at most 15 digits).

    Syntax only: it says a string is in canonical form, not that the number exists.
    """
    return _E164.fullmatch(text) is not None


def time_zones_for(e164: str) -> frozenset[str]:
    """Every IANA zone the number's prefix is used in; empty when nothing is known.

    Non-geographic numbers (toll-free, many mobile ranges) map to every zone of a
    country or to none."""
    number = _parse_e164(e164)
    return frozenset() if number is None else _known(number_timezone.time_zones_for_number(number))


def us_state_for(e164: str) -> str | None:
    """The US state or territory code of a NANP number ("OK" for 405), ``US`` for a US
    number of no one state, None for a number outside the US. Oklahoma's Telephone
    Solicitation Act (like Florida's and Connecticut's laws) presumes that a number
    with the state's area code reaches someone in the state."""
    number = _parse_e164(e164)
    if number is None or not phonenumbers.is_valid_number(number):
        return None
    return _us_state(number)


def _country_code_digits(digits: str) -> int:
    for size in range(1, _MAX_COUNTRY_CODE_DIGITS + 1):
        if int(digits[:size]) in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            return size
    return 1


def mask(e164: str) -> str:
    """The number for logs: country code and three more digits, the last two, and stars.

    "+14155552671" becomes "+1415*****71": enough to tell calls and regions apart,
    not enough to dial. At least half of the digits are always hidden, so short
    numbers give away less. Text that is not E.164 is starred entirely, since it may
    be a number in some other spelling.
    """
    if not is_e164(e164):
        return "*" * len(e164)
    digits = e164[1:]
    n = len(digits)
    hidden = n // 2
    head = min(_country_code_digits(digits) + 3, max(0, n - 2 - hidden))
    tail = min(2, n - head - hidden)
    return "+" + digits[:head] + "*" * (n - head - tail) + digits[n - tail :]
