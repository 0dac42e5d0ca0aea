"""``dialer forecast CAMPAIGN``: how the campaign will go from now (or ``--start``), with
no call placed: when it completes, the calls per hour per zone, when each zone's
window opens, and the contacts that can never be reached under the current rules
(see ``dialer.forecast`` for the model and what it assumes)."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

from rich.console import Console
from rich.table import Table

from dialer import forecast, report, repository
from dialer.campaigns import Campaign
from dialer.commands import SubParsers, UsageError, UserError, database, number, writable
from dialer.commands.report import html_extra_present, moment
from dialer.config import Settings
from dialer.safetext import shown

MAX_CPS = 1000.0  # the bound of DIALER_TWILIO_CPS
SHARES = ("human", "machine", "fax", "busy", "no_answer", "failed", "failed_permanent")


def _mix(args: argparse.Namespace) -> forecast.Mix:
    try:
        return forecast.Mix(**{share: getattr(args, share) for share in SHARES})
    except ValueError as exc:
        raise UsageError(f"--human ... --failed-permanent: {exc}") from None


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    parts = [f"{days} d" if days else "", f"{hours} h" if hours else "",
             f"{minutes} min" if minutes else "", f"{secs} s" if secs and not days else ""]
    return " ".join(p for p in parts if p) or "0 s"


def _utc(at: dt.datetime | None) -> str:
    return "-" if at is None else at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def summary_lines(result: forecast.Forecast, mix: forecast.Mix, times: forecast.CallTimes,
                  cps_note: str) -> list[str]:
    """What the forecast says, as lines of text (the command prints them, the page too)."""
    never = sum(result.never.values())
    reasons = ", ".join(f"{why}: {n:,}" for why, n in result.never.most_common())
    mix_text = ", ".join(f"{name.replace('_', ' ')} {share:.0%}"
                         for name, share in [*mix.shares().items(), ("canceled", mix.canceled)])
    lines = [
        f"from {_utc(result.start)} at {result.cps:g} CPS ({cps_note})",
        f"assumed: {mix_text}; calls answered after {times.answer:g} s, talk "
        f"{times.talk:g} s, ring {times.ring:g} s when unanswered",
        f"contacts to call: {result.contacts:,}; never reachable under the current rules: "
        f"{never:,}" + (f" ({reasons})" if reasons else ""),
        f"expected: {result.attempts:,} calls, {result.done:,} contacts done, "
        f"{result.failed:,} failed",
    ]
    if result.seconds is not None:
        lines.append(f"first call {_utc(result.first_call)}; complete by "
                     f"{_utc(result.finished_at)} ({_duration(result.seconds)} after the "
                     "first call)")
    if result.left_at_end:
        lines.append(f"{result.left_at_end:,} contacts still to call when the campaign ends "
                     f"(--end-at) or after {forecast.MAX_SPAN.days} days")
    return lines


def zones_table(result: forecast.Forecast) -> Table:
    table = Table(title="by zone (the zones a contact may be in)")
    for column in ("zones", "contacts", "window opens", "calls", "calls in busiest hour"):
        table.add_column(column, justify="left" if column == "zones" else "right")
    for zone in sorted(result.zones.values(), key=lambda z: (-z.contacts, z.zones)):
        table.add_row(zone.zones, f"{zone.contacts:,}",
                      "not within 8 days" if zone.opens_at is None
                      else zone.opens_at.strftime("%Y-%m-%d %H:%M UTC"),
                      f"{zone.calls:,}", f"{zone.busiest_hour:,}")
    return table


async def run(settings: Settings, args: argparse.Namespace) -> int:
    mix = _mix(args)
    html_path = None
    if args.html is not None:
        html_extra_present()
        html_path = writable(args.html, "--html")
    start = args.start or dt.datetime.now(dt.UTC)
    async with database(settings) as pool:
        row = await repository.campaign_by_name(pool, args.campaign)
        if row is None:
            raise UserError(f"no campaign named {shown(args.campaign)}")
        try:
            campaign = Campaign.from_row(row)
        except ValueError as exc:
            raise UserError(f"campaign {row['name']} has stored settings this version "
                            f"cannot use: {exc}") from None
        stored_cps, other_weight = await repository.account_sharing(pool, campaign.id)
        if args.cps is not None:
            cps, note = args.cps, "--cps"
        else:
            account = stored_cps if stored_cps is not None else settings.twilio_cps
            cps = forecast.campaign_share(account, campaign.spec.weight, other_weight)
            note = (f"the account's {account:g}"
                    + (f", shared by weight with running campaigns of weight {other_weight}"
                       if other_weight else ""))
        times = forecast.CallTimes(answer=args.answer_seconds, talk=args.talk_seconds,
                                   ring=float(campaign.spec.ring_timeout)
                                   if args.ring_seconds is None else args.ring_seconds)
        result = await forecast.for_campaign(pool, campaign, cps=cps, start=start, mix=mix,
                                             times=times, seed=args.seed,
                                             poll_seconds=settings.poll_seconds)
    console = Console()
    lines = summary_lines(result, mix, times, note)
    console.print(f"forecast for campaign {campaign.name}", markup=False, highlight=False)
    for line in lines:
        console.print(line, markup=False, highlight=False)
    console.print(zones_table(result))
    if html_path is not None:
        from dialer import report_html  # matplotlib: only for this

        try:
            report.write_page(html_path, report_html.forecast_page(campaign.name, lines,
                                                                   result))
        except report.FileWriteError as exc:
            raise UserError(f"--html {shown(str(html_path))}: {exc}") from None
        print(f"forecast written to {html_path}")
    return 0


def add_parser(sub: SubParsers) -> None:
    p = sub.add_parser(
        "forecast", help="how a campaign will go, before it starts (no call is placed)")
    p.add_argument("campaign", metavar="CAMPAIGN", help="campaign name")
    p.add_argument("--start", type=moment, metavar="WHEN",
                   help="when dialing starts (default: now; a date or ISO-8601 time, UTC "
                        "unless it gives an offset)")
    p.add_argument("--cps", type=number(0.01, MAX_CPS), metavar="R",
                   help="calls per second for this campaign (default: the account's CPS, "
                        "shared by weight with its other running campaigns)")
    defaults = forecast.Mix()
    for share in SHARES:
        p.add_argument(f"--{share.replace('_', '-')}", dest=share, type=number(0.0, 1.0),
                       default=getattr(defaults, share), metavar="SHARE",
                       help=f"share of calls that end {share.replace('_', ' ')} "
                            f"(default %(default).3f; what the shares leave is canceled)")
    times = forecast.CallTimes()
    p.add_argument("--answer-seconds", type=number(0, 600), default=times.answer,
                   metavar="S", help="seconds to answer (default: %(default)s)")
    p.add_argument("--talk-seconds", type=number(0, 36000), default=times.talk, metavar="S",
                   help="seconds an answered call lasts (default: %(default)s)")
    p.add_argument("--ring-seconds", type=number(0, 600), metavar="S",
                   help="seconds an unanswered call rings (default: the campaign's ring "
                        "timeout)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the draws of how calls end (default: %(default)s)")
    p.add_argument("--html", type=Path, metavar="FILE",
                   help="also write the forecast with a chart of calls per hour per zone "
                        "(needs the extra: pip install 'dialer[report]')")
    p.set_defaults(handler=run)
