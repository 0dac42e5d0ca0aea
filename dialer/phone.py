"""Phone numbers: one canonical spelling (E.164), and where a number may ring.

Contacts arrive from spreadsheets in every spelling people use; Twilio, the
do-not-call list and deduplication all need one. Parsing and validity come from
``phonenumbers`` (Google's libphonenumber metadata) rather than home-made rules,
because numbering plans change every month. Where a number rings is a guess from its
prefix: the library gives every IANA zone the prefix is used in (one for a New York
landline, eight for an Australian mobile) and, for NANP numbers, a place name that
names the US state. Calling hours are a legal limit, so the zones are always the
whole set: the window must be open in every one of them.

The library costs about 40 µs a number, far too much for an import of millions, so
``locate`` keeps its answers in an exact cache. A plain spelling (ASCII digits, an
optional leading +, spaces, dots, dashes, parentheses) whose country code and national
number can be read off without the library is looked up by the prefix that
``dialer.phonekeys`` proved decides every answer for numbers of its length. Anything
else (letters, extensions, an international or national prefix, a country code without
+, a country whose patterns cannot be proven) and every number the cache does not hold
takes the library's path, which alone decides that a number is invalid and why; its
answer for a valid plain number then serves every other number of the same class.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import phonenumbers
from phonenumbers import (
    NumberParseException,
    PhoneMetadata,
    PhoneNumber,
    PhoneNumberType,
    ValidationResult,
)
from phonenumbers import timezone as number_timezone

from dialer import phonekeys
from dialer.places import TERRITORIES
from dialer.us_state_prefixes import state_for_digits

__all__ = [
    "Answer",
    "CacheStats",
    "InvalidNumber",
    "Located",
    "cache_stats",
    "is_e164",
    "locate",
    "mask",
    "normalize",
    "normalize_with_location",
    "time_zones_for",
    "uncached_locate",
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


class Answer(NamedTuple):
    """What the library says about a valid number, apart from its spelling."""

    kind: int  # a PhoneNumberType
    zones: frozenset[str]
    state: str | None


# A valid number: its E.164 form and the library's answers about it. A plain tuple,
# not a named one: the importer builds one per row.
Located = tuple[str, Answer]


def normalize(raw: str, default_region: str = "US") -> str:
    """The E.164 form of ``raw``, or ``InvalidNumber`` saying why there is none.

    Numbers without a leading + are read as national numbers of ``default_region``
    (an ISO 3166 code such as "US" or "GB"; "ZZ" demands the + form). Whatever
    ``phonenumbers`` accepts is accepted, e.g. "(415) 555-2671", "+44 20 7946 0958",
    "tel:+1-415-555-2671", "00 44 ..." when the region dials 00 abroad. A number with
    an extension is refused: E.164 cannot carry it, so the call would reach the
    switchboard and not the person.
    """
    return locate(raw, default_region)[0]


def normalize_with_location(
    raw: str, default_region: str = "US"
) -> tuple[str, frozenset[str], str | None]:
    """``normalize``, ``time_zones_for`` and ``us_state_for`` in one call."""
    e164, answer = locate(raw, default_region)
    return e164, answer.zones, answer.state


def locate(raw: str, default_region: str = "US") -> Located:
    """``normalize`` with the number's type, zones and US state: the importer's hot
    path, answered from the exact cache when the spelling is plain (see the module
    docstring), else by the library."""
    region = _checked_region(default_region)
    plain = _plain(raw, region)
    if plain is not None:
        answer = _CACHE.get(plain)
        if answer is not None:
            return plain, answer
    _CACHE.misses += 1
    number, e164, answer = _library_answer(raw, region)
    if plain == e164:  # what parse() made of it is what the plain path read
        _CACHE.learn(number, e164, answer)
    return e164, answer


def uncached_locate(raw: str, default_region: str = "US") -> Located:
    """``locate`` by the library alone: what the cache must agree with (its tests)."""
    _, e164, answer = _library_answer(raw, _checked_region(default_region))
    return e164, answer


def _library_answer(raw: str, region: str) -> tuple[PhoneNumber, str, Answer]:
    number, kind = _valid_number(raw, region)
    if phonenumbers.is_number_type_geographical(kind, number.country_code or 0):
        zones = number_timezone.time_zones_for_geographical_number(number)
    else:  # country-wide or no zone: let the library classify again
        zones = number_timezone.time_zones_for_number(number)
    return number, _format(number), Answer(kind, _known(zones), _us_state(number))


@functools.cache
def _checked_region(default_region: str) -> str:
    region = default_region.upper()
    if region != "ZZ" and region not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"unknown default region {default_region!r} (use an ISO code like US)")
    return region


# ---- the plain path ------------------------------------------------------------------

# phonenumbers refuses longer input outright (_MAX_INPUT_STRING_LENGTH).
_MAX_INPUT_CHARS = 250
# National significant numbers are 2 to 17 digits (_MIN/_MAX_LENGTH_FOR_NSN); a
# national spelling needs 3 (two digits with punctuation are no number to it).
_NSN_DIGITS = range(2, 18)


def _code_lengths() -> dict[str, int]:
    """For each three digits: the length of the country code they start with, taken
    as _extract_country_code does (the first of one to three digits that is a code;
    none after a 0)."""
    codes = {str(code) for code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE}
    found: dict[str, int] = {}
    for n in range(100, 1000):
        digits = str(n)
        size = next((size for size in (1, 2, 3) if digits[:size] in codes), None)
        if size is not None:
            found[digits] = size
    return found


_CODE_LENGTHS = _code_lengths()


def _squeezed(raw: str) -> str:
    """``raw`` without the punctuation plain spellings use (phonenumbers drops it)."""
    return raw.replace(" ", "").replace("-", "").replace("(", "").replace(")", "").replace(
        ".", "")


class _Start(NamedTuple):
    """A prefix pattern of the metadata (``re.match``, at the start of the digits) as
    the digit strings it is an alternation of, tested by ``str.startswith``, when it
    is one (most are: "0", "1", "00", "0|180020"); else the compiled pattern."""

    literals: tuple[str, ...]
    pattern: re.Pattern[str] | None


def _start(pattern: str | None) -> _Start:
    if not pattern:
        return _Start((), None)
    alternatives = tuple(pattern.split("|"))
    if all(a.isdigit() and a.isascii() for a in alternatives):
        return _Start(alternatives, None)
    return _Start((), re.compile(pattern))


@dataclass(frozen=True, slots=True)
class _Prefixes:
    """What parse() tries on a national number of one region before taking it as is."""

    country_code: str
    international: _Start  # the international dialling prefix (IDD)
    national: _Start  # national_prefix_for_parsing


@functools.cache
def _region_prefixes(region: str) -> _Prefixes:
    metadata = PhoneMetadata.metadata_for_region(region)
    assert metadata is not None  # a supported region
    return _Prefixes(str(metadata.country_code), _start(metadata.international_prefix),
                     _start(metadata.national_prefix_for_parsing))


def _national_prefix(country_code: str) -> _Start:
    """The national prefix parse() strips after +country code: the one of the code's
    main region (or non-geographic entity)."""
    code = int(country_code)
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(
        code, phonenumbers.region_code_for_country_code(code))
    return _start(None if metadata is None else metadata.national_prefix_for_parsing)


# The first three digits after a + -> the length of the country code they start with
# and its national prefix; filled as the codes come up (each loads its metadata).
_AFTER_PLUS: dict[str, tuple[int, _Start] | None] = {}


def _after_plus(head: str) -> tuple[int, _Start] | None:
    if head not in _AFTER_PLUS:
        size = _CODE_LENGTHS.get(head)
        _AFTER_PLUS[head] = None if size is None else (size, _national_prefix(head[:size]))
    return _AFTER_PLUS[head]


def _plain(raw: str, region: str) -> str | None:
    """The E.164 form (+, country code, national significant number) of the number
    ``phonenumbers.parse`` makes of a plain spelling, read off its digits, or None
    when the spelling is not plain or parse() would do more than split the country
    code off: strip an international prefix, a national prefix
    (``national_prefix_for_parsing`` matches), or a country code written without +
    (the digits start with the region's). Once per imported row: written for speed."""
    if len(raw) > _MAX_INPUT_CHARS:
        return None
    text = raw if raw[1:].isdigit() else _squeezed(raw)
    if text[:1] == "+":
        digits = text[1:]
        if not (digits.isdigit() and digits.isascii()) or len(digits) < 3:
            return None
        split = _AFTER_PLUS.get(digits[:3]) or _after_plus(digits[:3])
        if split is None:
            return None
        national = digits[split[0]:]
        prefix = split[1]
        e164 = text  # "+" + country code + national
    elif region == "ZZ" or not (text.isdigit() and text.isascii()) or len(text) < 3:
        return None
    else:
        known = _region_prefixes(region)
        idd = known.international
        if (text.startswith(idd.literals) or (idd.pattern is not None and idd.pattern.match(text))
                or text.startswith(known.country_code)):
            return None
        national, prefix = text, known.national
        e164 = "+" + known.country_code + text
    if (len(national) not in _NSN_DIGITS or national.startswith(prefix.literals)
            or (prefix.pattern is not None and prefix.pattern.match(national))):
        return None
    return e164


class CacheStats(NamedTuple):
    hits: int
    misses: int
    classes: int


class _Table:
    """The answers held for E.164 numbers of one length (see ``_AnswerCache``)."""

    __slots__ = ("answers", "heads", "lengths", "longest")

    def __init__(self) -> None:
        self.answers: dict[str, Answer] = {}  # deciding prefix -> answer
        self.lengths: list[int] = []  # of the prefixes held
        self.longest = 0
        # The first ``longest`` characters of numbers answered -> their answer: one
        # look-up instead of one per prefix length.
        self.heads: dict[str, Answer] = {}


class _AnswerCache:
    """Answers of valid numbers by the prefix that decides them (``phonekeys``), per
    length of the E.164 form. The prefixes of one length never start one another
    (a number's shortest deciding prefix is the same for every number it decides), so
    a number has at most one: the first one found is its answer, and so is that of
    every number of the length that starts with the same ``longest`` characters (a
    prefix learned later cannot start them: it would start or be started by the one
    found). Bounded: when full it starts again empty."""

    def __init__(self, limit: int = 100_000) -> None:
        self._limit = limit
        self._size = 0
        self._tables: dict[int, _Table] = {}  # by len(e164)
        self.hits = 0
        self.misses = 0

    def get(self, e164: str) -> Answer | None:
        table = self._tables.get(len(e164))
        if table is None:
            return None
        head = e164[:table.longest]
        found = table.heads.get(head)
        if found is None:
            answers = table.answers
            for length in table.lengths:
                found = answers.get(e164[:length])
                if found is not None:
                    break
            else:
                return None
            if len(table.heads) >= self._limit:
                table.heads.clear()
            table.heads[head] = found
        self.hits += 1
        return found

    def learn(self, number: PhoneNumber, e164: str, answer: Answer) -> None:
        """Keep ``answer`` for every number the prefix of ``e164`` decides."""
        code = number.country_code or 0
        rules = phonekeys.country(code)
        if rules is None:
            return
        national = phonenumbers.national_significant_number(number)
        size = rules.key_length(
            national,
            geographical=phonenumbers.is_number_type_geographical(answer.kind, code),
            us_region=code == 1 and phonenumbers.region_code_for_number(number) == "US",
        )
        if self._size >= self._limit:
            self._tables.clear()
            self._size = 0
        table = self._tables.setdefault(len(e164), _Table())
        key = e164[:len(e164) - len(national) + size]
        if key not in table.answers:
            table.answers[key] = answer
            self._size += 1
            if len(key) not in table.lengths:
                table.lengths.append(len(key))
            if len(key) > table.longest:
                table.longest = len(key)
                table.heads.clear()

    def stats(self) -> CacheStats:
        return CacheStats(self.hits, self.misses, self._size)


_CACHE = _AnswerCache()


def cache_stats() -> CacheStats:
    """How this process's cache fared: numbers answered from it, numbers that took
    the library's path, classes held."""
    return _CACHE.stats()


def _valid_number(raw: str, region: str) -> tuple[PhoneNumber, int]:
    """The parsed number and its PhoneNumberType. A type other than UNKNOWN is exactly
    what ``is_valid_number`` tests: both classify the number for the region it is in."""
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
