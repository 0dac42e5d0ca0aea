"""The only module that runs SQL against the dialer's tables.

Each function runs one named statement from ``sql/queries.sql`` and returns plain
records; callers decide transactions by passing a connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Mapping,
    Sequence,
)
from typing import Any

import asyncpg
import structlog

from dialer import db, queries
from dialer.caps import Call, call_seen
from dialer.compliance import ClaimCaps, Decision, Defer, Location, Record, Take
from dialer.contactfile import COPY_COLUMNS

Executor = db.Connection | asyncpg.Pool

log = structlog.get_logger(__name__)

# What a lost or restarting database looks like to asyncpg: retry later, do not crash.
# InternalClientError ("cannot switch to state N; another operation is in progress") is
# what asyncpg raises when the server ends a session in the middle of an operation
# (MagicStack/asyncpg#1069); the connection is not reused.
DATABASE_ERRORS = (
    OSError, TimeoutError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
    asyncpg.exceptions.CannotConnectNowError, asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.InternalClientError,
)
# ... or, besides, a database that answered but refused the statement (a deadlock victim).
DATABASE_FAILURES = (*DATABASE_ERRORS, asyncpg.PostgresError)


async def persist(write: Callable[[], Awaitable[object]], *, what: str) -> None:
    """Run a write that must not be lost, retrying while the database is away.

    Used for the answer to a request already sent: dropping it would leave an
    attempt that needs reconciling for no reason."""
    delay = 0.2
    while True:
        try:
            await write()
            return
        except DATABASE_ERRORS as exc:
            log.warning("write_retrying", what=what, error=repr(exc), retry_in=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


async def list_campaigns(db: Executor) -> list[asyncpg.Record]:
    return list(await db.fetch(queries.get("list_campaigns")))


async def ping(db: Executor) -> None:
    await db.execute(queries.get("ping"))


# ==== accounts (dialer account, the daemon's account runtimes) ====


async def upsert_account(
    db: Executor, sid: str, cps: float, max_concurrent_calls: int | None
) -> None:
    """The default account, with the limits the settings give it."""
    await db.execute(queries.get("upsert_account"), sid, cps, max_concurrent_calls)


async def list_accounts(db: Executor) -> list[asyncpg.Record]:
    return list(await db.fetch(queries.get("list_accounts")))


async def account_by_key(db: Executor, sid_or_label: str) -> asyncpg.Record | None:
    return await db.fetchrow(queries.get("account_by_key"), sid_or_label)


async def insert_account(
    db: Executor, sid: str, *, label: str | None, cps: float,
    max_concurrent_calls: int | None, max_in_flight: int | None,
) -> bool:
    """False when the SID or the label is taken already."""
    row = await db.fetchrow(queries.get("insert_account"), sid, label, cps,
                            max_concurrent_calls, max_in_flight)
    return row is not None


async def update_account(
    db: Executor, sid: str, *, label: str | None, cps: float,
    max_concurrent_calls: int | None, max_in_flight: int | None,
) -> bool:
    """False when the account is gone."""
    row = await db.fetchrow(queries.get("update_account"), sid, label, cps,
                            max_concurrent_calls, max_in_flight)
    return row is not None


async def delete_account(db: Executor, sid: str) -> bool:
    """False when it is gone already or still has campaigns."""
    return await db.fetchrow(queries.get("delete_account"), sid) is not None


async def account_campaign_counts(db: Executor, sid: str) -> dict[str, int]:
    rows = await db.fetch(queries.get("account_campaign_counts"), sid)
    return {row["state"]: int(row["campaigns"]) for row in rows}


async def pause_account(db: Executor, sid: str, reason: str) -> list[str]:
    """Pause every running campaign of the account with ``reason``; their names."""
    rows = await db.fetch(queries.get("pause_account_campaigns"), sid, reason)
    return [row["name"] for row in rows]


async def campaigns_for_account(db: Executor, account_sid: str) -> list[asyncpg.Record]:
    return list(await db.fetch(queries.get("running_campaigns"), account_sid))


async def reserve_slots(
    db: Executor, account_sid: str, count: int, spacing: float
) -> float:
    """Reserve ``count`` send slots ``spacing`` s apart from the account's schedule:
    the first slot, epoch seconds of the database."""
    first = await db.fetchval(queries.get("reserve_slots"), account_sid, count, spacing)
    if first is None:
        raise LookupError(f"account {account_sid} is not in the database")
    return float(first)


async def database_clock(db: Executor) -> float:
    """The database's clock, epoch seconds."""
    return float(await db.fetchval(queries.get("database_clock")))


