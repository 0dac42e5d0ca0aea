"""Reports on a big database: summary latency, breakdowns, the streamed export, claims.

    .venv/bin/python bench/reports.py [--contacts 10000000] [--campaigns 50] [--dsn URL]
                                      [--rebuild] [--quick] [--json FILE] [--no-fsync]

Builds a database of ``--contacts`` contacts (10M) and about twice as many attempts,
each with its compliance record, over ``--campaigns`` campaigns (50) with
generate_series: "large" holds a fifth of the
contacts, "small" one in five hundred, the others share the rest. Contacts are in
every state, attempts have every outcome, a contact's last attempt matches its state,
and the attempts of all campaigns are interleaved in the table as running campaigns
leave them. (call_events stays empty: no report reads it.) The load drops the
indexes and constraints of the three tables and the counting triggers, writes the
rows from two connections at once (a compliance record by its attempt's own INSERT),
builds the three tables' keys and indexes at once, and puts the constraints back
(rebuild_campaign_counts() recounts); each step's time is printed (1M contacts: 77 s
on 2 cores shared with other work).

Then it prints:
  * the summary latency of the small and the large campaign (the named query
    campaign_summary, p50/p95/max of repeated runs), beside one run of the same
    counts taken by a scan restricted to the campaign's rows and one of the 0002 view;
  * the breakdowns of the large campaign, with latencies: by outcome and the retry
    funnel (from the counters), by the recipient's local hour, by zones and by country
    (scans of its ended calls); and the views other tools read (attempt_detail by name,
    outcomes_per_hour);
  * the export: the real ``dialer report large --csv FILE`` (and ``.csv.gz``, and one
    day of it with --since/--until) as an operator runs it, in a subprocess: rows/s
    and its peak RSS (VmHWM);
  * the claim latency (repository.claim_due, batches of 50) on this database against
    an empty one, and an empty one with the counting triggers off (what counting costs
    a claim), claims taken in turn; the claimed contacts are handed back afterwards.

Goals (issue 19): summary < 50 ms whatever the campaign's size; export >= 200,000
rows/s with peak RSS < 150 MB; claim latency within 2x of an empty database.

``--dsn`` uses a server of your own (the database ``reports_<contacts>`` is built
there once and reused; ``--rebuild`` builds it again); otherwise a throwaway cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import asyncpg
from _common import (
    bench_env,
    parser,
    percentile,
    print_table,
    quiet_logs,
    status_kb,
    write_json,
)

from dialer import db, queries, repository
from dialer.campaigns import Campaign
from dialer.compliance import ClaimDecisions
from dialer.testing import throwaway_cluster

GOAL_SUMMARY_MS = 50.0
GOAL_EXPORT_ROWS_PER_S = 200_000
GOAL_EXPORT_RSS_MB = 150.0
GOAL_CLAIM_RATIO = 2.0
ACCOUNT = "AC" + "0" * 32
CLAIM_BATCH = 50
LOADED = ("contacts", "call_attempts", "attempt_compliance")
# Connections writing the rows at once (Postgres runs no INSERT ... SELECT in
# parallel): the 2 cores of the machine the figures are taken on.
LOAD_PARTS = 2

# The campaigns: ordinal 1 is "large" (a fifth of the contacts), 2 is "small" (one in
# five hundred), the others share the rest; first = the first contact's number.
SIZES = """
CREATE UNLOGGED TABLE bench_sizes AS
WITH s AS (
    SELECT g AS ordinal,
           CASE g WHEN 1 THEN $1 / 5 WHEN 2 THEN $1 / 500
                  ELSE ($1 - $1 / 5 - $1 / 500) / ($2 - 2)
                       + CASE WHEN g - 3 < ($1 - $1 / 5 - $1 / 500) % ($2 - 2) THEN 1 ELSE 0 END
           END AS contacts
    FROM generate_series(1, $2::int) AS g
)
SELECT ordinal, contacts, sum(contacts) OVER (ORDER BY ordinal) - contacts AS first,
       CASE ordinal WHEN 1 THEN 'large' WHEN 2 THEN 'small'
                    ELSE 'c' || lpad(ordinal::text, 2, '0') END AS name
