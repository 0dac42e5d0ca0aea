"""Status and AMD callbacks: parameters, signatures, retries, overrides, delivery modes."""

from __future__ import annotations

import email.utils
import re
import socket

import pytest
from twilio.request_validator import (
    HMAC_SHA1,
    HMAC_SHA256,
    RequestValidator,
    get_signature_algorithm,
)

from dialer.sim import SimCall
from dialer.testing import wait_until
from tests.sim.support import (
    Received,
    Receiver,
    events,
    fast_config,
    running,
    twilio_signature,
)

ALL_EVENTS = ["initiated", "ringing", "answered", "completed"]
TOKEN = fast_config().auth_token


def assert_signed(received: Received, token: str = TOKEN) -> None:
    """Checked twice: by an independent implementation and by Twilio's own validator."""
    signature = received.headers["x-twilio-signature"]
    assert signature == twilio_signature(received.url, received.form, token)
    assert RequestValidator(token).validate(received.url, received.params, signature)


async def test_progress_events_carry_twilio_parameters_and_signatures(receiver: Receiver
                                                                     ) -> None:
    url = receiver.url("/status?campaign=7&contact=42")
    async with running(fast_config()) as (sim, api):
        sid = await api.create_sid("+14155550100", StatusCallback=url,
                                   StatusCallbackEvent=ALL_EVENTS, MachineDetection="Enable")
        await wait_until(lambda: len(receiver.requests) == 4)
    got = receiver.requests
    assert events(got) == ["initiated", "ringing", "in-progress", "completed"]
    assert [r.params["SequenceNumber"] for r in got] == ["0", "1", "2", "3"]
    for received in got:
        assert (received.method, received.url) == ("POST", url)
        assert received.headers["content-type"] == "application/x-www-form-urlencoded"
        assert_signed(received)
        params = received.params
        assert params["CallSid"] == sid and params["AccountSid"] == sim.account_sid
        assert (params["To"], params["From"]) == ("+14155550100", "+15005550006")
        assert (params["Direction"], params["ApiVersion"]) == ("outbound-api", "2010-04-01")
        assert params["CallbackSource"] == "call-progress-events"
        assert email.utils.parsedate_to_datetime(params["Timestamp"]).tzinfo is not None
    tokens = [r.headers["i-twilio-idempotency-token"] for r in got]
    assert len(set(tokens)) == 4
    initiated, _, answered, completed = (r.params for r in got)
    assert "AnsweredBy" not in initiated and answered["AnsweredBy"] == "human"
    assert "CallDuration" not in answered
    assert completed["AnsweredBy"] == "human"
    assert (completed["CallDuration"], completed["Duration"], completed["SipResponseCode"]) == (
        "20", "1", "200")


async def test_only_completed_is_sent_by_default(receiver: Receiver) -> None:
    async with running(fast_config()) as (sim, api):
        sid = await api.create_sid("+14155550106", StatusCallback=receiver.url())
        await wait_until(lambda: not sim.calls[sid].live and receiver.requests != [])
    (received,) = receiver.requests
    params = received.params
    assert (params["CallStatus"], params["SequenceNumber"]) == ("busy", "0")
    assert (params["CallDuration"], params["SipResponseCode"]) == ("0", "486")
    assert "AnsweredBy" not in params


async def test_get_callbacks_carry_parameters_in_the_signed_query(receiver: Receiver) -> None:
    async with running(fast_config()) as (_, api):
        sid = await api.create_sid(StatusCallback=receiver.url("/get?x=1"),
                                   StatusCallbackMethod="GET")
        await wait_until(lambda: receiver.requests != [])
    (received,) = receiver.requests
    assert received.method == "GET" and received.form == {}
    assert received.url.startswith(receiver.url("/get?x=1&"))
    assert f"CallSid={sid}" in received.url
    assert_signed(received)


def delivered(call: SimCall) -> bool:
    return all(record.state != "pending" for record in call.callbacks)


async def test_fragment_overrides_set_retries_and_are_not_sent(receiver: Receiver) -> None:
    receiver.fail_next = 2
    async with running(fast_config()) as (sim, api):
        sid = await api.create_sid(StatusCallback=receiver.url("/retry?a=1#rc=2&rt=2000"))
        call = sim.calls[sid]
        await wait_until(lambda: bool(call.callbacks) and delivered(call))
    assert [r.url for r in receiver.requests] == [receiver.url("/retry?a=1")] * 3
    for received in receiver.requests:
        assert_signed(received)
    assert len({r.headers["i-twilio-idempotency-token"] for r in receiver.requests}) == 1
    (record,) = call.callbacks
    assert [attempt.status for attempt in record.attempts] == [500, 500, 200]
    assert record.state == "delivered"
    assert record.url == receiver.url("/retry?a=1#rc=2&rt=2000")


