"""The official twilio-python library against the simulator, as a real client would use it.

The library is synchronous, so it runs in a thread while the simulator serves on the
test's event loop. ``client.api.base_url`` replaces https://api.twilio.com (with no
edge or region set, the library leaves the host alone).
"""

from __future__ import annotations

import asyncio
import datetime as dt

import httpx
import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from dialer.sim import SimServer
from dialer.testing import simulator_process, wait_until
from tests.sim.support import (
    FROM,
    TWIML_URL,
    Receiver,
    fast_config,
    running,
)


def official_client(sim: SimServer) -> Client:
    client = Client(sim.account_sid, sim.auth_token)
    client.api.base_url = sim.base_url
    return client


async def test_create_fetch_list_and_update(receiver: Receiver) -> None:
    async with running(fast_config(talk_seconds=5000)) as (sim, _):
        client = official_client(sim)
        call = await asyncio.to_thread(
            client.calls.create, to="+14155550100", from_=FROM, url=TWIML_URL,
            status_callback=receiver.url("/official?x=1"),
            status_callback_event=["initiated", "answered", "completed"],
            machine_detection="Enable",
        )
        assert call.sid in sim.calls
        assert (call.status, call.direction, call.api_version) == (
            "queued", "outbound-api", "2010-04-01")
        assert isinstance(call.date_created, dt.datetime)
        assert sim.calls[call.sid].request.status_callback_events == {
            "initiated", "answered", "completed"}

        fetched = await asyncio.to_thread(client.calls(call.sid).fetch)
        assert (fetched.sid, fetched.to) == (call.sid, "+14155550100")

        for _ in range(4):
            await asyncio.to_thread(client.calls.create, to="+14155550100", from_=FROM,
                                    twiml="<Response><Say>hi</Say></Response>")
        today = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        listed = await asyncio.to_thread(
            client.calls.list, to="+14155550100", start_time_after=today, page_size=2)
        assert [c.sid for c in listed] == list(reversed(sim.calls))
        assert await asyncio.to_thread(client.calls.list, status="busy") == []

        await wait_until(lambda: sim.calls[call.sid].status == "in-progress")
        ended = await asyncio.to_thread(client.calls(call.sid).update, status="completed")
        assert ended.status == "completed" and ended.answered_by == "human"
        await wait_until(lambda: len(receiver.at("/official")) == 3)

    validator = RequestValidator(sim.auth_token)
    for received in receiver.at("/official"):
        assert validator.validate(
            received.url, received.params, received.headers["x-twilio-signature"])
    assert [r.params["CallStatus"] for r in receiver.requests] == [
        "initiated", "in-progress", "completed"]


async def test_errors_reach_the_library_as_twilio_exceptions(sim: SimServer) -> None:
    client = official_client(sim)
    with pytest.raises(TwilioRestException) as invalid:
        await asyncio.to_thread(client.calls.create, to="12345", from_=FROM, url=TWIML_URL)
    assert (invalid.value.status, invalid.value.code) == (400, 21211)
    with pytest.raises(TwilioRestException) as missing:
        await asyncio.to_thread(client.calls("CA" + "0" * 32).fetch)
    assert (missing.value.status, missing.value.code) == (404, 20404)
    wrong = Client(sim.account_sid, "not-the-token")
    wrong.api.base_url = sim.base_url
    with pytest.raises(TwilioRestException) as denied:
        await asyncio.to_thread(wrong.calls.create, to="+14155550100", from_=FROM, url=TWIML_URL)
    assert (denied.value.status, denied.value.code) == (401, 20003)


async def test_delete_and_events_against_the_dialer_sim_command(receiver: Receiver) -> None:
    """``dialer sim`` as a user runs it: the library deletes an ended call (204, then
    404/20404 for it), lists a call's events (one per webhook request, with the answer
    it got), and every ``subresource_uris`` entry it is given works."""
    async with simulator_process() as sim:
        client = Client(sim.account_sid, sim.auth_token)
        client.api.base_url = sim.base_url
        call = await asyncio.to_thread(
            client.calls.create, to="+14155550100", from_=FROM, url=TWIML_URL,
            status_callback=receiver.url("/events"),
            status_callback_event=["initiated", "ringing", "answered", "completed"],
        )
        await wait_until(lambda: len(receiver.at("/events")) == 4, timeout=20)
        events = await asyncio.to_thread(client.calls(call.sid).events.list)
        assert [e.request["parameters"]["CallStatus"] for e in events] == [
            "initiated", "ringing", "in-progress", "completed"]
        assert {e.response["response_code"] for e in events} == {200}
        assert all(e.request["url"] == receiver.url("/events") for e in events)
        fetched = await asyncio.to_thread(client.calls(call.sid).fetch)
        async with httpx.AsyncClient(base_url=sim.base_url,
                                     auth=(sim.account_sid, sim.auth_token)) as http:
            for uri in fetched.subresource_uris.values():
                assert (await http.get(uri)).status_code == 200, uri
        assert await asyncio.to_thread(client.calls(call.sid).delete) is True
        with pytest.raises(TwilioRestException) as gone:
            await asyncio.to_thread(client.calls(call.sid).delete)
        assert (gone.value.status, gone.value.code) == (404, 20404)
        with pytest.raises(TwilioRestException) as fetched_gone:
            await asyncio.to_thread(client.calls(call.sid).fetch)
        assert fetched_gone.value.code == 20404


async def test_account_and_numbers_through_the_library_against_dialer_sim() -> None:
    """What ``dialer check`` asks, as twilio-python asks it, of ``dialer sim`` configured
    with the account's numbers and then with a suspended account."""
    owned = ("+14155550123", "+14155550199")
    options = ("--phone-number", owned[0], "--phone-number", owned[1],
               "--caller-id", "+14155559999")
    async with simulator_process(extra=options) as sim:
        client = Client(sim.account_sid, sim.auth_token)
        client.api.base_url = sim.base_url
        account = await asyncio.to_thread(client.api.accounts(sim.account_sid).fetch)
        assert (account.sid, account.status, account.type) == (sim.account_sid, "active", "Full")
        found = await asyncio.to_thread(client.incoming_phone_numbers.list,
                                        phone_number=owned[0])
        assert [n.phone_number for n in found] == [owned[0]]
        assert found[0].sid.startswith("PN") and found[0].capabilities["voice"] is True
        partial = await asyncio.to_thread(client.incoming_phone_numbers.list,
                                          phone_number="+1415555", page_size=1)
        assert [n.phone_number for n in partial] == list(owned)  # two pages followed
        assert await asyncio.to_thread(client.incoming_phone_numbers.list,
                                       phone_number=FROM) == []  # the default, replaced
        verified = await asyncio.to_thread(client.outgoing_caller_ids.list,
                                           phone_number="+14155559999")
        assert [c.phone_number for c in verified] == ["+14155559999"]
        assert await asyncio.to_thread(client.outgoing_caller_ids.list,
                                       phone_number=owned[0]) == []

    async with simulator_process(extra=("--account-status", "suspended")) as sim:
        client = Client(sim.account_sid, sim.auth_token)
        client.api.base_url = sim.base_url
        account = await asyncio.to_thread(client.api.accounts(sim.account_sid).fetch)
        assert account.status == "suspended"
        with pytest.raises(TwilioRestException) as refused:
            await asyncio.to_thread(client.calls.create, to="+14155550100", from_=FROM,
                                    url=TWIML_URL)
        assert (refused.value.status, refused.value.code) == (401, 20005)