# Claims of one campaign are serialised (per campaign, across processes) so that the
# max-concurrent counts they check cannot be raced past.
_CLAIM_LOCK_SPACE = 0x636C61  # "cla"
# Writes to one do-not-call list (key: campaign id, 0 for the global list) take turns, so
# that two adds of one number at once (an opt-out, an operator, an import) keep one
# active entry: the second statement starts after the first committed, and sees it.
_DNC_LOCK_SPACE = 0x646E63  # "dnc"


DecideRow = Callable[[asyncpg.Record], tuple[Decision, Location | None]]


def _joined(items: Sequence[str]) -> str:
    return " ".join(items)


async def claim_due(
    pool: asyncpg.Pool,
    *,
    campaign_id: int,
    account_sid: str,
    limit: int,
    max_concurrent: int | None,
    account_max_concurrent: int | None,
    worker_id: str,
    now: dt.datetime,
    decide: DecideRow,
    caps: ClaimCaps | None = None,
    rule_packs: Sequence[str],
) -> list[asyncpg.Record]:
    """Claim up to ``limit`` due contacts in one transaction that commits before any
    request is sent. ``decide(row)`` says whether each may be called now (and gives
    the location it worked out for a contact that had none stored); then the numbers of
    those it allows are locked (lock_numbers: this is what makes the cap check atomic
    with the attempt insert across campaigns and processes), their recent calls read,
    and ``caps`` says whether each call stays under every cap (None: no cap, the
    shared subject; the number lock is taken all the same). Taken contacts get their
    attempt row and its compliance record, the others are deferred or skipped."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", _CLAIM_LOCK_SPACE, campaign_id)
        if max_concurrent is not None or account_max_concurrent is not None:
            counts = await conn.fetchrow(queries.get("open_attempts"), campaign_id, account_sid)
            assert counts is not None
            if max_concurrent is not None:
                limit = min(limit, max_concurrent - counts["campaign_open"])
            if account_max_concurrent is not None:
                limit = min(limit, account_max_concurrent - counts["account_open"])
        if limit <= 0:
            return []
        due = await conn.fetch(queries.get("select_due_contacts"), campaign_id, now, limit,
                               None if caps is None else caps.policy.subject_column)
        skip: list[tuple[int, str]] = []
        defer: list[tuple[int, dt.datetime]] = []
        located: list[tuple[int, Location]] = []
        allowed: list[tuple[asyncpg.Record, Record]] = []
        for row in due:
            if row["on_dnc"]:
                skip.append((row["id"], "dnc"))
                continue
            decision, fresh = decide(row)
            if fresh is not None:
                located.append((row["id"], fresh))
            if isinstance(decision, Take):
                allowed.append((row, decision.record))
            elif isinstance(decision, Defer):
                defer.append((row["id"], decision.at))
            else:
                skip.append((row["id"], decision.reason))
        take: list[tuple[int, Record]] = []
        if allowed:
            phones = [row["phone"] for row, _ in allowed]
            await conn.execute(queries.get("lock_numbers"), phones)
            calls = (await _recent_calls(conn, phones, caps.since)
                     if caps is not None and caps.counts else {})
            for row, record in allowed:
                checked = record if caps is None else caps(
                    record, row["subject_value"], calls.get(row["phone"], ()))
                if isinstance(checked, dt.datetime):
                    defer.append((row["id"], checked))
                else:
                    take.append((row["id"], checked))
        if located:
            await conn.execute(queries.get("store_locations"), *_columns(
                (i, _joined(loc.zones), loc.zone_source, _joined(loc.states),
                 _joined(loc.state_sources)) for i, loc in located))
        if skip:
            await conn.execute(queries.get("skip_contacts"), *_columns(skip))
        if defer:
            await conn.execute(queries.get("defer_contacts"), *_columns(defer))
        if not take:
            return []
        (ids, zones, zone_sources, states, state_sources, local_times, rules, until, subjects,
         counted) = _columns(
            (i, _joined(r.location.zones), r.location.zone_source, _joined(r.location.states),
             _joined(r.location.state_sources), _joined(r.local_times), _joined(r.rules),
             r.open_until, r.subject, _joined(r.caps)) for i, r in take)
        return list(await conn.fetch(
            queries.get("claim_contacts"), ids, worker_id, now, list(rule_packs), zones,
            zone_sources, states, state_sources, local_times, rules, until, subjects, counted))


async def _recent_calls(
    conn: Executor, phones: Sequence[str], since: dt.datetime
) -> dict[str, list[Call]]:
    calls: dict[str, list[Call]] = {}
    for row in await conn.fetch(queries.get("recent_calls"), list(phones), since):
        calls.setdefault(row["phone"], []).append(call_seen(
            at=row["at"], subject=row["subject"], state=row["state"], outcome=row["outcome"],
            final_at=row["final_at"]))
    return calls


async def recent_calls(db: Executor, phone: str, since: dt.datetime) -> list[Call]:
    """The calls to one number since ``since`` that count against caps (`dialer why`)."""
    return (await _recent_calls(db, [phone], since)).get(phone, [])


def _columns(rows: Iterable[tuple[Any, ...]]) -> list[list[Any]]:
    """Rows as columns, for unnest() parameters."""
    return [list(column) for column in zip(*rows, strict=True)]


async def release_unsent(
    db: Executor, attempt_ids: Sequence[int], *, due_at: dt.datetime | None = None,
    skip_reason: str | None = None,
) -> None:
    """Hand back claims never sent: pending again (due at ``due_at`` when given), or
    skipped with ``skip_reason``."""
    await db.execute(queries.get("release_unsent"), list(attempt_ids), due_at, skip_reason)


async def held_on_dnc(db: Executor, attempt_ids: Sequence[int]) -> list[asyncpg.Record]:
    """(id, phone) of the claimed, unsent attempts whose number is now on a list."""
    return list(await db.fetch(queries.get("held_on_dnc"), list(attempt_ids)))


async def reject_attempt(db: Executor, attempt_id: int, *, code: int | None, message: str) -> None:
    await db.execute(queries.get("reject_attempt"), attempt_id, code, message)


async def mark_unknown(db: Executor, attempt_id: int, *, reason: str) -> None:
    await db.execute(queries.get("mark_unknown"), attempt_id, reason)


async def set_campaign_state(
    db: Executor, campaign_id: int, state: str, from_states: Sequence[str]
) -> bool:
    """Guarded transition; True when it happened. Wakes every dialer process."""
    row = await db.fetchrow(
        queries.get("set_campaign_state"), campaign_id, state, list(from_states)
    )
    return row is not None


async def pause_campaign(db: Executor, campaign_id: int, reason: str) -> bool:
    """Pause a running campaign, saying why; False when it was not running."""
    row = await db.fetchrow(queries.get("pause_campaign_with_reason"), campaign_id, reason)
    return row is not None


async def refuse_and_pause_campaign(
    pool: asyncpg.Pool, attempt_id: int, *, campaign_id: int, code: int | None, message: str,
    reason: str,
) -> bool:
    """In one transaction: the refused attempt is void and its contact pending again,
    and the campaign pauses with ``reason``. False when it was paused already."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(queries.get("refuse_attempt"), attempt_id, code, message)
        return await pause_campaign(conn, campaign_id, reason)


