"""``dialer sim``: run the simulator until SIGINT or SIGTERM (its options are defined
in ``dialer.commands.sim``, which must not import this package).

The auth token comes from ``--auth-token`` or, better (a command line is visible to
every user of the machine), from the environment variable DIALER_SIM_AUTH_TOKEN; it
is never printed. Without either, the simulator's documented default token is used.
A Webhooks Rules shared key, likewise, from ``--webhook-shared-key`` or
DIALER_SIM_WEBHOOK_SHARED_KEY. ``--accounts-file`` adds accounts from a file in the
format of the dialer's credentials file (``dialer.credentials``), so that one file can
serve a simulator and the daemon that dials it.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import os
import signal
import sys

from dialer import credentials
from dialer.commands.sim import SHARED_KEY_ENV, TOKEN_ENV
from dialer.runtime import event_loop_factory, settle_heap
from dialer.sim.config import (
    ANY_NUMBER,
    DEFAULT_ACCOUNT_SID,
    DEFAULT_AUTH_TOKEN,
    DEFAULT_PHONE_NUMBER,
    SimAccountConfig,
    SimConfig,
)
from dialer.sim.server import SimServer

OLD_GENERATION_NEVER = 2**31 - 1  # collections of the middle generation before a full one


def config_from_args(args: argparse.Namespace) -> SimConfig:
    """The simulator the options describe (ValueError naming what is wrong)."""
    config = SimConfig(
        host=args.host,
        port=args.port,
        account_sid=args.account_sid or DEFAULT_ACCOUNT_SID,
        auth_token=args.auth_token or os.environ.get(TOKEN_ENV) or DEFAULT_AUTH_TOKEN,
        cps=args.cps,
        strict=args.strict,
        strict_rate=args.strict_rate,
        strict_max_concurrent_requests=args.max_concurrent_requests,
        max_concurrent_calls=args.max_concurrent_calls,
        scenario=args.scenario,
        seed=args.seed,
        time_scale=args.time_scale,
        talk_seconds=args.talk_seconds,
        duplicate_callbacks=args.duplicate_callbacks,
        out_of_order_callbacks=args.out_of_order_callbacks,
        drop_callbacks=args.drop_callbacks,
        sign_fragment=args.sign_fragment,
        webhook_shared_key=args.webhook_shared_key or os.environ.get(SHARED_KEY_ENV) or None,
        webhook_signature_algorithm=args.webhook_signature_algorithm,
        account_status=args.account_status,
        phone_numbers=tuple(args.phone_number or (DEFAULT_PHONE_NUMBER,)),
        caller_ids=tuple(args.caller_id or ()),
        press_digits=dict(_press(text) for text in args.press or ()),
    )
    if args.accounts_file is None:
        return config
    try:
        found = credentials.read_file(args.accounts_file)
    except credentials.CredentialsError as exc:
        raise ValueError(str(exc).replace(credentials.FILE_SETTING, "--accounts-file")) from None
    more = []
    for sid, secrets in found.items():
        if sid == config.account_sid or secrets.auth_token is None:
            continue
        shared_key = secrets.shared_key
        more.append(SimAccountConfig(**{
            **{f.name: getattr(config, f.name) for f in dataclasses.fields(SimAccountConfig)},
            "account_sid": sid, "auth_token": secrets.auth_token.value,
            "webhook_shared_key": None if shared_key is None else shared_key.value,
        }))
    return dataclasses.replace(config, more_accounts=tuple(more))


def _press(text: str) -> tuple[str, str]:
    """``--press [E164=]KEYS[@N]`` as (number or ``*``, keys)."""
    number, _, keys = text.rpartition("=")
    return number or ANY_NUMBER, keys


async def _serve(config: SimConfig, args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with SimServer(config) as sim:
            for account in config.accounts:
                faults = sim.faults_of(account.account_sid)
                faults.reset_after_create_probability = args.drop_after_create_probability
                faults.response_delay = args.response_delay
            settle_heap()
            # Every call and request is kept for the trace, so the heap only grows, and
            # full collections of it (50-90 ms at a few thousand calls) stalled the loop
            # and bunched the arrival stamps the benches measure. Young objects are
            # still collected; the old generation, which holds the trace, is not.
            gc.set_threshold(*gc.get_threshold()[:2], OLD_GENERATION_NEVER)
            sids = ", ".join(account.account_sid for account in config.accounts)
            print(f"dialer sim listening on {sim.base_url} for account {sids}", flush=True)
            await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; 0 after a clean stop, 2 on bad options, 1 if it cannot
    listen."""
    try:
        config = config_from_args(args)
    except ValueError as exc:
        print(f"dialer sim: {exc}", file=sys.stderr)
        return 2
    try:
        # Only the stdlib loop's transports let the kernel's arrival stamps through
        # (dialer.sim.stamps); uvloop is for benches measuring throughput, not pacing.
        factory = event_loop_factory() if args.loop == "uvloop" else None
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(_serve(config, args))
    except OSError as exc:
        print(f"dialer sim: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0