async def test_callbacks_can_be_signed_over_the_url_with_its_fragment(receiver: Receiver
                                                                     ) -> None:
    given = receiver.url("/cb?a=1#rc=1&rp=all")
    async with running(fast_config(sign_fragment=True)) as (_, api):
        await api.create_sid(StatusCallback=given)
        await wait_until(lambda: receiver.requests != [])
    (received,) = receiver.requests
    assert received.url == receiver.url("/cb?a=1")  # the fragment is never sent
    signature = received.headers["x-twilio-signature"]
    assert signature == twilio_signature(given, received.form, TOKEN)
    assert RequestValidator(TOKEN).validate(given, received.params, signature)
    assert not RequestValidator(TOKEN).validate(received.url, received.params, signature)
    assert "x-twilio-webhooks-signature-settings" not in received.headers


@pytest.mark.parametrize("algorithm", [HMAC_SHA256, HMAC_SHA1])
async def test_callbacks_can_be_signed_with_a_shared_key(receiver: Receiver, algorithm: str
                                                        ) -> None:
    """As a Webhooks Rule signs: the shared key and its algorithm, announced."""
    config = fast_config(webhook_shared_key="rule-key", webhook_signature_algorithm=algorithm)
    async with running(config) as (_, api):
        await api.create_sid(StatusCallback=receiver.url("/cb#rc=1"))
        await wait_until(lambda: receiver.requests != [])
    (received,) = receiver.requests
    announced = received.headers["x-twilio-webhooks-signature-settings"]
    assert announced == f"key={config.webhook_shared_key_sid},algorithm={algorithm}"
    assert get_signature_algorithm(announced) == algorithm
    signature = received.headers["x-twilio-signature"]
    assert RequestValidator("rule-key").validate(received.url, received.params, signature,
                                                 algorithm)
    assert not RequestValidator(TOKEN).validate(received.url, received.params, signature,
                                                algorithm)


@pytest.mark.parametrize("bad", [{"webhook_shared_key": ""},
                                 {"webhook_signature_algorithm": "HMAC_MD5"}])
def test_bad_signing_options_are_refused(bad: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="webhook_"):
        fast_config(**bad)


async def test_a_failing_callback_is_retried_once_by_default(receiver: Receiver) -> None:
    receiver.fail_next = 10
    async with running(fast_config()) as (sim, api):
        call = sim.calls[await api.create_sid(StatusCallback=receiver.url())]
        await wait_until(lambda: bool(call.callbacks) and delivered(call))
    assert len(receiver.requests) == 2
    assert call.callbacks[0].state == "failed"


async def test_client_errors_are_not_retried(receiver: Receiver) -> None:
    receiver.fail_next, receiver.fail_status = 10, 403
    async with running(fast_config()) as (sim, api):
        call = sim.calls[await api.create_sid(StatusCallback=receiver.url("/x#rc=5"))]
        await wait_until(lambda: bool(call.callbacks) and delivered(call))
    assert len(receiver.requests) == 1
    assert call.callbacks[0].state == "rejected"


async def test_connection_errors_are_retried() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    async with running(fast_config()) as (sim, api):
        call = sim.calls[await api.create_sid(
            StatusCallback=f"http://127.0.0.1:{port}/cb#rc=3&ct=200")]
        await wait_until(lambda: bool(call.callbacks) and delivered(call))
    (record,) = call.callbacks
    assert len(record.attempts) == 4
    assert all(a.status is None and a.error for a in record.attempts)
    assert record.state == "failed"


async def test_read_timeout_override(receiver: Receiver) -> None:
    receiver.delay = 0.5
    async with running(fast_config()) as (sim, api):
        call = sim.calls[await api.create_sid(StatusCallback=receiver.url("/slow#rc=0&rt=100"))]
        await wait_until(lambda: bool(call.callbacks) and delivered(call))
    (attempt,) = call.callbacks[0].attempts
    assert attempt.status is None and "Timeout" in (attempt.error or "")