async def refuse_and_pause_account(
    pool: asyncpg.Pool, attempt_id: int, *, account_sid: str, code: int | None, message: str,
    reason: str,
) -> list[str]:
    """As ``refuse_and_pause_campaign`` for every running campaign of the account;
    returns the names of the campaigns it paused."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(queries.get("refuse_attempt"), attempt_id, code, message)
        rows = await conn.fetch(queries.get("pause_account_campaigns"), account_sid, reason)
    return [row["name"] for row in rows]


async def complete_finished_campaigns(db: Executor, account_sid: str) -> list[asyncpg.Record]:
    return list(await db.fetch(queries.get("complete_finished_campaigns"), account_sid))


async def start_scheduled_campaigns(db: Executor, account_sid: str) -> list[asyncpg.Record]:
    return list(await db.fetch(queries.get("start_scheduled_campaigns"), account_sid))


async def register_worker(db: Executor, worker_id: str, hostname: str, pid: int) -> None:
    await db.execute(queries.get("register_worker"), worker_id, hostname, pid)


async def heartbeat(db: Executor, worker_id: str) -> bool:
    """False when this worker was declared dead (its row deleted) meanwhile."""
    return await db.fetchval(queries.get("heartbeat"), worker_id) is not None


async def deregister_worker(db: Executor, worker_id: str) -> None:
    await db.execute(queries.get("deregister_worker"), worker_id)


async def recover_dead_workers(pool: asyncpg.Pool, dead_after: float) -> int:
    """Forget silent workers; their unanswered attempts become unknown. Returns how many."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.fetch(queries.get("delete_dead_workers"), dead_after)
        return len(await conn.fetch(queries.get("orphan_attempts_unknown")))


