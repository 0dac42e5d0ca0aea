"""``dialer check [CAMPAIGN...]``: the database, the Twilio account, caller IDs, the
public URL, TwiML, CPS and calling-time settings, one line each with ok, warn or fail
and what to do; exit code 1 when anything failed (see dialer.checks)."""

from __future__ import annotations

import argparse

from dialer import checks, preflight
from dialer.commands import SubParsers, database_dsn
from dialer.config import Settings


async def run(settings: Settings, args: argparse.Namespace) -> int:
    findings = []
    async for finding in preflight.check_all(settings, dsn=database_dsn(settings),
                                             names=args.campaigns):
        print(finding.line(), flush=True)
        findings.append(finding)
    print(checks.summary(findings))
    return checks.exit_code(findings)


def add_parser(sub: SubParsers) -> None:
    p = sub.add_parser(
        "check", help="check the configuration before dialing (exit 1 when a check fails)",
        description="Check what makes campaigns fail with Twilio: the database, the "
        "credentials and the account, each campaign's caller ID, TwiML and time zones, "
        "the public URL and the CPS. One line per check: ok, warn or fail.",
    )
    p.add_argument("campaigns", nargs="*", metavar="CAMPAIGN",
                   help="campaigns to check (default: every draft, running or paused one)")
    p.set_defaults(handler=run)
