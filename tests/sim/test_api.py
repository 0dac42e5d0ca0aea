"""The Calls REST API over loopback HTTP: resources, errors, listing, updates."""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import json
import re
from collections.abc import Sequence
from typing import Any

import httpx
import pytest

from dialer.sim import SimServer
from dialer.testing import wait_until
from tests.sim.support import (
    ERROR_KEYS,
    FROM,
    TWIML_URL,
    Api,
    Receiver,
    assert_error,
    call_validator,
    events,
    fast_config,
    list_validator,
    openapi,
    running,
)


async def test_create_answers_201_with_the_call_resource(api: Api, sim: SimServer) -> None:
    response = await api.create("+14155550100")
    assert response.status_code == 201
    assert response.headers["content-type"] == "application/json"
    call = response.json()
    call_validator().validate(call)
    assert re.fullmatch(r"CA[0-9a-f]{32}", call["sid"])
    assert call["account_sid"] == sim.account_sid
    assert (call["status"], call["direction"], call["api_version"]) == (
        "queued", "outbound-api", "2010-04-01")
    assert (call["to"], call["from"], call["to_formatted"]) == (
        "+14155550100", FROM, "(415) 555-0100")
    assert call["queue_time"] == "0"
    assert call["start_time"] is None and call["duration"] is None
    created = email.utils.parsedate_to_datetime(call["date_created"])
    assert created.utcoffset() == dt.timedelta(0)
    assert abs((created - dt.datetime.now(dt.UTC)).total_seconds()) < 5
    assert call["uri"] == api.call_path(call["sid"])
    # Only the subresources the simulator serves are listed (each is tested to work).
    assert call["subresource_uris"] == {
        "events": api.call_path(call["sid"]).replace(".json", "/Events.json")}


@pytest.mark.parametrize("auth", [
    ("wrong", "token"), ("sid", "wrong-token"), None,
], ids=["wrong-sid", "wrong-token", "none"])
async def test_wrong_credentials_are_401_20003(sim: SimServer, auth: Any) -> None:
    if auth is not None and auth[0] == "sid":
        auth = (sim.account_sid, auth[1])
    async with httpx.AsyncClient(base_url=sim.base_url, auth=auth, trust_env=False) as http:
        path = f"/2010-04-01/Accounts/{sim.account_sid}/Calls.json"
        response = await http.post(path, data={"To": "+14155550100", "From": FROM,
                                                "Url": TWIML_URL})
        assert_error(response, 401, 20003)
        assert response.headers["www-authenticate"].startswith("Basic")
        assert_error(await http.get(path), 401, 20003)
    assert sim.calls == {}


async def test_another_account_in_the_path_is_404(api: Api) -> None:
    other = "/2010-04-01/Accounts/AC" + "0" * 32 + "/Calls.json"
    assert_error(await api.http.get(other), 404, 20404)


CREATE_ERRORS = [
    ({"To": ""}, 21201),
    ({"From": ""}, 21213),
    ({"Url": ""}, 21205),
    ({"Twiml": "<Response/>"}, 21205),  # with Url: exactly one is required
    ({"Url": "ftp://example.com/x"}, 21205),
    ({"Url": "https://bad_host.example.com/x"}, 21205),
    ({"To": "12345"}, 21211),
    ({"To": "+0123"}, 21211),
    ({"From": "not a number"}, 21212),
    ({"From": "client:bob"}, 21212),  # a phone number To needs a phone number From
    ({"Url": "", "ApplicationSid": "AP123"}, 21218),
    ({"StatusCallback": "nope"}, 21205),
    ({"StatusCallbackEvent": "hangup"}, 20001),
    ({"StatusCallbackMethod": "PUT"}, 20001),
    ({"Timeout": "soon"}, 20001),
    ({"MachineDetection": "Maybe"}, 20001),
    ({"AsyncAmd": "perhaps"}, 20001),
]


@pytest.mark.parametrize(("params", "code"), CREATE_ERRORS,
                         ids=[f"{code}-{next(iter(p))}" for p, code in CREATE_ERRORS])
async def test_invalid_creates_are_400_with_twilio_codes(
    api: Api, sim: SimServer, params: dict[str, str], code: int
) -> None:
    data = {"To": "+14155550100", "From": FROM, "Url": TWIML_URL, **params}
    response = await api.http.post(api.calls_path, data={k: v for k, v in data.items() if v})
    assert_error(response, 400, code)
    assert sim.calls == {}
    assert (sim.trace[-1].status, sim.trace[-1].call_sid) == (400, None)