async def mark_live(
    db: Executor, attempt_ids: Sequence[int], call_sids: Sequence[str],
    queue_times_ms: Sequence[int | None], sent_at: Sequence[dt.datetime],
) -> None:
    """Record a batch of Create Call answers (``dialer.live_buffer``)."""
    await db.execute(queries.get("mark_live"), list(attempt_ids), list(call_sids),
                     list(queue_times_ms), list(sent_at))


async def unknown_attempts(
    db: Executor, account_sid: str, older_than: dt.datetime, limit: int = 100
) -> list[asyncpg.Record]:
    return list(await db.fetch(queries.get("unknown_attempts"), older_than, account_sid, limit))


async def sid_taken(db: Executor, call_sid: str) -> bool:
    return bool(await db.fetchval(queries.get("sid_taken"), call_sid))


async def void_attempt(db: Executor, attempt_id: int, now: dt.datetime) -> None:
    await db.execute(queries.get("void_attempt"), attempt_id, now)


async def stale_live_attempts(
    db: Executor, account_sid: str, now: dt.datetime, older_than: dt.datetime, limit: int = 100
) -> list[asyncpg.Record]:
    return list(
        await db.fetch(queries.get("stale_live_attempts"), now, older_than, account_sid, limit)
    )


async def requested_attempts_of_worker(db: Executor, worker_id: str) -> list[int]:
    return [r["id"] for r in await db.fetch(queries.get("requested_attempts_of_worker"),
                                            worker_id)]


async def live_calls_of_worker(db: Executor, worker_id: str) -> int:
    return int(await db.fetchval(queries.get("live_calls_of_worker"), worker_id))


async def live_calls_by_account(db: Executor, worker_id: str) -> dict[str, int]:
    rows = await db.fetch(queries.get("live_calls_of_worker_by_account"), worker_id)
    return {row["account_sid"]: int(row["calls"]) for row in rows}


async def attempts_made(db: Executor, campaign_id: int) -> int:
    return int(await db.fetchval(queries.get("attempts_made"), campaign_id))


async def campaign_state(db: Executor, campaign_id: int) -> str | None:
    state = await db.fetchval(queries.get("campaign_state"), campaign_id)
    return None if state is None else str(state)


# ==== the outcome recorder (one group-commit batch, in its transaction) ====


async def campaign_by_id(db: Executor, campaign_id: int) -> asyncpg.Record | None:
    return await db.fetchrow(queries.get("campaign_by_id"), campaign_id)


async def lock_attempts(conn: db.Connection, attempt_ids: Sequence[int],
                        call_sids: Sequence[str]) -> list[asyncpg.Record]:
    """The attempts named by id or by Call SID, with their contacts, locked (in the
    one order every writer takes: see tests/test_lock_order.py)."""
    return list(await conn.fetch(queries.get("lock_attempts"), list(attempt_ids),
                                 list(call_sids)))


async def insert_events(conn: db.Connection, columns: Sequence[Sequence[Any]]
                        ) -> list[asyncpg.Record]:
    """Store raw events once; returns the keys of those that were new."""
    return list(await conn.fetch(queries.get("insert_events"), *map(list, columns)))


async def contacts_in_call(conn: db.Connection, contact_ids: Sequence[int]) -> None:
    await conn.execute(queries.get("contacts_in_call"), list(contact_ids))