FROM s
"""

# Open at any time, so the claims measured take whoever is due.
CAMPAIGNS = """
INSERT INTO campaigns (name, account_sid, from_number, twiml_url, amd_mode, state, calendar)
SELECT name, $1, '+15005550006', 'https://example.com/twiml',
       CASE WHEN ordinal % 3 = 0 THEN 'off' ELSE 'DetectMessageEnd' END, 'running',
       'mon-sun 00:00-24:00'
FROM bench_sizes ORDER BY ordinal
"""

# Where the numbers ring: the zones and US states an import stores for them (one in
# eight is an Australian mobile, which may ring in eight zones of three countries).
PLACES = """
CREATE UNLOGGED TABLE bench_places (place, prefix, zones, states) AS
VALUES (0, '+1212', '{America/New_York}'::text[], '{NY}'::text[]),
       (1, '+1312', '{America/Chicago}', '{IL}'), (2, '+1303', '{America/Denver}', '{CO}'),
       (3, '+1415', '{America/Los_Angeles}', '{CA}'),
       (4, '+1907', '{America/Anchorage}', '{AK}'), (5, '+1808', '{Pacific/Honolulu}', '{HI}'),
       (6, '+4420', '{Europe/London}', '{}'),
       (7, '+614', '{Australia/Adelaide,Australia/Brisbane,Australia/Eucla,Australia/Lord_Howe,'
                   'Australia/Perth,Australia/Sydney,Indian/Christmas,Indian/Cocos}', '{}')
"""

# States by a hash of the number: 70 % done, 15 % failed, 5 % waiting for a retry,
# 6 % pending (never called), 4 % skipped; 1 to 3 attempts for those called. Contact
# i (from 0) is given the id i + 1, so that its number and places follow from its id
# (the attempts' compliance records need no join with the contacts).
CONTACTS = """
INSERT INTO contacts (id, campaign_id, phone, attributes, state, attempts, reason,
                      next_attempt_at, zones, zone_source, states, state_sources)
OVERRIDING SYSTEM VALUE
SELECT i + 1, c.id, p.prefix || lpad(i::text, 8, '0'),
       jsonb_build_object('first_name', 'Contact ' || i), st.state,
       CASE WHEN st.state IN ('done', 'failed') THEN (ARRAY[1, 2, 3, 3])[1 + i / 100 % 4]
            WHEN st.state = 'retry_wait' THEN 1 + i / 100 % 2 ELSE 0 END,
       CASE WHEN st.state IN ('failed', 'skipped') THEN 'bench' END,
       CASE WHEN st.state = 'retry_wait' THEN now() + interval '1 day' ELSE '-infinity' END,
       p.zones, 'number', p.states, array_fill('number'::text, ARRAY[cardinality(p.states)])
