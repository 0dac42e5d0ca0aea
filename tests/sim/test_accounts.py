"""The account's own resources over loopback HTTP: the Account, its IncomingPhoneNumbers
and OutgoingCallerIds (filters and paging, checked against Twilio's OpenAPI schemas),
and what a suspended or closed account refuses."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from dialer.sim import SimServer, cli
from dialer.testing import wait_until
from tests.sim.support import (
    FROM,
    Api,
    account_validator,
    assert_error,
    fast_config,
    list_validator,
    openapi,
    parse,
    running,
)

OWNED = ("+15005550006", "+14155550123", "+14155550199", "+12125550123")
VERIFIED = ("+14155559999", "+442071838750")


def schema_fields(name: str) -> set[str]:
    return set(openapi()["components"]["schemas"][name]["properties"])


def account_path(sim: SimServer) -> str:
    return f"/2010-04-01/Accounts/{sim.account_sid}.json"


def numbers_path(sim: SimServer, resource: str) -> str:
    return f"/2010-04-01/Accounts/{sim.account_sid}/{resource}.json"


async def test_fetch_the_account(api: Api, sim: SimServer) -> None:
    response = await api.http.get(account_path(sim))
    assert response.status_code == 200, response.text
    account = response.json()
    account_validator().validate(account)
    assert set(account) == schema_fields("api.v2010.account")
    assert (account["sid"], account["owner_account_sid"]) == (sim.account_sid, sim.account_sid)
    assert (account["status"], account["type"]) == ("active", "Full")
    assert account["uri"] == account_path(sim)
    # Every subresource it names is served.
    for uri in account["subresource_uris"].values():
        assert (await api.http.get(uri)).status_code == 200, uri


async def test_the_account_needs_its_credentials_and_its_own_sid(sim: SimServer) -> None:
    async with httpx.AsyncClient(base_url=sim.base_url, auth=(sim.account_sid, "wrong"),
                                 trust_env=False) as http:
        assert_error(await http.get(account_path(sim)), 401, 20003)
        assert_error(await http.get(numbers_path(sim, "IncomingPhoneNumbers")), 401, 20003)
    async with httpx.AsyncClient(base_url=sim.base_url, auth=(sim.account_sid, sim.auth_token),
                                 trust_env=False) as http:
        other = "/2010-04-01/Accounts/AC" + "0" * 32
        assert_error(await http.get(other + ".json"), 404, 20404)
        assert_error(await http.get(other + "/OutgoingCallerIds.json"), 404, 20404)


async def numbers(api: Api, resource: str, **params: str) -> dict[str, Any]:
    response = await api.http.get(numbers_path(api.sim, resource), params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    list_validator(resource).validate(body)
    return body


@pytest.mark.parametrize(("pattern", "expected"), [
    ("+14155550123", ["+14155550123"]),
    ("+1415555", ["+14155550123", "+14155550199"]),
    ("0123", ["+14155550123", "+12125550123"]),
    ("+1***5550123", ["+14155550123", "+12125550123"]),
    ("+19998887777", []),
    (None, list(OWNED)),
], ids=["exact", "prefix", "partial", "wildcard", "none", "unfiltered"])
async def test_incoming_numbers_filter_by_partial_number(
    pattern: str | None, expected: list[str]
) -> None:
    async with running(fast_config(phone_numbers=OWNED)) as (_, api):
        params = {} if pattern is None else {"PhoneNumber": pattern}
        body = await numbers(api, "IncomingPhoneNumbers", **params)
    listed = body["incoming_phone_numbers"]
    assert [n["phone_number"] for n in listed] == expected
    for number in listed:
        assert set(number) == schema_fields("api.v2010.account.incoming_phone_number")
        assert number["account_sid"] == api.sim.account_sid
        assert number["capabilities"]["voice"] is True
    if pattern is not None:
        assert "PhoneNumber=" in body["first_page_uri"]


async def test_caller_ids_filter_by_the_whole_number() -> None:
    async with running(fast_config(caller_ids=VERIFIED)) as (_, api):
        exact = await numbers(api, "OutgoingCallerIds", PhoneNumber="+14155559999")
        partial = await numbers(api, "OutgoingCallerIds", PhoneNumber="+1415555")
        named = await numbers(api, "OutgoingCallerIds", FriendlyName="(415) 555-9999")
        owned = await numbers(api, "OutgoingCallerIds", PhoneNumber=FROM)
    [caller_id] = exact["outgoing_caller_ids"]
    assert set(caller_id) == schema_fields("api.v2010.account.outgoing_caller_id")
    assert caller_id["phone_number"] == "+14155559999"
    assert caller_id["friendly_name"] == "(415) 555-9999"
    assert partial["outgoing_caller_ids"] == []
    assert named["outgoing_caller_ids"] == [caller_id]
    # An owned number is no verified caller ID: the two lists are apart, as at Twilio.
    assert owned["outgoing_caller_ids"] == []


async def test_number_lists_page_and_sids_are_stable() -> None:
    async with running(fast_config(phone_numbers=OWNED)) as (_, api):
        seen: list[str] = []
        body = await numbers(api, "IncomingPhoneNumbers", PageSize="3")
        pages = 1
        while True:
            seen += [n["sid"] for n in body["incoming_phone_numbers"]]
            if not body["next_page_uri"]:
                break
            response = await api.http.get(body["next_page_uri"])
            body = response.json()
            list_validator("IncomingPhoneNumbers").validate(body)
            pages += 1
        assert (pages, len(seen), len(set(seen))) == (2, len(OWNED), len(OWNED))
    async with running(fast_config(phone_numbers=OWNED)) as (_, again):
        body = await numbers(again, "IncomingPhoneNumbers")
        assert_error(await again.http.get(numbers_path(again.sim, "OutgoingCallerIds"),
                                          params={"PageSize": "0"}), 400, 20001)
    assert [n["sid"] for n in body["incoming_phone_numbers"]] == seen


@pytest.mark.parametrize("status", ["suspended", "closed"])
async def test_an_inactive_account_refuses_creates_with_20005(status: str) -> None:
    async with running(fast_config(talk_seconds=5000)) as (sim, api):  # a call kept live
        sid = await api.create_sid()
        await wait_until(lambda: sim.calls[sid].status == "in-progress")
        sim.config.account_status = status  # type: ignore[assignment]
        refused = await api.create()
        assert_error(refused, 401, 20005)
        assert len(sim.calls) == 1 and sim.trace[-1].call_sid is None
        # Reads still answer, and say why; a call in progress can still be ended.
        fetched = (await api.http.get(account_path(sim))).json()
        assert fetched["status"] == status
        assert (await api.fetch(sid)).status_code == 200
        ended = await api.update(sid, Status="completed")
        assert (ended.status_code, ended.json()["status"]) == (200, "completed")
        sim.config.account_status = "active"
        assert (await api.create()).status_code == 201


def test_bad_account_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="account_status"):
        fast_config(account_status="frozen")
    with pytest.raises(ValueError, match=r"E\.164"):
        fast_config(phone_numbers=("4155550123",))
    with pytest.raises(ValueError, match=r"E\.164"):
        fast_config(caller_ids=("+1 415 555",))


def test_dialer_sim_options_set_the_account(capsys: pytest.CaptureFixture[str]) -> None:
    default = cli.config_from_args(parse())
    assert (default.account_status, default.phone_numbers, default.caller_ids) == (
        "active", (FROM,), ())
    config = cli.config_from_args(parse(
        "--account-status", "suspended", "--phone-number", OWNED[1], "--phone-number",
        OWNED[2], "--caller-id", VERIFIED[0]))
    assert (config.account_status, config.phone_numbers, config.caller_ids) == (
        "suspended", OWNED[1:3], VERIFIED[:1])
    assert cli.run(parse("--phone-number", "4155550123")) == 2
    assert "E.164" in capsys.readouterr().err
