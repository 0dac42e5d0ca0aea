"""Calling-time compliance: the claim decision against reading every clock.

    .venv/bin/python bench/compliance.py [--contacts 100000] [--days 7] [--step 300]
                                         [--db-contacts 20000] [--quick] [--json FILE]

Contacts over many countries and every US zone (Eastern to Hawaii, Arizona, Alaska,
the territories, toll-free numbers of 42 zones, mobiles of countries with several
zones) are located the importer's way (``importer.parse_rows``, a tenth with a
``timezone`` column, some US rows with a ``state`` column), then go through the
claim's decision (``compliance.ClaimDecisions``, in claims of 200 as the dispatcher
makes them) at every ``--step`` seconds of a simulated week, under a campaign with a
split calendar, a blackout date, the us-tcpa and us-states packs and the 60 s margin.

Printed:

* calls allowed outside the window of any candidate zone, judged by an oracle that
  reads each zone's clock and each rule directly (no interval arithmetic), at the
  instant and through the margin; the goal is 0. Also calls refused although every
  zone was open (a missed call, not a legal problem).
* the decision's cost per contact (µs), over every decision made.
* what the compliance work adds to the claim query: claims of 200 contacts from a
  real Cluster, with today's claim (zones, decision, compliance record) and with the
  claim as it was before (one zone per contact, one local-time check, no record:
  its statements are kept below as the baseline), in µs per claimed contact. Today's
  claim locks the numbers it takes (the lock that makes caps race-free, taken with or
  without a cap); "capped" is today's claim under the caps 3/24h and 7/7d (settings)
  with a 7-day quiet period, which also reads the numbers' recent calls and counts
  them: the difference is the cap check's cost (here every number has no call yet; the
  numbers' lock rows exist already).
"""

from __future__ import annotations

import collections
import datetime as dt
import multiprocessing
import os
import random
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import phonenumbers
from _common import (
    parser,
    print_table,
    quiet_logs,
    run_on_daemon_loop,
    write_json,
)

from dialer import db, repository, rules
from dialer.campaigns import CampaignSpec
from dialer.caps import CapPolicy, parse_caps
from dialer.compliance import CallingPolicy, ClaimCaps, ClaimDecisions, Location, Planner, Take
from dialer.importer import parse_header, parse_rows
from dialer.testing import throwaway_cluster
from dialer.windows import WeeklyHours, parse_weekly