FROM bench_sizes s
JOIN campaigns c ON c.name = s.name
CROSS JOIN LATERAL generate_series(s.first, s.first + s.contacts - 1) AS i
JOIN bench_places p ON p.place = i % 8
CROSS JOIN LATERAL (
    SELECT CASE WHEN i * 37 % 100 < 70 THEN 'done' WHEN i * 37 % 100 < 85 THEN 'failed'
                WHEN i * 37 % 100 < 90 THEN 'retry_wait' WHEN i * 37 % 100 < 96 THEN 'pending'
                ELSE 'skipped' END AS state
) st
WHERE i % $2 = $1
"""

# A contact's earlier attempts ended busy, no-answer, failed (transient), machine or
# canceled; its last one as its state says. The contacts are taken in a hashed order
# (a narrow sort) so the campaigns' attempts are interleaved in the heap. Each attempt's
# compliance record is written by the same statement, as the claim writes it: the
# local time in every zone, ISO-8601 with the zone's offset then. Its contact's number
# and places follow from the contact's id (see CONTACTS): no second pass over the
# attempts and no join of 20M attempts with 10M contacts, which took most of the load.
ATTEMPTS = """
WITH made AS (
    INSERT INTO call_attempts (contact_id, campaign_id, attempt_no, state, worker_id, requested_at,
                               sent_at, call_sid, call_status, statuses, answered_by, duration,
                               sip_response_code, queue_time_ms, outcome, final_at)
    SELECT k.id, k.campaign_id, g, 'final', 'bench', t.at, t.at + interval '150 ms',
           'CA' || lpad(to_hex(k.id), 30, '0') || lpad(g::text, 2, '0'),
           o.call_status, ARRAY['queued', 'ringing', o.call_status], o.answered_by, o.duration,
           o.sip, 150, o.outcome, t.at + make_interval(secs => 20 + coalesce(o.duration, 0))
    FROM (SELECT id, campaign_id, state, attempts FROM contacts
          WHERE attempts > 0 AND id % $2 = $1
          ORDER BY (id * 2654435761) % 4294967296) k
    CROSS JOIN LATERAL generate_series(1, k.attempts) AS g
    CROSS JOIN LATERAL (
        SELECT timestamptz '2026-01-05 14:00Z'
               + make_interval(days => (k.id % 28)::int, secs => ((k.id * 7919) % 36000)::int
                                                                 + (g - 1) * 7200) AS at
    ) t
    CROSS JOIN LATERAL (
        SELECT x.* FROM (VALUES
            (0, 'completed', 'human', 45, NULL::int, 'human'),
            (1, 'completed', 'machine_end_beep', 30, NULL, 'voicemail_left'),
            (2, 'completed', NULL, 60, NULL, 'completed'),
            (3, 'completed', 'fax', 5, NULL, 'fax'),
            (4, 'failed', NULL, NULL, 404, 'failed_permanent'),
            (5, 'no-answer', NULL, NULL, NULL, 'no-answer'),
            (6, 'busy', NULL, NULL, 486, 'busy'),
            (7, 'failed', NULL, NULL, 503, 'failed_transient'),
            (8, 'completed', 'machine_start', 3, NULL, 'machine'),
            (9, 'canceled', NULL, NULL, NULL, 'canceled')
        ) AS x(kind, call_status, answered_by, duration, sip, outcome)
        WHERE x.kind = CASE WHEN g < k.attempts THEN 5 + (k.id + g) % 5
                            WHEN k.state = 'done' THEN (k.id / 7) % 3
                            WHEN k.state = 'failed' THEN 3 + (k.id / 7) % 3
                            ELSE 5 + (k.id / 7) % 3 END
    ) o
    RETURNING id, contact_id, requested_at
)
INSERT INTO attempt_compliance (attempt_id, phone, decided_at, zones, zone_source, states,
                                state_sources, local_times, rule_packs, rules, open_until)
SELECT m.id, p.prefix || lpad((m.contact_id - 1)::text, 8, '0'), m.requested_at, p.zones,
       'number', p.states, array_fill('number'::text, ARRAY[cardinality(p.states)]),
       ARRAY(SELECT to_char(local, 'YYYY-MM-DD"T"HH24:MI:SS')
                    || CASE WHEN offset_min < 0 THEN '-' ELSE '+' END
                    || lpad((abs(offset_min) / 60)::text, 2, '0') || ':'
                    || lpad((abs(offset_min) % 60)::text, 2, '0')
             FROM unnest(p.zones) AS z(zone)
             CROSS JOIN LATERAL (SELECT m.requested_at AT TIME ZONE z.zone AS local) l
             CROSS JOIN LATERAL (
                 SELECT (extract(epoch FROM l.local - (m.requested_at AT TIME ZONE 'UTC'))
                         / 60)::int AS offset_min) o),
       '{}', '{calendar}', m.requested_at + interval '1 hour'
FROM made m JOIN bench_places p ON p.place = (m.contact_id - 1) % 8
"""

# What a load must take off the tables and put back, in the order to put it back.
SCHEMA_OF_LOADED = """
SELECT 'constraint' AS kind, c.conrelid::regclass::text AS tab, c.conname AS name,
       format('ALTER TABLE %s ADD CONSTRAINT %I %s', c.conrelid::regclass, c.conname,
              pg_get_constraintdef(c.oid)) AS create,
       CASE c.contype WHEN 'p' THEN 0 WHEN 'u' THEN 1 ELSE 3 END AS step
