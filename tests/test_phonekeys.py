"""The exact cache of phonenumbers' answers: the same answers as the library, and the
proof of its key (``dialer.phonekeys``) checked against the library's own matching."""

from __future__ import annotations

import random
import re

import phonenumbers
from phonenumbers import PhoneMetadata, PhoneNumberFormat, PhoneNumberType
from phonenumbers import timezone as number_timezone
from phonenumbers.tzdata import TIMEZONE_DATA, TIMEZONE_LONGEST_PREFIX

from dialer import phone, phonekeys, us_state_prefixes

SAMPLES = 200_000
_TYPES = [getattr(PhoneNumberType, name) for name in dir(PhoneNumberType)
          if name.isupper() and name != "UNKNOWN"]
_CODES = sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
_REGIONS = sorted(phonenumbers.SUPPORTED_REGIONS)


def _metadata(code: int) -> list[PhoneMetadata]:
    found = []
    for region in phonenumbers.COUNTRY_CODE_TO_REGION_CODE[code]:
        if region == phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY:
            found.append(PhoneMetadata.metadata_for_nongeo_region(code))
        else:
            found.append(PhoneMetadata.metadata_for_region(region))
    return [m for m in found if m is not None]


def _examples() -> list[tuple[int, str]]:
    """(country code, national significant number) of every example number."""
    found = set()
    for region in _REGIONS:
        for kind in _TYPES:
            number = phonenumbers.example_number_for_type(region, kind)
            if number is not None:
                found.add((number.country_code, phonenumbers.national_significant_number(number)))
    for code in phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS:
        number = phonenumbers.example_number_for_non_geo_entity(code)
        if number is not None:
            found.add((code, phonenumbers.national_significant_number(number)))
    return sorted(found)


def _lengths(code: int) -> list[int]:
    """Every possible length of the code's national numbers, and one either side."""
    lengths = {n for m in _metadata(code) if m.general_desc
               for n in m.general_desc.possible_length if n > 0}
    return sorted({n + d for n in lengths for d in (-1, 0, 1) if n + d >= 2})


def _spelled(e164: str, rng: random.Random) -> str:
    """An E.164 number with the punctuation people type, sometimes."""
    if rng.random() < 0.7:
        return e164
    digits = e164[1:]
    cut = sorted(rng.sample(range(1, len(digits)), k=min(3, len(digits) - 1)))
    parts = [digits[i:j] for i, j in zip([0, *cut], [*cut, len(digits)], strict=True)]
    return "+" + rng.choice([" ", "-", ".", " ("]).join(parts)


def _samples(count: int, seed: int) -> list[tuple[str, str]]:
    """(raw, default region): numbers near example numbers (digits changed at the end,
    so many share a class and many do not), random digits at every possible length,
    and national spellings of both in their own region; the default region of the
    others is drawn at random."""
    rng = random.Random(seed)
    examples = _examples()
    lengths = {code: _lengths(code) for code in _CODES}
    samples: list[tuple[int, str, str]] = []
    while len(samples) < count:
        draw = rng.random()
        if draw < 0.45:
            code, national = rng.choice(examples)
            keep = rng.randrange(len(national) + 1)
            national = national[:keep] + "".join(
                rng.choice("0123456789") for _ in range(len(national) - keep))
        else:
            code = rng.choice(_CODES)
            national = "".join(rng.choice("0123456789")
                               for _ in range(rng.choice(lengths[code] or [8])))
        e164 = f"+{code}{national}"
        region = rng.choice(_REGIONS)
        if draw < 0.75:
            samples.append((code, _spelled(e164, rng), region))
            continue
        try:
            number = phonenumbers.parse(e164, None)
        except phonenumbers.NumberParseException:
            continue
        home = phonenumbers.region_code_for_number(number)
        if home in phonenumbers.SUPPORTED_REGIONS:
            samples.append((code, phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL),
                            home))
            samples.append((code, phonenumbers.national_significant_number(number), home))
    # By country, as a file mostly is: the library compiles its patterns through re's
    # cache of 512, which a random mix of every country's patterns defeats (ten times
    # slower; no answer changes).
    samples = sorted(samples[:count], key=lambda sample: sample[0])
    return [(raw, region) for _, raw, region in samples]


Answered = tuple[str, int, frozenset[str]] | None


def _library(raw: str, region: str) -> Answered:
    """The answer by the library's public calls, one by one (and the dialer's own
    rule: a number longer than E.164 allows is refused, however valid)."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    if number.extension or not phonenumbers.is_valid_number(number):
        return None
    e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    if not phone.is_e164(e164):
        return None
    zones = frozenset(z for z in number_timezone.time_zones_for_number(number)
                      if z != "Etc/Unknown")
    return e164, phonenumbers.number_type(number), zones


def test_the_cache_gives_the_library_answers_on_200000_numbers() -> None:
    """Validity, E.164, type and the zone set agree on every number, and a NANP
    number's US state with the uncached path. (An invalid number always takes the
    library's path, which says why.)"""
    before = phone.cache_stats()
    disagree = []
    valid = 0
    for raw, region in _samples(SAMPLES, seed=18):
        expected = _library(raw, region)
        try:
            e164, answer = phone.locate(raw, region)
        except phone.InvalidNumber:
            got: Answered = None
        else:
            got = (e164, answer.kind, answer.zones)
            valid += 1
            if e164.startswith("+1") and answer != phone.uncached_locate(raw, region)[1]:
                disagree.append((raw, region, answer, phone.uncached_locate(raw, region)))
        if got != expected:
            disagree.append((raw, region, got, expected))
    assert disagree[:20] == []
    hits = phone.cache_stats().hits - before.hits
    # The draw must exercise the cache: most valid numbers are answered from it.
    assert valid > SAMPLES // 4
    assert hits > valid // 2