def _example_value(name: str, schema: dict[str, Any]) -> str | Sequence[str]:
    """A valid value for each Create Call parameter, from its OpenAPI schema."""
    special: dict[str, str | Sequence[str]] = {
        "To": "+14155550100", "From": FROM, "MachineDetection": "DetectMessageEnd",
        "AsyncAmd": "true", "RecordingChannels": "mono", "Trim": "trim-silence",
        "RecordingTrack": "both", "SendDigits": "", "CallerId": FROM,
        "StatusCallbackEvent": ["initiated", "ringing", "answered", "completed"],
        "RecordingStatusCallbackEvent": ["completed"],
        "RecordingStatusCallback": "https://example.com/recordings",
    }
    if name in special:
        return special[name]
    if "pattern" in schema:  # ^XX[0-9a-fA-F]{32}$: a SID with prefix XX
        return str(schema["pattern"])[1:3] + "0" * 32
    if schema.get("format") == "uri":
        return f"https://example.com/{name}"
    if schema.get("format") == "http-method":
        return "GET"
    by_type = {"integer": "30", "boolean": "true"}
    return by_type.get(str(schema.get("type")), "value")


async def test_every_create_parameter_of_the_openapi_is_accepted(api: Api, sim: SimServer
                                                                ) -> None:
    schema = openapi()["paths"]["/2010-04-01/Accounts/{AccountSid}/Calls.json"]["post"][
        "requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    params = {
        name: _example_value(name, spec) for name, spec in schema["properties"].items()
        if name not in ("Twiml", "ApplicationSid")
    }
    response = await api.http.post(api.calls_path, data=params)
    assert response.status_code == 201, response.text
    call = sim.calls[response.json()["sid"]]
    assert set(call.request.form) == set(params)
    assert call.request.status_callback_events == {
        "initiated", "ringing", "answered", "completed"}
    assert call.request.timeout == 30
    assert call.request.machine_detection == "DetectMessageEnd" and call.request.async_amd


@pytest.mark.parametrize("body", ["Twiml", "ApplicationSid"])
async def test_twiml_or_an_application_replaces_url(api: Api, body: str) -> None:
    value = "<Response><Say>hi</Say></Response>" if body == "Twiml" else "AP" + "1" * 32
    response = await api.http.post(api.calls_path, data={
        "To": "client:alice", "From": "client:bob", body: value})
    assert response.status_code == 201, response.text
    assert response.json()["to_formatted"] == "client:alice"


async def test_fetch_a_call_and_404_for_unknown_sids(api: Api) -> None:
    sid = await api.create_sid()
    fetched = await api.fetch(sid)
    assert fetched.status_code == 200
    call_validator().validate(fetched.json())
    assert fetched.json()["sid"] == sid
    unknown = "CA" + "f" * 32
    assert_error(await api.fetch(unknown), 404, 20404)
    assert_error(await api.update(unknown, Status="canceled"), 404, 20404)
    assert unknown in (await api.fetch(unknown)).json()["message"]


async def test_unknown_paths_are_twilio_404s(api: Api) -> None:
    assert_error(await api.http.get("/2010-04-01/Accounts/x/Queues.json"), 404, 20404)


async def test_what_the_framework_refuses_is_twilio_error_json(api: Api, sim: SimServer) -> None:
    assert_error(await api.http.put(api.calls_path, data={"To": "+14155550100"}), 405, 20004)
    assert_error(await api.http.delete(api.calls_path), 405, 20004)
    as_json = await api.http.post(api.calls_path, json={"To": "+14155550100", "From": FROM})
    assert_error(as_json, 415, 20001)
    assert not sim.calls


