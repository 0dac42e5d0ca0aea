"""Numbers: E.164 normalization, the zone a number implies, masking for logs."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from phonenumbers import timezone as number_timezone
from phonenumbers.tzdata import TIMEZONE_DATA

from dialer.phone import (
    InvalidNumber,
    is_e164,
    mask,
    normalize,
    normalize_with_location,
    time_zones_for,
    us_state_for,
)


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("+1 415 555 2671", "US", "+14155552671"),
        ("(415) 555-2671", "US", "+14155552671"),
        ("415.555.2671", "US", "+14155552671"),
        ("1-415-555-2671", "US", "+14155552671"),
        ("  +14155552671  ", "US", "+14155552671"),
        ("tel:+1-415-555-2671", "US", "+14155552671"),
        ("011 44 20 7946 0958", "US", "+442079460958"),  # the US dials 011 abroad
        ("+44 20 7946 0958", "US", "+442079460958"),
        ("020 7946 0958", "GB", "+442079460958"),
        ("020 7946 0958", "gb", "+442079460958"),
        ("0044 20 7946 0958", "GB", "+442079460958"),  # the UK dials 00 abroad
        ("06 12 34 56 78", "FR", "+33612345678"),
        ("+39 06 6982 1234", "US", "+390669821234"),  # Italian numbers keep their 0
        ("+91 98765 43210", "US", "+919876543210"),
        ("+1 415 555 2671", "ZZ", "+14155552671"),
        ("1-800-FLOWERS", "US", "+18003569377"),  # letters on the keypad, as phonenumbers does
        ("٤١٥٥٥٥٢٦٧١", "US", "+14155552671"),  # Arabic-Indic digits
    ],
)
def test_normalize(raw: str, region: str, expected: str) -> None:
    assert normalize(raw, region) == expected


@pytest.mark.parametrize(
    ("raw", "region", "reason"),
    [
        ("", "US", "empty"),
        ("   ", "US", "empty"),
        ("abc", "US", "not a number"),
        ("+", "US", "not a number"),
        ("+999 1234", "US", "invalid country code"),
        ("4155552671", "ZZ", "no country code"),
        ("123", "US", "too short"),
        ("+1 415 555 267", "US", "too short"),
        ("+1 415 555 26711111", "US", "too long"),
        ("1" * 300, "US", "too long"),
        ("0044 20 7946 0958", "US", "too long"),  # 00 is not the US exit code
        ("+1 200 555 0100", "US", "invalid for region US"),  # no area code 200
        ("+44 20 7946 095", "US", "invalid for region GB"),
        ("+14155552671 ext 12", "US", "has an extension"),
        ("+1 415 555 2671 x3", "US", "has an extension"),
    ],
)
def test_normalize_refuses(raw: str, region: str, reason: str) -> None:
    with pytest.raises(InvalidNumber, match=reason):
        normalize(raw, region)


def test_an_unknown_default_region_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="unknown default region 'XX'") as info:
        normalize("4155552671", "XX")
    assert not isinstance(info.value, InvalidNumber)


def test_invalid_number_is_a_value_error() -> None:
    assert issubclass(InvalidNumber, ValueError)


@settings(max_examples=500)
@given(
    raw=st.text() | st.from_regex(r"\A\+?[0-9 ()./-]{0,20}\Z"),
    region=st.sampled_from(["US", "GB", "FR", "DE", "IN", "AU", "ZZ"]),
)
def test_normalize_only_raises_invalid_number(raw: str, region: str) -> None:
    try:
        result = normalize(raw, region)
    except InvalidNumber:
        return
    assert is_e164(result)
    assert normalize(result, region) == result
    assert normalize(result, "ZZ") == result


@pytest.mark.parametrize("region", sorted(phonenumbers.SUPPORTED_REGIONS))
def test_example_numbers_of_every_region_normalize(region: str) -> None:
    """Each region's own example numbers, written nationally or internationally."""
    for kind in (phonenumbers.PhoneNumberType.FIXED_LINE, phonenumbers.PhoneNumberType.MOBILE):
        example = phonenumbers.example_number_for_type(region, kind)
        if example is None:
            continue
        e164 = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
        for style in (
            phonenumbers.PhoneNumberFormat.NATIONAL,
            phonenumbers.PhoneNumberFormat.INTERNATIONAL,
        ):
            assert normalize(phonenumbers.format_number(example, style), region) == e164
        assert time_zones_for(e164) == frozenset(
            z for z in number_timezone.time_zones_for_number(example) if z != "Etc/Unknown"
        )


# --- time zones -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("e164", "zones"),
    [
        ("+14155552671", ("America/Los_Angeles",)),
        ("+14165550123", ("America/Toronto",)),
        ("+442079460958", ("Europe/London",)),
        ("+919876543210", ("Asia/Calcutta",)),  # phonenumbers uses the old alias
        ("+6433050123", ("Pacific/Chatham",)),
        ("+80012345678", ()),  # international freephone: nowhere
        ("+999123456", ()),  # no such country code
    ],
)
def test_time_zones_for(e164: str, zones: tuple[str, ...]) -> None:
    assert time_zones_for(e164) == frozenset(zones)


