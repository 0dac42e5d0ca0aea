"""``dialer why CAMPAIGN PHONE [--at WHEN]``: may this contact be called, and why.

Prints where the contact may be (zones and states, with where each came from), the
local time in each zone, then every check at that instant, allowed or blocked: the
contact's state, the do-not-call lists, attempts left, the campaign's start and end,
days, hours and blackout dates, every rule of its rule packs that binds the contact
(with its citation and how far it was verified), the last-call margin, every cap on
how often the number may be called (DIALER_CAPS, the campaign's, the packs': the calls
each counts on the contact's subject and when it allows one again) and the quiet
period after a conversation; finally the next spans in which it may be called. The
checks are the ones the daemon's claim applies (``dialer.compliance``), read off the
same data, so the answer is the daemon's: this command only reads.
"""

from __future__ import annotations

import argparse
import datetime as dt
from zoneinfo import ZoneInfo

from dialer import phone, repository
from dialer.campaigns import Campaign
from dialer.commands import SubParsers, UsageError, UserError, database
from dialer.compliance import (
    CLAIM_TO_SEND_SLACK,
    Verdict,
    cap_verdicts,
    contact_verdicts,
    describe_location,
    describe_subject,
    margin_verdict,
    stored_location,
    time_verdicts,
    upcoming,
)
from dialer.config import Settings
from dialer.safetext import shown
from dialer.windows import parse_instant


def _at(text: str | None) -> dt.datetime:
    if text is None:
        return dt.datetime.now(dt.UTC)
    try:
        return parse_instant(text).astimezone(dt.UTC)
    except ValueError as exc:
        raise UsageError(f"--at: {exc}") from None


def _table(verdicts: list[Verdict]) -> list[str]:
    kind_width = max(len(v.kind) for v in verdicts)
    name_width = max(len(v.name) for v in verdicts)
    lines = []
    for v in verdicts:
        cited = f" [{v.citation}; {v.status}]" if v.citation else ""
        lines.append(f"  {'allowed' if v.allowed else 'BLOCKED'}  {v.kind:<{kind_width}}  "
                     f"{v.name:<{name_width}}  {v.detail}{cited}")
    return lines


# Verdict kinds that, blocked, mean the contact is not called again whatever the time.
_FOR_GOOD = ("contact", "dnc", "attempts", "zone")


def _utc(value: dt.datetime) -> str:
    return f"{value:%Y-%m-%d %H:%M:%S} UTC"


async def run(settings: Settings, args: argparse.Namespace) -> int:
    at = _at(args.at)
    try:
        number = phone.normalize(args.phone, settings.default_region)
    except phone.InvalidNumber as exc:
        raise UsageError(f"PHONE: invalid number {shown(args.phone)}: {exc}") from None
    async with database(settings) as pool:
        row = await repository.campaign_by_name(pool, args.campaign)
        if row is None:
            raise UserError(
                f"no campaign named {shown(args.campaign)} (see `dialer campaign list`)")
        try:
            campaign = Campaign.from_row(row)
        except ValueError as exc:
            raise UserError(f"campaign {row['name']} has stored settings this version "
                            f"refuses: {exc}") from None
        contact = await repository.contact_for_why(
            pool, campaign.id, number, at=at, subject_column=campaign.spec.subject_column)
        caps = campaign.caps(settings.cap_rules)
        calls = [] if not caps.counts else [
            c for c in await repository.recent_calls(
                pool, number, at - caps.lookback - CLAIM_TO_SEND_SLACK) if c.at <= at]
    if contact is None:
        raise UserError(f"no contact {number} in campaign {campaign.name}")
    planner = campaign.planner
    policy = planner.policy
    location, _ = stored_location(number, contact["zones"], contact["zone_source"],
                                  contact["states"], contact["state_sources"],
                                  contact["csv_state"])
    resolved = policy.resolve(location)
    verdicts = contact_verdicts(
        state=contact["state"], reason=contact["reason"], attempts=contact["attempts"],
        max_attempts=campaign.spec.retry.max_attempts, dnc_entry=contact["dnc_entry"],
        due=contact["due"], at=at,
    )
    zones_text, states_text = describe_location(resolved or location)
    subject = caps.key(contact["subject_value"])
    out = [f"campaign {campaign.name}, contact {number}, at {_utc(at)}",
           f"zones:  {zones_text}", f"states: {states_text}",
           f"subject: {shown(describe_subject(subject), 200, quoted=False)}"]
    if resolved is None:
        verdicts.append(Verdict("zone", "time zone", False,
                                "the number gives none and the campaign has no default "
                                "(--timezone); nor does the contact's row"))
    else:
        for zone in resolved.zones:
            out.append(f"local:  {at.astimezone(ZoneInfo(zone)):%a %Y-%m-%d %H:%M} {zone}")
        verdicts += time_verdicts(policy, resolved, at)
        verdicts.append(margin_verdict(planner, resolved, at))
    check = caps.check(subject=subject, states=(resolved or location).states, calls=calls,
                       now=at)
    verdicts += cap_verdicts(check)
    out.append(f"rule packs: {', '.join(policy.pack_tags) or 'none'}")
    out.append("")
    out += _table(verdicts)
    out.append("")
    allowed = all(v.allowed for v in verdicts)
    out.append(f"verdict: {'may be called' if allowed else 'may not be called'} at {_utc(at)}")
    never = [v for v in verdicts if not v.allowed and v.kind in _FOR_GOOD
             and v.name not in ("contact dialing", "contact in_call")]
    if resolved is not None and not never:
        start = max(t for t in (at, contact["due"], check.until) if t is not None)
        spans = upcoming(planner, resolved, start)
        out.append("next times it may be called (within 8 days):" if spans else
                   "no time it may be called within 8 days")
        for begin, end in spans:
            local = ", ".join(f"{begin.astimezone(ZoneInfo(z)):%a %H:%M} {z}"
                              for z in resolved.zones[:3])
            more = f" (+{len(resolved.zones) - 3} zones)" if len(resolved.zones) > 3 else ""
            out.append(f"  from {_utc(begin)} until {_utc(end)}  ({local}{more})")
    print("\n".join(out))
    return 0


def add_parser(sub: SubParsers) -> None:
    p = sub.add_parser("why", help="whether and when a contact may be called, rule by rule")
    p.add_argument("campaign", metavar="CAMPAIGN", help="campaign name")
    p.add_argument("phone", metavar="PHONE",
                   help="the contact's number (E.164, or national form of DIALER_DEFAULT_REGION)")
    p.add_argument("--at", metavar="WHEN",
                   help="the instant to judge, ISO-8601 with a zone (default: now)")
    p.set_defaults(handler=run)