async def update_contact_outcomes(conn: db.Connection,
                                  columns: Sequence[Sequence[Any]]) -> None:
    await conn.execute(queries.get("update_contact_outcomes"), *map(list, columns))


async def update_attempts(conn: db.Connection, columns: Sequence[Sequence[Any]]) -> None:
    await conn.execute(queries.get("update_attempts"), *map(list, columns))


# ==== operator commands: campaigns, import, do-not-call ====


async def campaign_by_name(db: Executor, name: str) -> asyncpg.Record | None:
    return await db.fetchrow(queries.get("campaign_by_name"), name)


_CAMPAIGN_COLUMNS = (
    "from_number", "twiml_url", "twiml", "weight", "max_concurrent", "ring_timeout",
    "amd_mode", "amd_async", "machine_policy", "unknown_is_machine", "retry_policy",
    "calendar", "blackout_dates", "start_at", "end_at", "last_call_margin", "rule_packs",
    "default_timezone", "caps", "subject", "subject_column", "quiet_after_human",
    "opt_out_digit", "opt_out_scope", "opt_out_message",
)


async def insert_campaign(
    db: Executor, row: Mapping[str, object], account_sid: str
) -> int | None:
    """Insert a campaign (columns from ``CampaignSpec.to_row``); None if the name is taken."""
    values = [row[column] for column in _CAMPAIGN_COLUMNS]
    campaign_id = await db.fetchval(
        queries.get("insert_campaign"), row["name"], account_sid, *values
    )
    return None if campaign_id is None else int(campaign_id)


async def update_campaign(db: Executor, campaign_id: int, row: Mapping[str, object]) -> bool:
    """Rewrite a campaign's settings and wake the dialers; False if it is gone."""
    values = [row[column] for column in _CAMPAIGN_COLUMNS]
    return await db.fetchrow(queries.get("update_campaign"), campaign_id, *values) is not None


async def contact_for_why(
    db: Executor, campaign_id: int, phone: str, *, at: dt.datetime, subject_column: str | None
) -> asyncpg.Record | None:
    return await db.fetchrow(queries.get("contact_for_why"), campaign_id, phone, at,
                             subject_column)


async def campaign_contact_counts(db: Executor, campaign_id: int) -> dict[str, int]:
    rows = await db.fetch(queries.get("campaign_contact_counts"), campaign_id)
    return {row["state"]: int(row["contacts"]) for row in rows}


# Contact imports take turns per campaign (lock_campaign_imports).
_IMPORT_LOCK_SPACE = 0x696D70  # "imp"


async def lock_campaign_imports(conn: db.Connection, campaign_id: int, *, wait: bool) -> bool:
    """Take the campaign's import lock for this session; without ``wait``, False when
    another import holds it."""
    if wait:
        await conn.execute(queries.get("wait_campaign_imports"), _IMPORT_LOCK_SPACE, campaign_id)
        return True
    return bool(await conn.fetchval(queries.get("lock_campaign_imports"), _IMPORT_LOCK_SPACE,
                                    campaign_id))


async def unlock_campaign_imports(conn: db.Connection, campaign_id: int) -> None:
    await conn.execute(queries.get("unlock_campaign_imports"), _IMPORT_LOCK_SPACE, campaign_id)


async def campaign_has_contacts(conn: db.Connection, campaign_id: int) -> bool:
    return bool(await conn.fetchval(queries.get("campaign_has_contacts"), campaign_id))


async def reserve_contact_ids(conn: db.Connection, count: int) -> list[str]:
    """``count`` new contact ids, ascending, as text (they go into COPY lines)."""
    text = await conn.fetchval(queries.get("reserve_contact_ids"), count)
    return str(text).split("\n")


async def import_dnc_listed(conn: db.Connection, campaign_id: int, phones: list[str]) -> set[str]:
    """Which of ``phones`` campaign ``campaign_id`` must not call."""
    rows = await conn.fetch(queries.get("import_dnc_listed"), campaign_id, phones)
    return {row[0] for row in rows}


async def _copy_data(lines: bytes) -> AsyncIterator[bytes]:
    """COPY data in one piece. asyncpg would take bytes for a path and read a file
    object through a thread (each call leaving a class behind for the cycle collector,
    a batch's text with it)."""
    yield lines