FROM pg_constraint c
WHERE c.contype IN ('p', 'u', 'f')
  AND (c.conrelid = ANY ($1::regclass[]) OR c.confrelid = ANY ($1::regclass[]))
UNION ALL
SELECT 'index', i.indrelid::regclass::text, i.indexrelid::regclass::text,
       pg_get_indexdef(i.indexrelid), 2
FROM pg_index i
WHERE i.indrelid = ANY ($1::regclass[])
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
ORDER BY step, name
"""

# 0002's view, for the comparison: it groups every campaign before the filter applies.
OLD_SUMMARY = """
WITH contact_counts AS (
    SELECT campaign_id, count(*) AS contacts FROM contacts GROUP BY campaign_id
), attempt_counts AS (
    SELECT campaign_id, count(*) FILTER (WHERE state <> 'void') AS attempts,
           count(*) FILTER (WHERE call_status = 'completed'
                            AND coalesce(answered_by, 'human') IN ('human', 'unknown')) AS human
    FROM call_attempts GROUP BY campaign_id
)
SELECT c.id, k.contacts, a.attempts, a.human FROM campaigns c
LEFT JOIN contact_counts k ON k.campaign_id = c.id
LEFT JOIN attempt_counts a ON a.campaign_id = c.id
WHERE c.name = $1
"""

# The same counts by a scan restricted to the campaign's rows (the alternative to
# counters: its cost grows with the campaign).
RESTRICTED_SUMMARY = """
SELECT (SELECT count(*) FROM contacts WHERE campaign_id = $1) AS contacts,
       (SELECT count(*) FILTER (WHERE outcome = 'human') FROM call_attempts
        WHERE campaign_id = $1) AS human