ACCOUNT = "AC" + "be" * 16
# The caps of the "capped" claim (see the module docstring).
CAPPED = CapPolicy(caps=parse_caps("3/24h,7/7d", source="settings"), quiet=dt.timedelta(days=7))
CLAIM = 200
START = dt.datetime(2026, 12, 7, 0, 0, tzinfo=dt.UTC)  # a Monday
# (country, prefix, digits after it, zone for the timezone column when one is given)
TEMPLATES = [
    ("US", "+1212", 7, "America/New_York"), ("US", "+1305", 7, "America/New_York"),
    ("US", "+1401", 7, "America/New_York"), ("US", "+1215", 7, "America/New_York"),
    ("US", "+1803", 7, "America/New_York"), ("US", "+1203", 7, "America/New_York"),
    ("US", "+1410", 7, "America/New_York"), ("US", "+1617", 7, "America/New_York"),
    ("US", "+1202", 7, "America/New_York"), ("US", "+1502", 7, "America/New_York"),
    ("US", "+1312", 7, "America/Chicago"), ("US", "+1405", 7, "America/Chicago"),
    ("US", "+1251", 7, "America/Chicago"), ("US", "+1601", 7, "America/Chicago"),
    ("US", "+1504", 7, "America/Chicago"), ("US", "+1214", 7, "America/Chicago"),
    ("US", "+1303", 7, "America/Denver"), ("US", "+1801", 7, "America/Denver"),
    ("US", "+1307", 7, "America/Denver"), ("US", "+1915", 7, "America/Denver"),
    ("US", "+1602", 7, "America/Phoenix"), ("US", "+1415", 7, "America/Los_Angeles"),
    ("US", "+1702", 7, "America/Los_Angeles"), ("US", "+1206", 7, "America/Los_Angeles"),
    ("US", "+1907", 7, "America/Anchorage"), ("US", "+1808", 7, "Pacific/Honolulu"),
    ("US", "+1800", 7, "America/New_York"), ("US", "+1888", 7, "America/Chicago"),
    ("PR", "+1787", 7, "America/Puerto_Rico"), ("GU", "+1671", 7, "Pacific/Guam"),
    ("VI", "+1340", 7, "America/St_Thomas"), ("AS", "+1684", 7, "Pacific/Pago_Pago"),
    ("MP", "+1670", 7, "Pacific/Saipan"),
    ("CA", "+1416", 7, "America/Toronto"), ("CA", "+1604", 7, "America/Vancouver"),
    ("GB", "+447", 9, "Europe/London"), ("DE", "+4930", 8, "Europe/Berlin"),
    ("FR", "+336", 8, "Europe/Paris"), ("ES", "+346", 8, "Europe/Madrid"),
    ("AU", "+614", 8, "Australia/Sydney"), ("NZ", "+6421", 7, "Pacific/Auckland"),
    ("RU", "+7916", 7, "Europe/Moscow"), ("IN", "+9198", 8, "Asia/Kolkata"),
    ("BR", "+55119", 8, "America/Sao_Paulo"), ("MX", "+5255", 8, "America/Mexico_City"),
    ("JP", "+8190", 8, "Asia/Tokyo"), ("ID", "+62812", 8, "Asia/Jakarta"),
    ("ZA", "+2782", 7, "Africa/Johannesburg"), ("CL", "+569", 8, "America/Santiago"),
]
STATES = ["TX", "OK", "FL", "AL", "RI", "PA", "NY", "California"]


def contact_rows(count: int, rng: random.Random) -> list[list[str]]:
    """CSV rows (phone, timezone, state) of valid, distinct numbers."""
    rows: list[list[str]] = []
    seen: set[str] = set()
    while len(rows) < count:
        _, prefix, digits, zone = TEMPLATES[len(rows) % len(TEMPLATES)]
        number = prefix + "".join(rng.choice("0123456789") for _ in range(digits))
        if number in seen or not phonenumbers.is_valid_number(phonenumbers.parse(number)):
            continue
        seen.add(number)
        column_zone = zone if rng.random() < 0.1 else ""
        state = rng.choice(STATES) if prefix.startswith("+1") and rng.random() < 0.2 else ""
        rows.append([number, column_zone, state])
    return rows


def locate(rows: list[list[str]]) -> list[dict[str, Any]]:
    """Through the importer, as an import would; then the claim query's row shape."""
    layout = parse_header(["phone", "timezone", "state"], phone_column="phone", region="US")
    records, rejected = parse_rows(layout, [(i + 2, row) for i, row in enumerate(rows)])
    assert not rejected, rejected[:3]
    return [{"id": i, "phone": r[1], "place": "|".join((r[3], r[2], r[4], r[5])),
             "zones": None, "zone_source": None, "csv_state": None}
            for i, r in enumerate(records)]


def campaign_policy() -> CallingPolicy:
    return CallingPolicy(
        calendar=parse_weekly("mon-fri 09:00-12:00,13:00-20:00; sat 10:00-14:00"),
        blackouts=frozenset({dt.date(2026, 12, 10)}),
        margin=60,
        packs=(rules.load("us-tcpa"), rules.load("us-states")),
    )


# ---- the oracle: every clock read directly ------------------------------------------------


def _open(policy: CallingPolicy, location: Location, t: dt.datetime) -> bool:
    if (policy.start_at and t < policy.start_at) or (policy.end_at and t >= policy.end_at):
        return False
    zones = [ZoneInfo(z) for z in location.zones]
    for check in policy.checks(location.states):
        for zone in ([check.zone] if check.zone is not None else zones):
            local = t.astimezone(zone)
            seconds = local.hour * 3600 + local.minute * 60 + local.second
            if not any(s <= seconds < e for s, e in check.local.ranges_on(local.date())):
                return False
    return True