async def copy_contacts(conn: db.Connection, lines: bytes) -> int:
    """COPY lines of new contacts straight into ``contacts``: one statement, so all or
    nothing. Returns how many; UniqueViolationError when a number is there already."""
    status = await conn.copy_to_table("contacts", source=_copy_data(lines),
                                      columns=COPY_COLUMNS, format="text")
    return int(status.split()[-1])


async def create_import_staging(conn: db.Connection) -> None:
    await conn.execute(queries.get("create_import_staging"))


async def merge_contacts(conn: db.Connection, campaign_id: int, lines: bytes) -> tuple[int, int]:
    """COPY lines into the staging table and merge them into the campaign, in one
    transaction: a batch is in or out, never half. Returns (made pending: new, or
    skipped for their location and given one now; stored as skipped for do-not-call).
    Without JIT: compiling the merge costs more than it saves at this size."""
    async with conn.transaction():
        await conn.execute(queries.get("merge_without_jit"))
        await conn.copy_to_table("dialer_import_batch", source=_copy_data(lines),
                                 columns=COPY_COLUMNS, format="text")
        row = await conn.fetchrow(queries.get("merge_import_batch"))
        requeued = await conn.fetchval(queries.get("requeue_relocated"), campaign_id)
    assert row is not None
    return int(row["loaded"]) + int(requeued), int(row["dnc"])


async def requeue_location_skips(db: Executor, campaign_id: int) -> int:
    """Contacts skipped for their location are decided again; returns how many."""
    status = await db.execute(queries.get("requeue_location_skips"), campaign_id)
    return int(status.split()[-1])


async def redecide_waiting(db: Executor, campaign_id: int) -> int:
    """Contacts deferred to a later instant are due now (their claim decides again);
    returns how many."""
    status = await db.execute(queries.get("redecide_waiting"), campaign_id)
    return int(status.split()[-1])


async def dnc_add(
    db: Executor, phone: str, campaign_id: int | None, reason: str | None, *,
    source: str = "api", expires_at: dt.datetime | None = None,
    origin_campaign_id: int | None = None, call_sid: str | None = None,
) -> tuple[bool, int]:
    """Put a number on a list; (whether the entry is new, contacts skipped because of
    it). Wakes every dispatcher, which stops calls it claimed but has not sent. In a
    transaction of its own, or the caller's (the list stays locked until it ends)."""
    async with _connection(db) as conn, conn.transaction():
        await _lock_dnc_list(conn, campaign_id)
        row = await conn.fetchrow(queries.get("dnc_add"), phone, campaign_id, reason, source,
                                  expires_at, origin_campaign_id, call_sid)
    assert row is not None
    return bool(row["added"]), int(row["skipped"])


@contextlib.asynccontextmanager
async def _connection(executor: Executor) -> AsyncIterator[db.Connection]:
    """The connection given, or one of the pool's for the block."""
    if isinstance(executor, asyncpg.Pool):
        async with executor.acquire() as conn:
            yield conn
    else:
        yield executor


async def _lock_dnc_list(conn: db.Connection, campaign_id: int | None) -> None:
    """Until the transaction ends (see _DNC_LOCK_SPACE)."""
    await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", _DNC_LOCK_SPACE,
                       campaign_id or 0)


async def dnc_remove(
    db: Executor, phone: str, campaign_id: int | None, *, by: str, reason: str | None = None
) -> bool:
    """Mark the number's entries on one list removed, by ``by``; False if it had none."""
    return await db.fetchrow(queries.get("dnc_remove"), phone, campaign_id, by,
                             reason) is not None


async def dnc_list(
    db: Executor, campaign_id: int | None, *, source: str | None = None,
    state: str | None = None, origin_campaign_id: int | None = None,
) -> list[asyncpg.Record]:
    return list(await db.fetch(queries.get("dnc_list"), campaign_id, source, state,
                               origin_campaign_id))


async def create_dnc_staging(conn: db.Connection) -> None:
    await conn.execute(queries.get("create_dnc_staging"))