@pytest.mark.parametrize(
    ("e164", "includes"),
    [
        ("+18005550100", {"Pacific/Guam", "America/New_York", "Pacific/Honolulu"}),  # toll-free
        ("+61412345678", {"Australia/Perth", "Australia/Sydney"}),  # an Australian mobile
        ("+79161234567", {"Europe/Moscow", "Asia/Kamchatka"}),  # a Moscow mobile
        ("+68675123456", {"Pacific/Tarawa", "Pacific/Kiritimati"}),  # across the date line
    ],
)
def test_numbers_spanning_zones_give_every_zone(e164: str, includes: set[str]) -> None:
    assert time_zones_for(e164) >= includes


# --- US states -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("e164", "state"),
    [
        ("+14155552671", "CA"),  # "San Francisco, CA"
        ("+14055550100", "OK"),  # "Oklahoma"
        ("+12065550100", "WA"),  # "Washington State"
        ("+12025550100", "DC"),
        ("+17875550100", "PR"),  # a territory with its own region code
        ("+16715550100", "GU"),
        ("+18005550100", "US"),  # toll-free: somewhere in the US
        ("+16135550100", None),  # Ontario
        ("+12425550100", None),  # the Bahamas (its "Long Island" is no New York)
        ("+442079460958", None),
    ],
)
def test_us_state_for(e164: str, state: str | None) -> None:
    assert us_state_for(e164) == state


@pytest.mark.parametrize("text", ["4155552671", "+1 415 555 2671", ""])
def test_time_zones_need_e164(text: str) -> None:
    with pytest.raises(InvalidNumber, match=r"not in E\.164 form"):
        time_zones_for(text)


def test_every_zone_phonenumbers_knows_loads() -> None:
    """The daemon turns these names into ZoneInfo; a name missing from tzdata would crash."""
    names = {name for value in TIMEZONE_DATA.values() for name in value} - {"Etc/Unknown"}
    assert names
    for name in names:
        ZoneInfo(name)


# --- syntax and masking -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("+14155552671", True),
        ("+12", True),
        ("+123456789012345", True),  # 15 digits, the maximum
        ("+1234567890123456", False),
        ("+1", False),
        ("+0123", False),
        ("14155552671", False),
        ("+1415555 2671", False),
        ("+14155552671\n", False),
        ("+١٢٣٤", False),  # digits, but not ones a network dials
        ("", False),
        ("+", False),
    ],
)
def test_is_e164(text: str, expected: bool) -> None:
    assert is_e164(text) is expected


@pytest.mark.parametrize(
    ("e164", "masked"),
    [
        ("+14155552671", "+1415*****71"),
        ("+442079460958", "+4420******58"),
        ("+380441234567", "+3804******67"),
        ("+4930901820", "+493*****20"),
        ("+12", "+*2"),
        ("+123", "+*23"),
        ("4155552671", "**********"),  # not E.164: nothing shown
        ("", ""),
    ],
)
def test_mask(e164: str, masked: str) -> None:
    assert mask(e164) == masked


@given(st.from_regex(r"\A\+[1-9][0-9]{1,14}\Z"))
def test_mask_hides_at_least_half_the_digits(e164: str) -> None:
    masked = mask(e164)
    assert len(masked) == len(e164)
    digits = len(e164) - 1
    assert masked.count("*") >= digits // 2
    assert masked.count("*") >= 1
    assert all(m in ("*", c) for m, c in zip(masked, e164, strict=True))


@pytest.mark.parametrize(
    "raw", ["+1 212 555 0199", "(415) 555-2671", "+44 20 7946 0958", "+61 2 9876 5432",
            "+81 3 5200 1234", "+1 800 555 0100"],
)
def test_normalize_with_location_agrees_with_the_separate_calls(raw: str) -> None:
    e164 = normalize(raw, "US")
    assert normalize_with_location(raw, "US") == (e164, time_zones_for(e164), us_state_for(e164))


Located = tuple[str, frozenset[str], str | None]


def _reference(raw: str, region: str) -> Located | None:
    """The importer's answer spelled with the library's public calls, one by one."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    if number.extension or not phonenumbers.is_valid_number(number):
        return None
    zones = frozenset(z for z in number_timezone.time_zones_for_number(number)
                      if z != "Etc/Unknown")
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return e164, zones, us_state_for(e164)


def _fast(raw: str, region: str) -> Located | None:
    try:
        return normalize_with_location(raw, region)
    except InvalidNumber:
        return None


# No deadline: the geocoder loads its place names on first use (hundreds of ms).
@settings(max_examples=2000, deadline=None)
@given(raw=st.from_regex(r"\A\+[1-9][0-9]{5,14}\Z") | st.from_regex(r"\A[0-9]{6,12}\Z"),
       region=st.sampled_from(["US", "GB", "IN", "BR", "AU", "MX"]))
def test_normalize_with_location_is_the_public_two_step_answer(raw: str, region: str) -> None:
    """Valid numbers, invalid ones, non-geographic ones (no zone or a whole country's):
    classifying once gives what is_valid_number + time_zones_for_number give."""
    assert _fast(raw, region) == _reference(raw, region)


@pytest.mark.parametrize("region", sorted(phonenumbers.SUPPORTED_REGIONS))
def test_normalize_with_location_on_every_kind_of_example_number(region: str) -> None:
    for kind in range(phonenumbers.PhoneNumberType.VOICEMAIL + 1):
        example = phonenumbers.example_number_for_type(region, kind)
        if example is not None:
            raw = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
            assert _fast(raw, region) == _reference(raw, region)


def test_normalize_with_location_refuses_what_normalize_refuses() -> None:
    with pytest.raises(InvalidNumber):
        normalize_with_location("+1 555", "US")