"""


# The views other reporting tools read, filtered by campaign as they would be.
VIEW_QUERIES = (
    ("attempt_detail by name (all rows)",
     "SELECT * FROM attempt_detail WHERE campaign = $1", "small"),
    ("outcomes_per_hour by campaign_id",
     "SELECT * FROM outcomes_per_hour WHERE campaign_id = $1", "small"),
    ("outcomes_per_hour by campaign_id",
     "SELECT * FROM outcomes_per_hour WHERE campaign_id = $1", "large"),
)
DAY = ("--since", "2026-01-10", "--until", "2026-01-11")
# (title, named query, its function, read from the counters); the others scan the
# campaign's ended calls and their compliance records.
BREAKDOWNS = (
    ("outcomes", "campaign_outcomes", repository.campaign_outcomes, True),
    ("retry funnel", "retry_funnel", repository.retry_funnel, True),
    ("local hour", "outcomes_by_local_hour", repository.outcomes_by_local_hour, False),
    ("zones", "outcomes_by_zone", repository.outcomes_by_zone, False),
    ("country", "outcomes_by_country", repository.outcomes_by_country, False),
)


@dataclass(frozen=True, slots=True)
class Latency:
    what: str
    runs: int
    p50_ms: float
    p95_ms: float
    max_ms: float


@dataclass(frozen=True, slots=True)
class Export:
    file: str
    rows: int
    megabytes: float
    seconds: float
    rows_per_s: float
    peak_rss_mb: float


def _ms(seconds: list[float], what: str) -> Latency:
    ms = [s * 1000 for s in seconds]
    return Latency(what, len(ms), percentile(ms, 50), percentile(ms, 95), max(ms))


async def _timed(conn: asyncpg.Connection, query: str, *args: Any, runs: int,
                 warm: bool = True) -> list[float]:
    """``runs`` timings, after one untimed run (plan cached, pages in memory) unless the
    caller has just run it (``warm=False``): at 10M contacts a scan takes a minute."""
    if warm:
        await conn.fetch(query, *args)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        await conn.fetch(query, *args)
        times.append(time.perf_counter() - started)
    return times


# ---- the database -------------------------------------------------------------------


async def build(dsn: str, contacts: int, campaigns: int) -> float:
    """Load the database; returns the seconds it took.

    Postgres runs no INSERT ... SELECT in parallel, so the rows are written by
    LOAD_PARTS connections at once, each its share of the contacts (by id) and their
    attempts; the three tables' keys and indexes are built at once too, a connection
    each (a table's in turn), each build with its parallel workers. The counting
    triggers are off meanwhile, and the counters are counted once afterwards."""
    started = time.perf_counter()
    conns = [await db.connect(dsn) for _ in range(max(LOAD_PARTS, len(LOADED)))]
    conn = conns[0]

    async def timed(step: str, work: Any) -> list[str]:
        t0 = time.perf_counter()
        done = await work
        print(f"  {step}: {time.perf_counter() - t0:.0f} s", flush=True)
        return list(done) if isinstance(done, list) else [done]

    async def in_turn(c: asyncpg.Connection, statements: list[str]) -> str:
        status = ""
        for statement in statements:
            status = await c.execute(statement)
        return status

    try:
        for c in conns:
            await c.execute("SET maintenance_work_mem = '512MB'; SET work_mem = '512MB'")
        schema = await conn.fetch(SCHEMA_OF_LOADED, list(LOADED))
        async with conn.transaction():
            await conn.execute("INSERT INTO accounts (sid) VALUES ($1)", ACCOUNT)
            await conn.execute(SIZES, contacts, campaigns)
            await conn.execute(CAMPAIGNS, ACCOUNT)
            await conn.execute(PLACES)
            for item in reversed(schema):
                if item["kind"] == "constraint":
                    await conn.execute(f"ALTER TABLE {item['tab']} DROP CONSTRAINT "
                                       f"IF EXISTS {item['name']}")
                else:
                    await conn.execute(f"DROP INDEX {item['name']}")
            for table in LOADED:
                await conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        for title, statement in (("contacts", CONTACTS),
                                 ("attempts and their compliance records", ATTEMPTS)):
            done = await timed(title, asyncio.gather(
                *(c.execute(statement, part, LOAD_PARTS)
                  for part, c in enumerate(conns[:LOAD_PARTS]))))
            print(f"    {sum(int(status.split()[-1]) for status in done):,} rows",
                  flush=True)
        await conn.execute("SELECT setval(pg_get_serial_sequence('contacts', 'id'), "
                           "(SELECT max(id) FROM contacts))")
        await conn.execute("DROP TABLE bench_sizes, bench_places")
        keys = [[item["create"] for item in schema if item["tab"] == table and item["step"] < 3]
                for table in LOADED]
        await timed("primary keys, unique constraints, indexes (a table per connection)",
                    asyncio.gather(*(in_turn(c, statements)
                                     for c, statements in zip(conns, keys, strict=False))))
        await timed("foreign keys", in_turn(conn, [item["create"] for item in schema
                                                   if item["step"] == 3]))
        for table in LOADED:
            await conn.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
        await timed("counters (rebuild_campaign_counts)",
                    conn.execute("SELECT rebuild_campaign_counts()"))
        await timed("VACUUM ANALYZE", conn.execute("VACUUM ANALYZE"))
    finally:
        for c in conns:
            await c.close()
    return time.perf_counter() - started


async def database(args: Any, contacts: int, pg: Any) -> str:
    """The built database's DSN: a throwaway one, or ``--dsn``'s (built once)."""
    name = f"reports_{contacts}"
    if pg is None and not args.rebuild:
        admin = await asyncpg.connect(args.dsn)
        try:
            exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        finally:
            await admin.close()
        if exists:
            print(f"reusing database {name}")
            return _with_database(args.dsn, name)
    dsn = await fresh_dsn(args, pg, name)
    print(f"building {contacts:,} contacts over {args.campaigns} campaigns", flush=True)
    seconds = await build(dsn, contacts, args.campaigns)
    print(f"built in {seconds:.0f} s", flush=True)
    return dsn


def _with_database(dsn: str, name: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    return urlunsplit(urlsplit(dsn)._replace(path="/" + name))


# ---- what is measured ---------------------------------------------------------------


async def summaries(dsn: str, runs: int) -> tuple[list[Latency], dict[str, dict[str, Any]]]:
    conn = await db.connect(dsn)
    try:
        found: list[Latency] = []
        rows: dict[str, dict[str, Any]] = {}
        for name in ("small", "large"):
            summary = await repository.campaign_summary(conn, name)
            assert summary is not None
            rows[name] = dict(summary)
            found.append(_ms(await _timed(conn, queries.get("campaign_summary"), name,
                                          runs=runs), f"{name}: campaign_summary"))
        rows["all"] = dict(await conn.fetchrow(
            "SELECT sum(contacts)::bigint AS contacts, sum(attempts)::bigint AS attempts "
            "FROM campaign_summary"))
        for name in ("small", "large"):
            campaign_id = rows[name]["campaign_id"]
            found.append(_ms(await _timed(conn, RESTRICTED_SUMMARY, campaign_id, runs=1),
                             f"{name}: scan of its rows (for comparison)"))
        found.append(_ms(await _timed(conn, OLD_SUMMARY, "small", runs=1, warm=False),
                         "small: the view of 0002 (for comparison)"))

    finally:
        await conn.close()
    return found, rows


async def breakdowns(dsn: str, rows: dict[str, dict[str, Any]], runs: int
                     ) -> tuple[list[Latency], dict[str, list[dict[str, Any]]]]:
    """The breakdowns of the large campaign, and the views other tools read."""
    campaign_id = rows["large"]["campaign_id"]
    conn = await db.connect(dsn)
    try:
        found, tables = [], {}
        for name, query, campaign in VIEW_QUERIES:
            value = rows[campaign]["campaign_id"] if "campaign_id" in name else campaign
            found.append(_ms(await _timed(conn, query, value, runs=3),
                             f"{campaign}: view {name}"))
        for what, name, call, counted in BREAKDOWNS:
            tables[what] = [dict(r) for r in await call(conn, campaign_id)]  # the warm run
            found.append(_ms(await _timed(conn, queries.get(name), campaign_id,
                                          runs=runs if counted else 1, warm=False),
                             f"large: {name}"))
    finally:
        await conn.close()
    return found, tables


def export(dsn: str, folder: Path, name: str, suffix: str, *options: str) -> Export:
    """``dialer report NAME --csv FILE [options]`` as an operator runs it; VmHWM
    polled."""
    path = folder / f"{name}{suffix}"
    env = bench_env(DIALER_DATABASE_URL=dsn)
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "dialer.cli", "report", name, "--csv",
                             str(path), *options], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, status_kb(proc.pid, "VmHWM"))
        time.sleep(0.02)
    out, err = proc.communicate()
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"dialer report failed ({proc.returncode}):\n{out}{err}")
    rows = int(out.strip().splitlines()[-1].split()[0])
    size = path.stat().st_size / 1e6
    path.unlink()
    label = f"{path.name} {' '.join(options)}".rstrip()
    return Export(label, rows, size, seconds, rows / seconds, peak / 1024)


async def claims(targets: dict[str, str], rounds: int) -> dict[str, list[float]]:
    """Claim latencies (seconds) of ``rounds`` batches of campaign "large" in each
    database of ``targets`` ({label: dsn}), taken in turn so that the machine's load
    weighs on each alike; the contacts are handed back afterwards."""
    async with contextlib.AsyncExitStack() as stack:
        pools = {label: await stack.enter_async_context(db.open_pool(dsn))
                 for label, dsn in targets.items()}
        campaigns = {}
        for label, pool in pools.items():
            row = await repository.campaign_by_name(pool, "large")
            assert row is not None
            campaigns[label] = Campaign.from_row(row)
        times: dict[str, list[float]] = {label: [] for label in targets}
        attempts: dict[str, list[int]] = {label: [] for label in targets}
        # The first round is not timed: a daemon's planner knows the calling windows
        # of the contacts' places from its earlier claims.
        for round_no in range(rounds + 1):
            for label, pool in pools.items():
                campaign = campaigns[label]
                now = dt.datetime.now(dt.UTC)
                started = time.perf_counter()
                claimed = await repository.claim_due(
                    pool, campaign_id=campaign.id, account_sid=ACCOUNT,
                    limit=CLAIM_BATCH, max_concurrent=None, account_max_concurrent=None,
                    worker_id="bench", now=now, decide=ClaimDecisions(campaign.planner, now),
                    rule_packs=campaign.planner.policy.pack_tags)
                if round_no:
                    times[label].append(time.perf_counter() - started)
                assert len(claimed) == CLAIM_BATCH, f"{label}: only {len(claimed)} were due"
                attempts[label].extend(r["attempt_id"] for r in claimed)
        for label, pool in pools.items():
            await repository.release_unsent(pool, attempts[label])
    return times


async def empty_database(dsn_of: Any, name: str, contacts: int, *, counting: bool = True
                         ) -> str:
    """A database with nothing but one running campaign of pending contacts; without
    ``counting``, with the counting triggers off (what counting costs a claim)."""
    dsn = await dsn_of(name)
    conn = await db.connect(dsn)
    try:
        if not counting:
            await conn.execute("ALTER TABLE contacts DISABLE TRIGGER USER; "
                               "ALTER TABLE call_attempts DISABLE TRIGGER USER")
        await conn.execute("INSERT INTO accounts (sid) VALUES ($1)", ACCOUNT)
        await conn.execute(
            """INSERT INTO campaigns (name, account_sid, from_number, twiml_url, state,
                                      calendar)
               VALUES ('large', $1, '+15005550006', 'https://example.com/twiml', 'running',
                       'mon-sun 00:00-24:00')""", ACCOUNT)
        await conn.execute(
            """INSERT INTO contacts (campaign_id, phone, zones, zone_source, states,
                                     state_sources)
               SELECT (SELECT id FROM campaigns), '+1415' || lpad(i::text, 8, '0'),
                      '{America/Los_Angeles}', 'number', '{CA}', '{number}'
               FROM generate_series(1, $1::int) AS i""", contacts)
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    return dsn


async def fresh_dsn(args: Any, pg: Any, name: str) -> str:
    """A new migrated database: from the throwaway cluster, or made on ``--dsn``."""
    if pg is not None:
        return str(await pg.new_database(name))
    admin = await asyncpg.connect(args.dsn)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    dsn = _with_database(args.dsn, name)
    conn = await db.connect(dsn)
    await db.migrate(conn)
    await conn.close()
    return dsn


# ---- the run ------------------------------------------------------------------------


async def measure(args: Any, contacts: int, pg: Any, folder: Path) -> dict[str, Any]:
    runs = 20 if args.quick else 100
    rounds = 20 if args.quick else 100
    dsn = await database(args, contacts, pg)
    summary_latency, rows = await summaries(dsn, runs)
    breakdown_latency, tables = await breakdowns(dsn, rows, runs)
    exports = [export(dsn, folder, "large", ".csv"), export(dsn, folder, "large", ".csv.gz"),
               export(dsn, folder, "large", ".csv", *DAY)]

    async def dsn_of(name: str) -> str:
        return await fresh_dsn(args, pg, name)

    targets = {
        "empty database": await empty_database(dsn_of, "reports_empty",
                                               CLAIM_BATCH * (rounds + 1)),
        "empty database, counting triggers off": await empty_database(
            dsn_of, "reports_uncounted", CLAIM_BATCH * (rounds + 1), counting=False),
        f"{contacts:,} contacts": dsn,
    }
    claim = [_ms(times, label) for label, times in (await claims(targets, rounds)).items()]
    return {"contacts": contacts, "summary": summary_latency, "campaigns": rows,
            "breakdowns": breakdown_latency, "tables": tables, "exports": exports,
            "claims": claim}


def report(result: dict[str, Any]) -> dict[str, Any]:
    """Print the tables; returns the figures for --json."""
    rows = result["campaigns"]
    print_table("Campaigns measured",
                ["campaign", "contacts", "attempts", "human", "answer rate %"],
                [[n, r["contacts"], r["attempts"], r["human"], float(r["answer_rate_pct"])]
                 for n, r in rows.items() if n != "all"])
    latency_headers = ["query", "runs", "p50 ms", "p95 ms", "max ms"]

    def latency_rows(items: list[Latency]) -> list[list[Any]]:
        return [[x.what, x.runs, x.p50_ms, x.p95_ms, x.max_ms] for x in items]

    print_table(f"Summary latency (goal: < {GOAL_SUMMARY_MS:g} ms whatever the size)",
                latency_headers, latency_rows(result["summary"]))
    print_table("Breakdowns and views, filtered by campaign", latency_headers,
                latency_rows(result["breakdowns"]))
    outcomes = result["tables"]["outcomes"]
    print_table("Outcome breakdown, large", ["outcome", "attempts"],
                [[r["outcome"], r["attempts"]] for r in outcomes])
    print_table("Retry funnel, large", ["attempt", "ended in", "attempts"],
                [[r["attempt_no"], r["ended_in"], r["attempts"]]
                 for r in result["tables"]["retry funnel"]])
    for what, key in (("local hour", "local_hour"), ("zones", "zones"),
                      ("country", "country")):
        print_table(f"Ended calls by {what}, large", [key, "calls", "answered",
                                                      "answer rate %", "human", "machine"],
                    [[r[key], r["calls"], r["answered"], float(r["answer_rate_pct"]),
                      r["human"], r["machine"]] for r in result["tables"][what]])
    exports: list[Export] = result["exports"]
    print_table(f"Export of large: `dialer report large --csv FILE` (goal: >= "
                f"{GOAL_EXPORT_ROWS_PER_S:,} rows/s, peak RSS < {GOAL_EXPORT_RSS_MB:g} MB)",
                ["file", "rows", "MB", "seconds", "rows/s", "peak RSS MB"],
                [[e.file, e.rows, e.megabytes, e.seconds, e.rows_per_s, e.peak_rss_mb]
                 for e in exports])
    claim: list[Latency] = result["claims"]
    ratio = claim[2].p50_ms / claim[0].p50_ms
    print_table(f"Claim latency, batches of {CLAIM_BATCH} (goal: within "
                f"{GOAL_CLAIM_RATIO:g}x of an empty database)",
                latency_headers, latency_rows(claim))
    print(f"claim p50 ratio, {result['contacts']:,} contacts against empty: {ratio:.2f}x")
    summary_worst = max(x.p95_ms for x in result["summary"] if "campaign_summary" in x.what)
    plain = exports[0]
    figures = {
        "contacts": result["contacts"],
        "attempts": rows["all"]["attempts"],
        "summary_p95_ms": summary_worst,
        "summary_goal_met": summary_worst < GOAL_SUMMARY_MS,
        "export_rows": plain.rows,
        "export_rows_per_s": plain.rows_per_s,
        "export_peak_rss_mb": max(e.peak_rss_mb for e in exports),

        "claim_ratio": ratio,
        "claim_goal_met": ratio <= GOAL_CLAIM_RATIO,
        "latencies": [asdict(x) for x in [*result["summary"], *result["breakdowns"], *claim]],
        "exports": [asdict(e) for e in exports],
    }
    return figures


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--contacts", type=int, default=None,
                   help="contacts in the database (default 10,000,000; 200,000 with --quick)")
    p.add_argument("--campaigns", type=int, default=50)
    p.add_argument("--dsn", default=None, metavar="URL",
                   help="a Postgres server to build the database on (kept for reuse)")
    p.add_argument("--rebuild", action="store_true", help="with --dsn: build it again")
    args = p.parse_args()
    contacts = args.contacts or (200_000 if args.quick else 10_000_000)
    if args.campaigns < 3:
        p.error("--campaigns must be at least 3 (large, small and the others)")
    quiet_logs()
    with tempfile.TemporaryDirectory(prefix="dialer-bench-") as folder:
        if args.dsn is not None:
            result = asyncio.run(measure(args, contacts, None, Path(folder)))
        else:
            with throwaway_cluster(durable=not args.no_fsync) as pg:
                result = asyncio.run(measure(args, contacts, pg, Path(folder)))
    figures = report(result)
    write_json(args.json, "reports", args, figures)


if __name__ == "__main__":
    main()
