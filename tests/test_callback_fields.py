"""The pure checks of a callback: its URL, its form, its names and its fields."""

from __future__ import annotations

import pytest

from dialer.callback_urls import (
    CallbackTarget,
    NotACallbackUrl,
    attempt_id_of,
    callback_url,
    overrides_fragment,
    parse_target,
    signed_urls,
)
from dialer.callbacks import (
    BadCallback,
    NotTwilios,
    check_names,
    parse_event,
    parse_form,
    resplit_field,
)

SID = "CA" + "b" * 32
ACCOUNT = "AC" + "0" * 32
STATUS = CallbackTarget(42, "status")
AMD = CallbackTarget(42, "amd")


def status(**extra: str) -> dict[str, str]:
    return {"AccountSid": ACCOUNT, "CallSid": SID, "CallStatus": "ringing",
            "SequenceNumber": "1", "CallbackSource": "call-progress-events", **extra}


# ---- URLs ------------------------------------------------------------------------------


def test_callback_urls_end_in_a_fixed_segment_after_the_id() -> None:
    assert callback_url("https://d.example", 15753, "status", retries=3) == (
        "https://d.example/twilio/attempts/15753/status#rc=3&rp=all")
    assert callback_url("https://d.example", 7, "amd", retries=0) == (
        "https://d.example/twilio/attempts/7/amd")
    assert overrides_fragment(0) == ""


@pytest.mark.parametrize(
    ("path", "query", "target"),
    [
        ("/twilio/attempts/15753/status", "", CallbackTarget(15753, "status")),
        ("/twilio/attempts/1/amd", "", CallbackTarget(1, "amd")),
        ("/twilio/status", "a=15753", CallbackTarget(15753, "status", legacy=True)),
        ("/twilio/amd", "a=9", CallbackTarget(9, "amd", legacy=True)),
        ("/twilio/attempts/9223372036854775807/status", "",
         CallbackTarget(2**63 - 1, "status")),
    ],
)
def test_targets_of_both_url_forms(path: str, query: str, target: CallbackTarget) -> None:
    assert parse_target(path, query) == target


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/twilio/status", "a=²"),            # str.isdigit says yes, int() says no
        ("/twilio/status", "a=" + "9" * 5000),
        ("/twilio/status", "a=9223372036854775808"),  # past bigint
        ("/twilio/attempts/9223372036854775808/status", ""),
        ("/twilio/status", "a=0"),
        ("/twilio/status", "a=012"),
        ("/twilio/status", ""),
        ("/twilio/status", "a=1&a=2"),
        ("/twilio/status", "a=1&b=2"),
        ("/twilio/attempts/12/status", "a=12"),  # the new form has no query string
        ("/twilio/attempts/%31%32/status", ""),
        ("/twilio/attempts/12/status/", ""),
        ("/twilio/attempts/12/statusX", ""),
        ("/twilio/attempts/-1/status", ""),
        ("/twilio/attempts/١٢/status", ""),  # Arabic-Indic digits
    ],
)
def test_urls_the_dialer_never_gives_are_refused(path: str, query: str) -> None:
    with pytest.raises(NotACallbackUrl):
        parse_target(path, query)


def test_signed_urls_are_the_url_with_and_without_our_fragment() -> None:
    assert signed_urls("https://d.example", "/twilio/attempts/5/status", "", retries=2) == (
        "https://d.example/twilio/attempts/5/status",
        "https://d.example/twilio/attempts/5/status#rc=2&rp=all")
    assert signed_urls("https://d.example", "/twilio/status", "a=5", retries=0) == (
        "https://d.example/twilio/status?a=5",)


def test_attempt_id_of_a_url_we_gave() -> None:
    assert attempt_id_of(callback_url("https://d.example/prefix", 77, "amd", retries=1)) == 77
    assert attempt_id_of("http://127.0.0.1:8080/twilio/status?a=5#rc=3&rp=all") == 5


# ---- the form --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body", [b"CallSid=%ff", b"\xff=1", b"CallSid", b"A=1&&B=2", b"&".join([b"A=1"] * 300)]
)
def test_bodies_that_are_not_utf8_forms(body: bytes) -> None:
    with pytest.raises(BadCallback, match="not a form"):
        parse_form(body)


def test_form_values_are_decoded_and_kept_in_order() -> None:
    assert parse_form(b"A=%C3%BC+x&B=&A=2") == {"A": ["ü x", "2"], "B": [""]}
    assert parse_form(b"") == {}


# ---- names -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["3AccountSid", "callSid", "#rc", "", "Über", "Call Sid", "A" * 65, "Call\x00Sid"]
)
def test_names_that_are_not_twilios_are_refused(name: str) -> None:
    with pytest.raises(NotTwilios, match="not Twilio's"):
        check_names({**status(), name: "x"})


