"""Starting and stopping the simulator, in-process and as the ``dialer sim`` command."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys

import httpx
import pytest

from dialer.sim import SimConfig, SimServer, cli
from dialer.testing import free_port, wait_until
from tests.sim.support import (
    FROM,
    TWIML_URL,
    Receiver,
    api_for,
    fast_config,
    parse,
)


async def test_listens_on_a_given_port_and_stops_listening() -> None:
    port = free_port()
    async with SimServer(fast_config(port=port)) as sim:
        assert sim.base_url == f"http://127.0.0.1:{port}"
        assert (sim.account_sid, sim.auth_token) == (sim.config.account_sid,
                                                      sim.config.auth_token)
        async with api_for(sim) as api:
            assert (await api.create()).status_code == 201
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", port)


async def test_a_busy_port_raises_oserror() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(OSError):
            await SimServer(fast_config(port=busy.getsockname()[1])).__aenter__()


async def test_leaving_stops_calls_under_way_without_further_callbacks(receiver: Receiver
                                                                       ) -> None:
    async with SimServer(fast_config(talk_seconds=5000)) as sim, api_for(sim) as api:
        sid = await api.create_sid(StatusCallback=receiver.url(),
                                   StatusCallbackEvent=["answered", "completed"])
        await wait_until(lambda: len(receiver.requests) == 1)
    await asyncio.sleep(0.05)
    assert sim.calls[sid].status == "in-progress"
    assert len(receiver.requests) == 1


async def test_leaving_answers_held_responses_at_once() -> None:
    async with SimServer(fast_config()) as sim, api_for(sim) as api:
        sim.faults.response_delay = 30.0
        held = asyncio.create_task(api.create())
        await wait_until(lambda: len(sim.calls) == 1)
        await asyncio.wait_for(sim.aclose(), 5)
        assert (await held).status_code == 201


@pytest.mark.parametrize("bad", [
    {"account_sid": "AC123"}, {"auth_token": ""}, {"cps": 0}, {"strict_rate": -1},
    {"time_scale": -1}, {"scenario": "random"}, {"port": 99999}, {"port": -1},
])
def test_bad_configuration_is_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        SimConfig(**bad)  # type: ignore[arg-type]


def test_the_token_stays_out_of_the_repr() -> None:
    assert "s3cret" not in repr(SimConfig(auth_token="s3cret"))


def test_cli_options_make_the_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(cli.TOKEN_ENV, "from-env")
    config = cli.config_from_args(parse(
        "--port", "0", "--cps", "30", "--strict", "--max-concurrent-requests", "5",
        "--scenario", "weighted", "--seed", "9", "--time-scale", "0.01", "--duplicate-callbacks",
    ))
    assert (config.auth_token, config.cps, config.strict, config.strict_max_concurrent_requests
            ) == ("from-env", 30, True, 5)
    assert (config.scenario, config.seed, config.time_scale, config.duplicate_callbacks) == (
        "weighted", 9, 0.01, True)
    assert cli.config_from_args(parse("--auth-token", "flag")).auth_token == "flag"
    monkeypatch.delenv(cli.TOKEN_ENV)
    assert cli.config_from_args(parse()).auth_token == SimConfig().auth_token


def test_cli_signing_options(monkeypatch: pytest.MonkeyPatch) -> None:
    config = cli.config_from_args(parse())
    assert (config.sign_fragment, config.webhook_shared_key) == (False, None)
    monkeypatch.setenv(cli.SHARED_KEY_ENV, "key-from-env")
    config = cli.config_from_args(parse("--sign-fragment", "--webhook-signature-algorithm",
                                        "HMAC_SHA1"))
    assert (config.sign_fragment, config.webhook_shared_key,
            config.webhook_signature_algorithm) == (True, "key-from-env", "HMAC_SHA1")
    assert "key-from-env" not in repr(config)
    assert cli.config_from_args(parse("--webhook-shared-key", "flag")).webhook_shared_key == (
        "flag")


def test_cli_reports_bad_options_and_busy_ports(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.run(parse("--cps", "0")) == 2
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        assert cli.run(parse("--port", str(busy.getsockname()[1]))) == 1
    assert "cannot listen" in capsys.readouterr().err


SERVE = (
    "import argparse, sys\n"
    "from dialer.sim import cli\n"
    "from dialer.commands import sim as sim_command\n"
    "parser = argparse.ArgumentParser()\n"
    "sim_command.add_arguments(parser)\n"
    "sys.exit(cli.run(parser.parse_args(sys.argv[1:])))\n"
)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
async def test_the_command_serves_until_signalled(signum: signal.Signals) -> None:
    token = "token-from-the-environment"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SERVE, "--port", "0", "--cps", "50",
        env={**os.environ, cli.TOKEN_ENV: token},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
    assert "dialer sim listening on http://127.0.0.1:" in line
    base_url = line.split(" on ")[1].split()[0]
    account_sid = line.split()[-1]
    async with httpx.AsyncClient(base_url=base_url, auth=(account_sid, token)) as http:
        response = await http.post(f"/2010-04-01/Accounts/{account_sid}/Calls.json",
                                   data={"To": "+14155550100", "From": FROM, "Url": TWIML_URL})
        assert response.status_code == 201
    process.send_signal(signum)
    out, err = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 0, err
    assert token not in line + out.decode() + err.decode()