# ---- the proof's parts, against the library's own matching -------------------------


def _patterns() -> list[tuple[str, frozenset[int]]]:
    """Every type pattern of the metadata, with its possible lengths."""
    found = {}
    for code in _CODES:
        for metadata in _metadata(code):
            for name in phonekeys.TYPE_DESCS:
                desc = getattr(metadata, name)
                if desc is not None and desc.national_number_pattern:
                    found[desc.national_number_pattern] = frozenset(desc.possible_length)
    return sorted(found.items())


def test_every_type_pattern_is_modelled() -> None:
    """A pattern the automaton cannot model sends its country to the library's path:
    correct, but slow. New syntax in a metadata update shows up here."""
    unprovable = []
    for text, _ in _patterns():
        try:
            phonekeys.Pattern(text)
        except phonekeys.Unprovable:
            unprovable.append(text)
    assert unprovable == []
    assert [code for code in _CODES if phonekeys.country(code) is None] == []


def test_the_automata_match_what_re_matches() -> None:
    """For every pattern, on digits of its lengths: full match and prefix match as re."""
    rng = random.Random(6)
    for text, lengths in _patterns():
        full = phonekeys.Pattern(text)
        prefix = phonekeys.Pattern(text, prefix=True)
        compiled = re.compile(text)
        for length in sorted(lengths or {8}):
            for _ in range(12):
                digits = "".join(rng.choice("0123456789") for _ in range(length))
                state_full, state_prefix = full.start, prefix.start
                for digit in digits:
                    state_full = full.step(state_full, digit)
                    state_prefix = prefix.step(state_prefix, digit)
                assert full.accepts(state_full) == bool(compiled.fullmatch(digits)), (text, digits)
                assert prefix.accepts(state_prefix) == bool(compiled.match(digits)), (text, digits)


def test_a_decided_prefix_decides_every_continuation() -> None:
    """Where ``verdict`` says a prefix decides a pattern, every continuation agrees;
    the prefixes tried are those of numbers that match, so the interesting ones."""
    rng = random.Random(7)
    examples = _examples()
    for code, national in examples:
        rules = phonekeys.country(code)
        assert rules is not None
        for metadata in _metadata(code):
            for name in phonekeys.TYPE_DESCS:
                desc = getattr(metadata, name)
                if desc is None or not desc.national_number_pattern:
                    continue
                pattern = phonekeys.Pattern(desc.national_number_pattern)
                compiled = re.compile(desc.national_number_pattern)
                state = pattern.start
                for size in range(len(national) + 1):
                    remaining = len(national) - size
                    verdict = pattern.verdict(state, remaining)
                    if verdict is not None:
                        for _ in range(2):
                            tail = "".join(rng.choice("0123456789") for _ in range(remaining))
                            digits = national[:size] + tail
                            assert bool(compiled.fullmatch(digits)) == verdict, (
                                desc.national_number_pattern, national[:size], digits)
                    if size < len(national):
                        state = pattern.step(state, national[size])


def test_a_decided_zone_prefix_gives_one_zone_set() -> None:
    """``PrefixMap.decided`` on the library's zone map: every number below a decided
    prefix gets the prefix's zones from the library's own lookup."""
    zones = phonekeys.zone_map()
    rng = random.Random(8)
    keys = rng.sample(sorted(TIMEZONE_DATA), 3000)
    checked = 0
    for key in keys:
        for size in range(1, len(key) + 1):
            prefix = key[:size]
            total = max(len(key), rng.randrange(7, 16))
            if not zones.decided(prefix, total):
                continue
            checked += 1
            for _ in range(4):
                digits = prefix + "".join(rng.choice("0123456789")
                                          for _ in range(total - len(prefix)))
                found = next((TIMEZONE_DATA[digits[:n]]
                              for n in range(min(TIMEZONE_LONGEST_PREFIX, total), 0, -1)
                              if digits[:n] in TIMEZONE_DATA), None)
                assert found == zones.value(prefix), (prefix, digits)
    assert checked > 1000


def test_a_decided_state_prefix_gives_one_state() -> None:
    """The same for the US state table: every +1 number below a decided prefix gets
    the prefix's state from ``state_for_digits``."""
    states = phonekeys.place_states()
    rng = random.Random(10)
    checked = 0
    for key in sorted(us_state_prefixes.table()):
        for size in range(1, len(key) + 1):
            prefix = key[:size]
            if not states.decided(prefix, 11):
                continue
            checked += 1
            expected = us_state_prefixes.state_for_digits(prefix.ljust(11, "0"))
            for _ in range(2):
                digits = prefix + "".join(rng.choice("0123456789")
                                          for _ in range(11 - len(prefix)))
                assert us_state_prefixes.state_for_digits(digits) == expected, (prefix, digits)
    assert checked > 1000


def test_the_key_of_a_number_decides_its_class() -> None:
    """Numbers that share a valid number's key get its answers from the library."""
    rng = random.Random(9)
    for code, national in _examples():
        number = phonenumbers.parse(f"+{code}{national}", None)
        if not phonenumbers.is_valid_number(number):
            continue
        rules = phonekeys.country(code)
        assert rules is not None
        kind = phonenumbers.number_type(number)
        size = rules.key_length(
            national, geographical=phonenumbers.is_number_type_geographical(kind, code),
            us_region=code == 1 and phonenumbers.region_code_for_number(number) == "US")
        expected = _library(f"+{code}{national}", "ZZ")
        assert expected is not None
        for _ in range(3):
            other = national[:size] + "".join(rng.choice("0123456789")
                                              for _ in range(len(national) - size))
            got = _library(f"+{code}{other}", "ZZ")
            assert got is not None and got[1:] == expected[1:], (code, national, size, other)