@pytest.mark.parametrize(
    "form",
    [
        # a field absorbed into the value before it
        {**status(), "ApiVersion": "2010-04-01AnsweredBymachine_start"},
        # a field name cut short, or lengthened with the start of its value
        {**status(), "AnsweredB": "ymachine_start"},
        {**status(), "AnsweredBymachine": "_start"},
        {**status(), "SipResponseCode200": ""},
        # a field's name split across a value and the next name
        {**status(), "ApiVersion": "2010-04-01Answered", "By": "human"},
        # SequenceNumber stretched over the field after it; CallbackSource absorbed
        {**status(SequenceNumber="3SipResponseCode487")},
        {k: v for k, v in status(CallStatus="ringingCallbackSourcecall-progress-events")
         .items() if k != "CallbackSource"},
    ],
)
def test_moved_boundaries_of_fields_we_read_are_refused(form: dict[str, str]) -> None:
    with pytest.raises(NotTwilios, match="appears inside another field"):
        check_names(form)


def test_names_containing_ours_as_a_later_word_are_twilios() -> None:
    form = status(ParentCallSid="CA" + "c" * 32, DialCallStatus="completed",
                  DialCallDuration="3")
    check_names(form)
    assert resplit_field(form) is None


# ---- fields ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"AccountSid": ACCOUNT}, "CallSid"),
        (status(CallSid="CA123"), "CallSid"),
        (status(CallSid=SID + "0"), "CallSid"),
        (status(CallStatus="exploded"), "CallStatus"),
        ({k: v for k, v in status().items() if k != "CallStatus"}, "CallStatus missing"),
        ({k: v for k, v in status().items() if k != "SequenceNumber"}, "SequenceNumber missing"),
        (status(CallDuration="ten"), "CallDuration"),
        (status(CallDuration="-1"), "CallDuration"),
        (status(AnsweredBy="robot"), "AnsweredBy"),
        (status(SequenceNumber="x"), "SequenceNumber"),
        (status(SequenceNumber="2147483648"), "SequenceNumber"),  # past integer
        (status(SequenceNumber="9" * 5000), "SequenceNumber"),
        (status(SequenceNumber="³"), "SequenceNumber"),
        (status(SipResponseCode="2000"), "SipResponseCode"),
        (status(SipResponseCode="099"), "SipResponseCode"),
        (status(CallbackSource="call-progress-events-x"), "CallbackSource"),
        (status(CallbackSource="call-progress-eventsCalled+14155550100"), "CallbackSource"),
        (status(Caller="+1415\x00"), "NUL"),
        (status(To="\x00"), "NUL"),
        ({**status(), "CallStatus": ["ringing", "completed"]}, "CallStatus given 2 times"),
    ],
)
def test_malformed_callbacks_name_the_field(form: dict[str, str], message: str) -> None:
    with pytest.raises(BadCallback, match=message):
        parse_event(form, STATUS, idempotency_token=None)


@pytest.mark.parametrize("token", ["", " x", "a b", "x" * 257, "tok\x00", "ü"])
def test_malformed_idempotency_tokens_are_refused(token: str) -> None:
    with pytest.raises(BadCallback, match="Idempotency"):
        parse_event(status(), STATUS, idempotency_token=token)


def test_amd_callback_needs_answered_by() -> None:
    with pytest.raises(BadCallback, match="AnsweredBy missing"):
        parse_event({"AccountSid": ACCOUNT, "CallSid": SID}, AMD, idempotency_token=None)


def test_well_formed_status_callback() -> None:
    event = parse_event(
        status(CallStatus="completed", CallDuration="7", SequenceNumber="2147483647",
               SipResponseCode="200", Extra=""),
        STATUS, idempotency_token="tok",
    )
    assert (event.attempt_hint, event.sequence_number, event.duration, event.sip_code) == (
        42, 2**31 - 1, 7, 200)
    assert (event.source, event.idempotency_token, event.legacy_url) == (
        "call-progress-events", "tok", False)
    assert event.params["Extra"] == ""


def test_an_amd_result_is_keyed_by_its_call_alone() -> None:
    """Whatever sequence number it carries, one AMD result per call."""
    event = parse_event({"AccountSid": ACCOUNT, "CallSid": SID, "AnsweredBy": "human",
                         "SequenceNumber": "5"}, CallbackTarget(3, "amd", legacy=True),
                        idempotency_token=None)
    assert (event.source, event.sequence_number, event.answered_by, event.legacy_url) == (
        "amd", None, "human", True)