async def merge_dnc_batch(
    conn: db.Connection, numbers: Sequence[tuple[str, dt.datetime | None]],
    campaign_id: int | None, reason: str | None, *, expires_at: dt.datetime | None = None,
) -> tuple[int, int, int]:
    """COPY (number, expiry) pairs into the staging table and add them to a list in one
    transaction (``expires_at`` for those without one). Returns (distinct numbers in the
    batch, new entries, contacts skipped)."""
    async with conn.transaction():
        await _lock_dnc_list(conn, campaign_id)
        await conn.execute("SET LOCAL dialer.dnc_bulk = 'on'")  # see trigger dnc_listed
        await conn.copy_records_to_table(
            "dialer_dnc_staging", records=numbers, columns=("phone", "expires_at")
        )
        row = await conn.fetchrow(queries.get("merge_dnc_batch"), campaign_id, reason,
                                  expires_at)
    assert row is not None
    return int(row["distinct_numbers"]), int(row["added"]), int(row["skipped"])


async def record_opt_out(
    pool: asyncpg.Pool, attempt_id: int, call_sid: str, decide: Callable[[Any], bool],
) -> asyncpg.Record | None:
    """In one transaction: the attempt a Gather action names (with its campaign's opt-out
    settings, see opt_out_target), and when ``decide(row)`` says the keys pressed opt
    out, the number on the do-not-call list of the campaign's scope (source opt-out, with
    the campaign and the call) and the attempt's outcome ``opted_out``. None when the
    attempt is unknown or belongs to another call."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(queries.get("opt_out_target"), attempt_id)
        if row is None or row["call_sid"] not in (None, call_sid) or (
                row["call_sid"] is None and row["state"] not in ("requested", "unknown")):
            return None
        if decide(row):
            scope = None if row["opt_out_scope"] == "global" else row["campaign_id"]
            await dnc_add(conn, row["phone"], scope, "opted out during the call",
                          source="opt-out", origin_campaign_id=row["campaign_id"],
                          call_sid=call_sid)
            await conn.execute(queries.get("mark_opted_out"), attempt_id)
        return row


# ==== dialer check ====


async def campaigns_to_check(db: Executor, account_sid: str | None) -> list[asyncpg.Record]:
    return list(await db.fetch(queries.get("campaigns_to_check"), account_sid))


async def sample_contact(db: Executor, campaign_id: int) -> asyncpg.Record | None:
    return await db.fetchrow(queries.get("sample_contact"), campaign_id)


async def live_workers(db: Executor, within_seconds: float) -> set[str]:
    return {row["id"] for row in await db.fetch(queries.get("live_workers"), within_seconds)}


async def recent_pacing(
    db: Executor, account_sid: str, since: dt.datetime, queued_ms: int
) -> asyncpg.Record:
    row = await db.fetchrow(queries.get("recent_pacing"), account_sid, since, queued_ms)
    assert row is not None
    return row


async def contacts_without_zone(db: Executor, campaign_id: int) -> int:
    return int(await db.fetchval(queries.get("contacts_without_zone"), campaign_id))


# ==== reports ====


async def campaign_summary(db: Executor, name: str) -> asyncpg.Record | None:
    """The summary row of a campaign (columns of the campaign_summary view), or None."""
    return await db.fetchrow(queries.get("campaign_summary"), name)


async def campaign_outcomes(db: Executor, campaign_id: int) -> list[asyncpg.Record]:
    """(outcome, attempts) of a campaign, most frequent first."""
    return list(await db.fetch(queries.get("campaign_outcomes"), campaign_id))


async def retry_funnel(db: Executor, campaign_id: int) -> list[asyncpg.Record]:
    """(attempt_no, ended_in, attempts): what each attempt number of a campaign ended in."""
    return list(await db.fetch(queries.get("retry_funnel"), campaign_id))


async def outcomes_by_local_hour(db: Executor, campaign_id: int) -> list[asyncpg.Record]:
    """A campaign's ended calls by the recipient's local hour (None: zones disagree)."""
    return list(await db.fetch(queries.get("outcomes_by_local_hour"), campaign_id))


async def outcomes_by_zone(db: Executor, campaign_id: int) -> list[asyncpg.Record]:
    """A campaign's ended calls by the zones the contact may be in."""
    return list(await db.fetch(queries.get("outcomes_by_zone"), campaign_id))