async def test_duplicate_deliveries_repeat_each_event_with_its_token(receiver: Receiver
                                                                    ) -> None:
    async with running(fast_config(duplicate_callbacks=True)) as (_, api):
        await api.create_sid(StatusCallback=receiver.url(), StatusCallbackEvent=ALL_EVENTS)
        await wait_until(lambda: len(receiver.requests) == 8)
    got = receiver.requests
    assert events(got) == [status for status in
                           ["initiated", "ringing", "in-progress", "completed"] for _ in (1, 2)]
    for first, second in zip(got[::2], got[1::2], strict=True):
        assert first.form == second.form
        assert (first.headers["i-twilio-idempotency-token"]
                == second.headers["i-twilio-idempotency-token"])


async def test_out_of_order_delivery_sends_completed_first(receiver: Receiver) -> None:
    async with running(fast_config(out_of_order_callbacks=True)) as (_, api):
        await api.create_sid(StatusCallback=receiver.url(), StatusCallbackEvent=ALL_EVENTS)
        await wait_until(lambda: len(receiver.requests) == 4)
    assert events(receiver.requests) == ["completed", "in-progress", "ringing", "initiated"]
    assert [r.params["SequenceNumber"] for r in receiver.requests] == ["3", "2", "1", "0"]


async def test_dropped_callbacks_are_recorded_but_never_sent(receiver: Receiver) -> None:
    async with running(fast_config(drop_callbacks=True)) as (sim, api):
        call = sim.calls[await api.create_sid(StatusCallback=receiver.url(),
                                              StatusCallbackEvent=ALL_EVENTS)]
        await wait_until(lambda: len(call.callbacks) == 4 and delivered(call))
    assert receiver.requests == []
    assert [record.state for record in call.callbacks] == ["dropped"] * 4


async def test_callback_switches_apply_to_a_running_simulator(receiver: Receiver) -> None:
    async with running(fast_config()) as (sim, api):
        sim.config.drop_callbacks = True
        dropped = sim.calls[await api.create_sid(StatusCallback=receiver.url())]
        await wait_until(lambda: bool(dropped.callbacks) and delivered(dropped))
        sim.config.drop_callbacks = False
        await api.create_sid(StatusCallback=receiver.url())
        await wait_until(lambda: len(receiver.requests) == 1)


async def test_async_amd_result_goes_to_its_own_callback(receiver: Receiver) -> None:
    async with running(fast_config()) as (sim, api):
        sid = await api.create_sid(
            "+14155550103", StatusCallback=receiver.url("/status"),
            StatusCallbackEvent=ALL_EVENTS, MachineDetection="DetectMessageEnd",
            AsyncAmd="true", AsyncAmdStatusCallback=receiver.url("/amd?leg=1"),
        )
        await wait_until(lambda: len(receiver.requests) == 5)
    (amd,) = receiver.at("/amd")
    assert_signed(amd)
    assert amd.params == {
        "CallSid": sid, "AccountSid": sim.account_sid, "AnsweredBy": "machine_end_beep",
        "MachineDetectionDuration": "10000",
    }
    assert amd.headers["i-twilio-idempotency-token"]
    status = receiver.at("/status")
    assert all("AnsweredBy" not in r.params for r in status)
    assert status[-1].params["CallDuration"] == "30"  # greeting, then a 20 s message
    assert sim.calls[sid].answered_by == "machine_end_beep"


async def test_record_true_puts_the_recording_on_the_completed_event(receiver: Receiver) -> None:
    async with running(fast_config()) as (_, api):
        recorded = await api.create_sid(
            StatusCallback=receiver.url("/rec"), Record="true",
            StatusCallbackEvent=["answered", "completed"])
        plain = await api.create_sid(StatusCallback=receiver.url("/plain"),
                                     StatusCallbackEvent=["answered", "completed"])
        await wait_until(lambda: len(receiver.at("/rec")) == 2 and len(receiver.at("/plain")) == 2)
    answered, completed = (r.params for r in receiver.at("/rec"))
    assert "RecordingSid" not in answered  # only the completed event carries it
    assert re.fullmatch(r"RE[0-9a-f]{32}", completed["RecordingSid"])
    assert completed["RecordingUrl"].endswith(f"/Recordings/{completed['RecordingSid']}")
    assert completed["RecordingDuration"] == completed["CallDuration"] == "20"
    assert all("RecordingSid" not in r.params for r in receiver.at("/plain"))
    assert recorded != plain