def oracle(policy: CallingPolicy, place: str, t: dt.datetime) -> bool:
    """May a call be placed at ``t`` (a whole minute)? Open in every zone under every
    rule at t and at each minute up to t + margin (ranges, offsets and bounds all
    change on whole minutes here)."""
    location = policy.resolve(Location.from_place(place))
    if location is None:
        return False
    return all(_open(policy, location, t + dt.timedelta(minutes=m))
               for m in range(policy.margin // 60 + 1))


# ---- the simulated week ------------------------------------------------------------------


@dataclass
class Week:
    contacts: int
    countries: int
    places: int
    instants: int
    decisions: int
    calls_allowed: int
    allowed_outside_window: int
    refused_while_open: int
    decision_us_per_contact: float
    workers: int
    seconds: float


def _simulate_instants(rows: list[dict[str, Any]], instants: list[dt.datetime]
                       ) -> tuple[int, int, int, float]:
    """Every contact through the claim's decision at each instant, in claims of 200
    (timed), then each distinct place against the oracle (not timed). Returns (calls
    allowed, allowed outside the window, refused while open, CPU seconds deciding)."""
    policy = campaign_policy()
    planner = Planner(policy)
    allowed = outside = missed = 0
    spent = 0.0
    for now in instants:
        taken: collections.Counter[str] = collections.Counter()
        refused: collections.Counter[str] = collections.Counter()
        t0 = time.process_time()  # CPU time: other work on the machine does not count
        for first in range(0, len(rows), CLAIM):
            decide = ClaimDecisions(planner, now)
            for row in rows[first:first + CLAIM]:
                decision, _ = decide(row)
                (taken if isinstance(decision, Take) else refused)[row["place"]] += 1
        spent += time.process_time() - t0
        allowed += sum(taken.values())
        outside += sum(n for place, n in taken.items() if not oracle(policy, place, now))
        missed += sum(n for place, n in refused.items() if oracle(policy, place, now))
    return allowed, outside, missed, spent


def simulate(rows: list[dict[str, Any]], days: int, step: int, workers: int) -> Week:
    """The week's instants dealt out to ``workers`` processes (each with a planner of
    its own, as each dialer process has)."""
    instants = [START + dt.timedelta(seconds=s) for s in range(0, days * 86400, step)]
    started = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        parts = list(pool.map(_simulate_instants, [rows] * workers,
                              [instants[i::workers] for i in range(workers)]))
    allowed, outside, missed = (sum(part[i] for part in parts) for i in range(3))
    decisions = len(rows) * len(instants)
    countries = {phonenumbers.region_code_for_number(phonenumbers.parse(r["phone"]))
                 for r in rows}
    return Week(len(rows), len(countries), len({r["place"] for r in rows}), len(instants),
                decisions, allowed, outside, missed,
                sum(part[3] for part in parts) / decisions * 1e6, workers,
                time.perf_counter() - started)


# ---- the claim query, today's and before -------------------------------------------------

# The claim as it was before calling time had zones (queries.sql before migration 0005),
# on today's schema: a contact's one zone was `timezone`, now zones[1].
BASELINE_SELECT = """
SELECT k.id, k.phone, k.zones[1] AS timezone,
       EXISTS (SELECT 1 FROM dnc_numbers d
               WHERE d.phone = k.phone
                 AND (d.campaign_id IS NULL OR d.campaign_id = k.campaign_id)) AS on_dnc
FROM contacts k
WHERE k.campaign_id = $1 AND k.state IN ('pending', 'retry_wait') AND k.next_attempt_at <= $2
ORDER BY k.next_attempt_at, k.id
LIMIT $3
FOR UPDATE OF k SKIP LOCKED"""
BASELINE_CLAIM = """
WITH claimed AS (
    UPDATE contacts k
    SET state = 'dialing', claimed_by = $2, claimed_at = $3, attempts = k.attempts + 1,
        updated_at = now()
    WHERE k.id = ANY($1::bigint[])
    RETURNING k.id, k.campaign_id, k.phone, k.attributes, k.attempts
), inserted AS (
    INSERT INTO call_attempts (contact_id, campaign_id, attempt_no, requested_at, worker_id)
    SELECT id, campaign_id, attempts, $3, $2 FROM claimed
    RETURNING id, contact_id, attempt_no
)
SELECT i.id AS attempt_id, i.contact_id, i.attempt_no, c.phone, c.attributes
FROM inserted i JOIN claimed c ON c.id = i.contact_id
ORDER BY i.id"""
RESET = """
WITH gone AS (DELETE FROM call_attempts WHERE campaign_id = $1)
UPDATE contacts SET state = 'pending', claimed_by = NULL, claimed_at = NULL, attempts = 0
WHERE campaign_id = $1"""


async def baseline_claim(pool: asyncpg.Pool, campaign_id: int, now: dt.datetime,
                         calendar: WeeklyHours) -> int:
    """The claim before: one zone per contact, one reading of its clock, no record."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", 0x636C61, campaign_id)
        due = await conn.fetch(BASELINE_SELECT, campaign_id, now, CLAIM)
        take = []
        for row in due:
            local = now.astimezone(ZoneInfo(row["timezone"] or "UTC"))
            seconds = local.hour * 3600 + local.minute * 60
            if not row["on_dnc"] and any(s <= seconds < e
                                         for s, e in calendar.on(local.isoweekday())):
                take.append(row["id"])
        if not take:
            return 0
        return len(await conn.fetch(BASELINE_CLAIM, take, "bench", now))


async def todays_claim(pool: asyncpg.Pool, campaign_id: int, now: dt.datetime,
                       planner: Planner, caps: CapPolicy) -> int:
    claimed = await repository.claim_due(
        pool, campaign_id=campaign_id, account_sid=ACCOUNT, limit=CLAIM, max_concurrent=None,
        account_max_concurrent=None, worker_id="bench", now=now,
        decide=ClaimDecisions(planner, now), caps=ClaimCaps(caps, planner, now),
        rule_packs=planner.policy.pack_tags)
    return len(claimed)


@dataclass
class ClaimCost:
    contacts: int
    claims: int
    before_us_per_contact: float
    today_us_per_contact: float
    added_us_per_contact: float
    before_ms_per_claim: float
    today_ms_per_claim: float
    capped_us_per_contact: float
    cap_added_us_per_contact: float
    capped_ms_per_claim: float


async def claim_cost(rows: list[dict[str, Any]], durable: bool, rounds: int) -> ClaimCost:
    """Claims of 200 until every contact is claimed, alternating today's and the
    baseline (contacts reset between rounds, untimed); medians over the rounds. The
    campaign is open at any time, so both claim every contact they see; the planner's
    intervals are worked out before (a running daemon has them from earlier claims)."""
    with throwaway_cluster(durable=durable) as pg:
        dsn = await pg.new_database("compliance")
        async with db.open_pool(dsn) as pool:
            spec = CampaignSpec(name="claims", from_number="+15005550006",
                                twiml_url="https://example.com/t", calendar=WeeklyHours.ALWAYS)
            await repository.upsert_account(pool, ACCOUNT, 1.0, None)
            campaign_id = await repository.insert_campaign(pool, spec.to_row(), ACCOUNT)
            assert campaign_id is not None
            await pool.executemany(
                "INSERT INTO contacts (campaign_id, phone, zones, zone_source, states,"
                " state_sources) VALUES ($1, $2, $3, $4, $5, $6)",
                [(campaign_id, r["phone"], *_arrays(r["place"])) for r in rows])
            planner = Planner(spec.calling_policy())
            now = dt.datetime.now(dt.UTC)
            warm = ClaimDecisions(planner, now)  # intervals per place, as a running daemon has
            for row in rows:
                warm(row)
            # The numbers' lock rows exist, so that whichever claim runs first does not pay
            # for creating them (a number's first claim ever does, once).
            await pool.execute("INSERT INTO number_locks SELECT DISTINCT phone FROM contacts "
                               "ON CONFLICT DO NOTHING")
            before: list[float] = []
            today: list[float] = []
            capped: list[float] = []
            claims = 0
            for _ in range(rounds):
                for timings, claim in ((today, lambda: todays_claim(pool, campaign_id, now,
                                                                    planner, CapPolicy())),
                                       (capped, lambda: todays_claim(pool, campaign_id, now,
                                                                     planner, CAPPED)),
                                       (before, lambda: baseline_claim(
                                           pool, campaign_id, now, WeeklyHours.ALWAYS))):
                    await pool.execute(RESET, campaign_id)
                    claims = 0
                    t0 = time.perf_counter()
                    while await claim():
                        claims += 1
                    timings.append(time.perf_counter() - t0)
    b, t, c = (statistics.median(x) for x in (before, today, capped))
    n = len(rows)
    return ClaimCost(n, claims, b / n * 1e6, t / n * 1e6, (t - b) / n * 1e6, b / claims * 1e3,
                     t / claims * 1e3, c / n * 1e6, (c - t) / n * 1e6, c / claims * 1e3)


def _arrays(place: str) -> tuple[list[str], str, list[str], list[str]]:
    where = Location.from_place(place)
    return list(where.zones), where.zone_source, list(where.states), list(where.state_sources)


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--contacts", type=int, default=100_000)
    p.add_argument("--days", type=int, default=7)
    p.add_argument("--step", type=int, default=300, help="seconds between instants")
    p.add_argument("--db-contacts", type=int, default=20_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="processes sharing the simulated week (default: one per CPU)")
    args = p.parse_args()
    if args.quick:
        args.contacts, args.db_contacts, args.rounds = 5_000, 2_000, 1
    quiet_logs()
    rng = random.Random(14)
    t0 = time.perf_counter()
    rows = locate(contact_rows(args.contacts, rng))
    print(f"{len(rows):,} contacts located through the importer in "
          f"{time.perf_counter() - t0:.1f} s")
    week = simulate(rows, args.days, args.step, args.workers)
    cost = run_on_daemon_loop(claim_cost(rows[: args.db_contacts], not args.no_fsync,
                                         args.rounds))
    print_table(
        f"Claim decisions over {args.days} days, every {args.step} s "
        f"(from {START:%Y-%m-%d}, a Monday)",
        ["contacts", "countries", "places", "instants", "decisions", "calls allowed",
         "allowed outside a zone's window", "refused while open", "µs/contact", "goal met"],
        [[week.contacts, week.countries, week.places, week.instants, week.decisions,
          week.calls_allowed, week.allowed_outside_window, week.refused_while_open,
          week.decision_us_per_contact, week.allowed_outside_window == 0]])
    print(f"({week.workers} processes, {week.seconds:.0f} s; 'places': distinct zone and "
          "state sets with their sources; µs/contact: CPU time deciding, in claims of "
          f"{CLAIM})")
    print_table(
        f"Claim query, {CLAIM} contacts per claim (median of {args.rounds} rounds; "
        f"{'durable' if not args.no_fsync else 'fsync off'} Cluster)",
        ["contacts", "claims", "before µs/contact", "today µs/contact", "added µs/contact",
         "capped µs/contact", "cap adds µs/contact", "before ms/claim", "today ms/claim",
         "capped ms/claim"],
        [[cost.contacts, cost.claims, cost.before_us_per_contact, cost.today_us_per_contact,
          cost.added_us_per_contact, cost.capped_us_per_contact, cost.cap_added_us_per_contact,
          cost.before_ms_per_claim, cost.today_ms_per_claim, cost.capped_ms_per_claim]])
    print("oracle: each zone's clock and each rule read directly, at the instant and "
          "through the 60 s margin; 'before': one zone per contact, no record; 'today' "
          "includes the number lock; 'capped': today's under 3/24h, 7/7d and a 7d quiet "
          "period (the cap check)")
    write_json(args.json, "compliance", args, {"week": asdict(week), "claim": asdict(cost)})


if __name__ == "__main__":
    main()