async def outcomes_by_country(db: Executor, campaign_id: int) -> list[asyncpg.Record]:
    """A campaign's ended calls by the country of the contact's zones."""
    return list(await db.fetch(queries.get("outcomes_by_country"), campaign_id))


async def attempt_span(
    db: Executor, campaign_id: int
) -> tuple[dt.datetime | None, dt.datetime | None, dt.datetime | None]:
    """When a campaign's first and last attempts were requested, and when its last
    call ended (None: no attempt, no call ended)."""
    row = await db.fetchrow(queries.get("attempt_span"), campaign_id)
    assert row is not None  # an aggregate always answers one row
    return row["first_at"], row["last_at"], row["last_final_at"]


async def attempts_over_time(
    db: Executor, campaign_id: int, bucket_seconds: int
) -> list[asyncpg.Record]:
    """(bucket, ended_in, attempts): a campaign's attempts by request time and end."""
    return list(await db.fetch(queries.get("attempts_over_time"), campaign_id,
                               float(bucket_seconds)))


async def sends_over_time(
    db: Executor, campaign_id: int, bucket_seconds: int, since: dt.datetime,
    until: dt.datetime,
) -> list[asyncpg.Record]:
    """(bucket, campaign_sent, account_sent, busiest_second, account_cps) in [since, until)."""
    return list(await db.fetch(queries.get("sends_over_time"), campaign_id,
                               float(bucket_seconds), since, until))


async def queue_time_over_time(
    db: Executor, campaign_id: int, bucket_seconds: int
) -> list[asyncpg.Record]:
    """(bucket, calls, median_ms, p95_ms, max_ms) of Twilio's queue_time."""
    return list(await db.fetch(queries.get("queue_time_over_time"), campaign_id,
                               float(bucket_seconds)))


async def calls_by_rule_pack(db: Executor, campaign_id: int) -> list[asyncpg.Record]:
    """(rule_pack, attempts): the rule packs a campaign's attempts obeyed."""
    return list(await db.fetch(queries.get("calls_by_rule_pack"), campaign_id))


async def contacts_waiting(
    db: Executor, campaign_id: int, now: dt.datetime
) -> list[asyncpg.Record]:
    """(why, contacts): a campaign's contacts not called at ``now``, and why."""
    return list(await db.fetch(queries.get("contacts_waiting"), campaign_id, now))


async def forecast_contacts(db: Executor, campaign_id: int) -> list[asyncpg.Record]:
    """(place, attempts, contacts, on_dnc): a campaign's contacts still to call."""
    return list(await db.fetch(queries.get("forecast_contacts"), campaign_id))


async def account_sharing(db: Executor, campaign_id: int) -> tuple[float | None, int]:
    """The stored CPS of a campaign's account (None: unknown yet) and the weight of the
    account's other running campaigns."""
    row = await db.fetchrow(queries.get("account_sharing"), campaign_id)
    assert row is not None  # the caller has the campaign
    return row["cps"], int(row["other_weight"])


CopySink = Callable[[bytes], Coroutine[Any, Any, None]]


async def copy_attempts(
    pool: asyncpg.Pool,
    sink: CopySink,
    campaign_id: int,
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> int:
    """Stream a campaign's attempts requested in [since, until) to ``sink`` as CSV with
    a header (COPY ... TO STDOUT: the server formats, ``sink`` gets the bytes as they
    come, nothing is held). Returns how many rows were sent.

    Times are written in UTC whatever the server's or the session's settings, so an
    export of the same rows is the same bytes."""
    failed: list[Exception] = []
    async with pool.acquire() as conn:

        async def guarded(chunk: bytes) -> None:
            # When its sink raises, asyncpg cancels the COPY and waits for the server
            # to acknowledge; a COPY the server had already finished never does, and
            # the export hung. The connection is closed instead (the pool makes a new
            # one) and the sink's error is what the caller gets.
            try:
                await sink(chunk)
            except Exception as exc:
                failed.append(exc)
                conn.terminate()

        try:
            async with conn.transaction(readonly=True):
                await conn.execute(queries.get("export_session"))
                status = await conn.copy_from_query(
                    queries.get("export_attempts").rstrip(";"), campaign_id, since, until,
                    output=guarded, format="csv", header=True,
                )
        except Exception:
            if failed:
                raise failed[0] from None
            raise
    return int(status.split()[-1])
