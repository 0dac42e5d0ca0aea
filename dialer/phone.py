"""Phone numbers: one canonical spelling (E.164) and the time zone a number implies.

Contacts arrive from spreadsheets in every spelling people use; Twilio, the
do-not-call list and deduplication all need one. Parsing and validity come from
``phonenumbers`` (Google's libphonenumber metadata) rather than home-made rules,
because numbering plans change every month. The time zone of a number is a guess
from its prefix; it is only used when it is unambiguous, since calling hours are a
legal limit and a wrong zone breaks them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumber, PhoneNumberType, ValidationResult
from phonenumbers import timezone as number_timezone

__all__ = ["InvalidNumber", "is_e164", "mask", "normalize", "time_zone_for", "time_zones_for"]

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


def normalize_with_zone(raw: str, default_region: str = "US") -> tuple[str, str | None]:
    """``normalize`` and ``time_zone_for`` in one parse and one classification: the
    importer's hot path. ``is_valid_number`` and ``time_zones_for_number`` would each
    work out the number's region and type again, which was a third of a row's cost."""
    number, kind = _valid_number(raw, default_region)
    if phonenumbers.is_number_type_geographical(kind, number.country_code or 0):
        zones = number_timezone.time_zones_for_geographical_number(number)
    else:  # country-wide or no zone: rare, let the library classify again
        zones = number_timezone.time_zones_for_number(number)
    return _format(number), _single(zones)


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


def _zones(number: phonenumbers.PhoneNumber) -> tuple[str, ...]:
    return _known(number_timezone.time_zones_for_number(number))


def _known(zones: Sequence[str]) -> tuple[str, ...]:
    return tuple(zone for zone in zones if zone != _UNKNOWN_ZONE)


def _single(zones: Sequence[str]) -> str | None:
    """The one known zone, else None: a number spanning zones gives no calling hours."""
    known = _known(zones)
    return known[0] if len(known) == 1 else None


def is_e164(text: str) -> bool:
    """Whether ``text`` is spelled as E.164 (+, country code, at most 15 digits).

    Syntax only: it says a string is in canonical form, not that the number exists.
    """
    return _E164.fullmatch(text) is not None


def time_zones_for(e164: str) -> tuple[str, ...]:
    """The IANA zones the number's prefix is used in; empty when nothing is known.

    Non-geographic numbers (toll-free, many mobile ranges) map to a whole country or
    to nothing, hence a tuple.
    """
    if not is_e164(e164):
        raise InvalidNumber(f"not in E.164 form: {mask(e164)}")
    try:
        number = phonenumbers.parse(e164, None)
    except NumberParseException:
        return ()
    return _zones(number)


def time_zone_for(e164: str) -> str | None:
    """The number's zone when exactly one is known; else None (use the campaign's)."""
    return _single(time_zones_for(e164))


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
