"""``dialer sim``: the Twilio-compatible simulator (see dialer.sim).

Its options are defined here, not in ``dialer.sim``: building the CLI parser must not
import the simulator (nor aiohttp), which the daemon never needs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dialer.commands import SubParsers
from dialer.config import Settings

TOKEN_ENV = "DIALER_SIM_AUTH_TOKEN"
SHARED_KEY_ENV = "DIALER_SIM_WEBHOOK_SHARED_KEY"
DEFAULT_PORT = 8780


def run(settings: Settings, args: argparse.Namespace) -> int:
    from dialer.sim import cli  # only this command loads the simulator

    return cli.run(args)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    add("--port", type=int, default=DEFAULT_PORT,
        help="port to listen on, 0 for any free one (default: %(default)s)")
    add("--cps", type=float, default=1.0, help="the account's calls per second (default: 1)")
    add("--account-sid", default=None,
        help="the account to serve (default: the simulator's own test account)")
    add("--auth-token", default=None,
        help=f"the account's auth token (prefer the environment variable {TOKEN_ENV})")
    add("--accounts-file", type=Path, default=None, metavar="FILE",
        help="serve more accounts: a credentials file as `dialer run` reads (SID=token "
             "lines, mode 0600); each gets the options above (CPS, limits, numbers) and "
             "queues, limits and faults of its own")
    add("--strict", action="store_true",
        help="answer 429/20429 to creates past the rate in any one-second window")
    add("--strict-rate", type=float, default=None,
        help="the rate strict mode enforces (default: --cps)")
    add("--max-concurrent-requests", type=int, default=None,
        help="strict mode: answer 429/20429 past this many requests in flight")
    add("--max-concurrent-calls", type=int, default=None,
        help="refuse creates with 10004 past this many queued or live calls")
    add("--scenario", choices=("deterministic", "weighted"), default="deterministic",
        help="outcomes by the To number's last digit, or drawn from seeded weights")
    add("--seed", type=int, default=0, help="seed of the weighted scenario and of faults")
    add("--loop", choices=("asyncio", "uvloop"), default="asyncio",
        help="the event loop: asyncio stamps each request's arrival with the kernel's "
             "receive time, which pacing is measured by; uvloop serves about a third more "
             "requests per CPU second but stamps them when it reads them (default: "
             "%(default)s)")
    add("--time-scale", type=float, default=1.0,
        help="factor on ringing and talking times, e.g. 0.001 (default: 1)")
    add("--talk-seconds", type=float, default=20.0, help="how long answered calls talk")
    add("--duplicate-callbacks", action="store_true", help="deliver every callback twice")
    add("--out-of-order-callbacks", action="store_true",
        help="deliver a call's progress events after its completed event")
    add("--drop-callbacks", action="store_true", help="deliver no callbacks")
    add("--sign-fragment", action="store_true",
        help="sign callbacks over their URL with its #fragment of connection overrides "
             "(default: without it)")
    add("--webhook-shared-key", default=None,
        help="sign callbacks with this key, as a Webhooks Rule does, instead of the auth "
             f"token (prefer the environment variable {SHARED_KEY_ENV})")
    add("--webhook-signature-algorithm", choices=("HMAC_SHA256", "HMAC_SHA1"),
        default="HMAC_SHA256", help="the shared key's algorithm (default: %(default)s)")
    add("--drop-after-create-probability", type=float, default=0.0,
        help="reset the connection after creating a call, with this probability")
    add("--response-delay", type=float, default=0.0,
        help="hold every create answer this many seconds (the call is created)")
    add("--press", action="append", metavar="[E164=]KEYS[@N]",
        help="a person who answers presses KEYS into the call's <Gather action> (inline "
             "TwiML): for that number, or every number; on the Nth call only with @N "
             "(e.g. +14155550100=9@1); repeatable")
    add_account_arguments(parser)


def add_account_arguments(parser: argparse.ArgumentParser) -> None:
    """The account's status and numbers (what ``dialer check`` looks at)."""
    add = parser.add_argument
    add("--account-status", choices=("active", "suspended", "closed"), default="active",
        help="the account's status; not active: creates are refused with 20005")
    add("--phone-number", action="append", metavar="E164",
        help="a number the account owns, repeatable (default: +15005550006)")
    add("--caller-id", action="append", metavar="E164",
        help="a verified caller ID of the account, repeatable (default: none)")


def add_parser(sub: SubParsers) -> None:
    p = sub.add_parser("sim", help="run the Twilio-compatible simulator on loopback")
    add_arguments(p)
    p.set_defaults(sync_handler=run)