async def test_an_unparsable_http_request_is_a_twilio_400(sim: SimServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
    writer.write(b"GET /2010-04-01 HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n")
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    assert b"content-type: application/json" in head.lower()
    error = json.loads(body)
    assert set(error) == ERROR_KEYS and (error["status"], error["code"]) == (400, 20001)


async def test_delete_an_ended_call() -> None:
    async with running(fast_config(talk_seconds=5000)) as (sim, api):
        sid = await api.create_sid("+14155550100")
        await wait_until(lambda: sim.calls[sid].status == "in-progress")
        assert_error(await api.http.delete(api.call_path(sid)), 400, 20001)  # still live
        assert (await api.update(sid, Status="completed")).status_code == 200
        deleted = await api.http.delete(api.call_path(sid))
        assert (deleted.status_code, deleted.content) == (204, b"")
        assert_error(await api.fetch(sid), 404, 20404)
        assert_error(await api.http.delete(api.call_path(sid)), 404, 20404)
        assert sid not in [c["sid"] for c in (await api.list()).json()["calls"]]


@pytest.mark.parametrize("size", ["0", "1001", "-5", "ten"])
async def test_page_size_outside_the_spec_is_refused(api: Api, size: str) -> None:
    assert_error(await api.list(PageSize=size), 400, 20001)


async def test_page_size_at_the_bounds_is_accepted(api: Api) -> None:
    for size in ("1", "1000"):
        response = await api.list(PageSize=size)
        assert response.status_code == 200 and response.json()["page_size"] == int(size)


async def test_a_call_goes_from_queued_to_completed(api: Api, sim: SimServer) -> None:
    sid = await api.create_sid("+14155550100")
    await wait_until(lambda: sim.calls[sid].status == "completed")
    call = (await api.fetch(sid)).json()
    call_validator().validate(call)
    assert call["duration"] == "20"  # simulated seconds, whatever the time scale
    assert call["start_time"] and call["end_time"]
    assert email.utils.parsedate_to_datetime(call["end_time"]) >= (
        email.utils.parsedate_to_datetime(call["start_time"]))


async def test_list_filters_by_to_from_and_status(api: Api, sim: SimServer) -> None:
    busy = await api.create_sid("+14155550106")
    human = await api.create_sid("+14155550100")
    other_from = await api.create_sid("+14155550100", From="+15005550007")
    await wait_until(lambda: not any(call.live for call in sim.calls.values()))

    async def sids(**params: str) -> list[str]:
        response = await api.list(**params)
        assert response.status_code == 200
        list_validator().validate(response.json())
        return [call["sid"] for call in response.json()["calls"]]

    assert await sids() == [other_from, human, busy]  # newest first
    assert await sids(To="+14155550100") == [other_from, human]
    assert await sids(To="+14155550100", From=FROM) == [human]
    assert await sids(Status="busy") == [busy]
    assert await sids(Status="no-answer") == []
    assert await sids(ParentCallSid="CA" + "0" * 32) == []


async def test_list_filters_by_start_date_and_lists_queued_calls() -> None:
    """StartTime filters take a UTC date; queued calls match by their creation date."""
    async with running(fast_config(cps=0.5, talk_seconds=5000)) as (sim, api):
        started = await api.create_sid()
        queued = await api.create_sid()  # waits two seconds for its CPS slot
        await wait_until(lambda: sim.calls[started].start_time is not None)
        assert sim.calls[queued].start_time is None
        today = dt.datetime.now(dt.UTC).date()
        day = dt.timedelta(days=1)

        async def sids(**params: str) -> set[str]:
            body = (await api.list(**params)).json()
            list_validator().validate(body)
            return {call["sid"] for call in body["calls"]}

        both = {started, queued}
        assert await sids(StartTime=today.isoformat()) == both
        assert await sids(**{"StartTime>": today.isoformat()}) == both
        assert await sids(**{"StartTime>": (today + day).isoformat()}) == set()
        assert await sids(**{"StartTime<": (today + day).isoformat()}) == both
        assert await sids(**{"StartTime<": today.isoformat()}) == set()
        assert await sids(StartTime=(today - day).isoformat()) == set()
        assert await sids(Status="queued") == {queued}
        assert await sids(EndTime=today.isoformat()) == set()  # nothing has ended


async def test_list_pages_follow_next_page_uri(api: Api) -> None:
    created = [await api.create_sid(f"+1415555010{i}") for i in range(5)]
    first = await api.list(PageSize="2")
    body = first.json()
    list_validator().validate(body)
    assert (body["page"], body["page_size"], body["start"], body["end"]) == (0, 2, 0, 1)
    assert body["previous_page_uri"] is None
    assert body["first_page_uri"] == f"{api.calls_path}?PageSize=2&Page=0"
    seen = [call["sid"] for call in body["calls"]]
    newer = await api.create_sid()  # paging by token is not shifted by new calls
    pages = [body]
    while body["next_page_uri"]:
        body = (await api.http.get(body["next_page_uri"])).json()
        list_validator().validate(body)
        pages.append(body)
        seen += [call["sid"] for call in body["calls"]]
    assert seen == created[::-1]
    assert newer not in seen
    assert [page["page"] for page in pages] == [0, 1, 2]
    assert (pages[2]["start"], pages[2]["end"]) == (4, 4)
    previous = (await api.http.get(pages[2]["previous_page_uri"])).json()
    assert [call["sid"] for call in previous["calls"]] == created[::-1][2:4]


async def test_list_keeps_filters_in_page_uris(api: Api) -> None:
    for _ in range(3):
        await api.create_sid("+14155550100")
    await api.create_sid("+14155550101")
    body = (await api.list(To="+14155550100", PageSize="2")).json()
    assert "To=%2B14155550100" in body["next_page_uri"]
    rest = (await api.http.get(body["next_page_uri"])).json()
    assert [call["to"] for call in rest["calls"]] == ["+14155550100"]
    assert rest["next_page_uri"] is None


async def test_cancel_a_queued_call(receiver: Receiver) -> None:
    async with running(fast_config(cps=0.5)) as (sim, api):
        await api.create_sid()
        sid = await api.create_sid(StatusCallback=receiver.url(),
                                   StatusCallbackEvent=["initiated", "completed"])
        response = await api.update(sid, Status="canceled")
        assert response.status_code == 200
        call_validator().validate(response.json())
        assert response.json()["status"] == "canceled"
        await wait_until(lambda: len(receiver.requests) == 1)
        assert events(receiver.requests) == ["canceled"]  # never initiated
        assert sim.calls[sid].start_time is None


async def test_completing_an_answered_call_ends_it_with_its_duration(receiver: Receiver) -> None:
    async with running(fast_config(talk_seconds=5000)) as (sim, api):
        sid = await api.create_sid(StatusCallback=receiver.url())
        await wait_until(lambda: sim.calls[sid].status == "in-progress")
        redirect = await api.update(sid, Url="https://example.com/other")
        assert redirect.status_code == 200 and redirect.json()["status"] == "in-progress"
        response = await api.update(sid, Status="completed")
        assert response.status_code == 200
        assert response.json()["status"] == "completed"
        duration = int(response.json()["duration"])
        assert 0 <= duration < 5000
        await wait_until(lambda: len(receiver.requests) == 1)
        params = receiver.requests[0].params
        assert params["CallStatus"] == "completed"
        assert params["CallDuration"] == str(duration)
        assert [update.get("Url") for update in sim.calls[sid].updates] == [
            ["https://example.com/other"], None]


async def test_canceling_an_answered_call_changes_nothing() -> None:
    async with running(fast_config(talk_seconds=5000)) as (sim, api):
        sid = await api.create_sid()
        await wait_until(lambda: sim.calls[sid].status == "in-progress")
        response = await api.update(sid, Status="canceled")
        assert response.json()["status"] == "in-progress"


async def test_updating_an_ended_call_is_21220(api: Api, sim: SimServer) -> None:
    sid = await api.create_sid("+14155550106")
    await wait_until(lambda: sim.calls[sid].status == "busy")
    assert_error(await api.update(sid, Status="completed"), 400, 21220)
    assert_error(await api.update(sid, Url="https://example.com/other"), 400, 21220)
    assert_error(await api.update(sid, Status="stopped"), 400, 20001)


@pytest.mark.parametrize(("to", "code"), [
    ("+15005550001", 21211), ("+15005550002", 21214), ("+15005550003", 21215),
    ("+15005550004", 21216),
])
async def test_magic_numbers_are_refused(to: str, code: int) -> None:
    async with SimServer() as sim, httpx.AsyncClient(
        base_url=sim.base_url, auth=(sim.account_sid, sim.auth_token)
    ) as http:
        response = await http.post(
            f"/2010-04-01/Accounts/{sim.account_sid}/Calls.json",
            data={"To": to, "From": "+15005550006", "Url": "https://example.com/t"},
        )
    assert response.status_code == 400
    assert response.json()["code"] == code
    assert not sim.calls
