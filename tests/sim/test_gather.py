"""The simulator follows a <Gather action> in inline TwiML: the person who answers
presses keys, the action is requested signed like a callback, and the call ends after
its answer."""

from __future__ import annotations

import argparse
from urllib.parse import parse_qsl, urlsplit

import pytest
from twilio.request_validator import RequestValidator

from dialer.commands.sim import add_arguments
from dialer.sim import SimConfig
from dialer.sim.cli import config_from_args
from dialer.sim.scenario import GATHER_SECONDS, SAY_SECONDS
from dialer.sim.twiml import Gather, find_gather, keys_sent
from tests.sim.support import Receiver, fast_config, running, twilio_signature, wait_until

TOKEN = fast_config().auth_token
HUMAN, MACHINE = "+14155550100", "+14155550103"
CONFIRM = "<Response><Say>Goodbye.</Say><Hangup/></Response>"


def prompt(action: str, **attributes: str) -> str:
    extra = "".join(f' {name}="{value}"' for name, value in attributes.items())
    return (f'<Response><Gather action="{action}" numDigits="1"{extra}>'
            "<Say>Press 9 to stop these calls.</Say></Gather></Response>")


@pytest.mark.parametrize(("twiml", "expected"), [
    (prompt("https://dialer.example/g"), Gather("https://dialer.example/g", "POST", 1, "#")),
    ('<Response><Say>x</Say><Gather action="http://h/a" method="get" finishOnKey="*"/>'
     "</Response>", Gather("http://h/a", "GET", None, "*")),
    ('<Response><Gather action="/relative"/><Gather action="https://h/second"/></Response>',
     Gather("https://h/second")),
    ('<Response><Gather action="https://h/a" numDigits="zero"/></Response>',
     Gather("https://h/a")),
    ("<Response><Gather/></Response>", None),
    ("<Response><Say>no gather</Say></Response>", None),
    ("not xml <", None),
    (None, None),
])
def test_the_gather_found_in_a_document(twiml: str | None, expected: Gather | None) -> None:
    assert find_gather(twiml) == expected


@pytest.mark.parametrize(("gather", "pressed", "sent"), [
    (Gather("h", num_digits=1), "9", ("9", "")),
    (Gather("h", num_digits=1), "98", ("9", "")),
    (Gather("h"), "12#3", ("12", "#")),
    (Gather("h", finish_on_key=""), "12#", ("12#", "")),
    (Gather("h", finish_on_key="*"), "*", ("", "*")),
])
def test_the_keys_a_gather_collects(gather: Gather, pressed: str, sent: tuple[str, str]
                                    ) -> None:
    assert keys_sent(gather, pressed) == sent


async def test_a_person_presses_9_and_the_call_ends_after_the_answer(receiver: Receiver
                                                                     ) -> None:
    receiver.answer = CONFIRM
    action = receiver.url("/twilio/attempts/7/gather")
    config = fast_config(press_digits={HUMAN: "9@1"}, talk_seconds=60.0)
    async with running(config) as (sim, api):
        sid = await api.create_sid(HUMAN, Url="", Twiml=prompt(action))
        await wait_until(lambda: sim.calls[sid].status == "completed", what="the call's end")
        [got] = receiver.at("/gather")
        again = await api.create_sid(HUMAN, Url="", Twiml=prompt(action))
        await wait_until(lambda: sim.calls[again].status == "completed", what="second call")
    assert got.method == "POST" and got.url == action
    signature = got.headers["x-twilio-signature"]
    assert signature == twilio_signature(got.url, got.form, TOKEN)
    assert RequestValidator(TOKEN).validate(got.url, got.params, signature)
    params = got.params
    assert (params["CallSid"], params["Digits"], params["FinishedOnKey"]) == (sid, "9", "")
    assert (params["msg"], params["CallStatus"], params["To"]) == ("Gather End", "in-progress",
                                                                   HUMAN)
    call = sim.calls[sid]
    assert call.duration == round(GATHER_SECONDS + SAY_SECONDS)  # not the 60 s of talk
    record = next(r for r in call.callbacks if r.kind == "gather")
    assert (record.state, record.answer) == ("delivered", CONFIRM)
    # "@1": only the first call presses; the second talks its full time, asking nothing.
    assert len(receiver.at("/gather")) == 1 and sim.calls[again].duration == 60


async def test_machines_press_nothing_and_get_is_signed_over_the_query(receiver: Receiver
                                                                       ) -> None:
    action = receiver.url("/gather?campaign=3")
    async with running(fast_config(press_digits={"*": "12#"})) as (sim, api):
        machine = await api.create_sid(MACHINE, Url="", MachineDetection="Enable",
                                       Twiml=prompt(action))
        person = await api.create_sid(HUMAN, Url="", Twiml=prompt(action, method="GET")
                                      .replace(' numDigits="1"', ""))
        await wait_until(lambda: all(sim.calls[s].status == "completed"
                                     for s in (machine, person)), what="both calls' end")
    [got] = receiver.at("/gather")
    assert got.method == "GET" and got.form == {}
    query = dict(parse_qsl(urlsplit(got.url).query))
    assert (query["CallSid"], query["Digits"], query["FinishedOnKey"]) == (person, "12", "#")
    assert got.headers["x-twilio-signature"] == twilio_signature(got.url, {}, TOKEN)


def test_press_options_are_checked() -> None:
    for bad in ({"415": "9"}, {HUMAN: "x"}, {HUMAN: "9@0"}, {"*": ""}):
        with pytest.raises(ValueError, match="press_digits"):
            SimConfig(press_digits=bad)
    config = SimConfig(press_digits={HUMAN: "9@2", "*": "1"})
    assert [config.keys_for(HUMAN, n) for n in range(3)] == [None, "9", None]
    assert config.keys_for(MACHINE, 5) == "1"
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--press", f"{HUMAN}=9@1", "--press", "5"])
    assert config_from_args(args).press_digits == {HUMAN: "9@1", "*": "5"}
