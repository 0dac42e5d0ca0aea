"""The schema's constraints make bad states impossible, whatever the code does."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

import asyncpg
import pytest

SID = "AC" + "0" * 32


async def _campaign(conn: asyncpg.Connection, name: str = "c1") -> int:
    await conn.execute("INSERT INTO accounts (sid) VALUES ($1) ON CONFLICT DO NOTHING", SID)
    campaign_id: int = await conn.fetchval(
        """INSERT INTO campaigns (name, account_sid, from_number, twiml_url)
           VALUES ($1, $2, '+15005550006', 'https://example.com/t.xml') RETURNING id""",
        name, SID,
    )
    return campaign_id


async def _contact(conn: asyncpg.Connection, campaign_id: int, phone: str = "+14155550100") -> int:
    contact_id: int = await conn.fetchval(
        "INSERT INTO contacts (campaign_id, phone) VALUES ($1, $2) RETURNING id",
        campaign_id, phone,
    )
    return contact_id


Bad = Callable[[asyncpg.Connection, int, int], Awaitable[object]]

BAD_WRITES: dict[str, Bad] = {
    "contact state": lambda c, cid, kid: c.execute(
        "UPDATE contacts SET state = 'ringing' WHERE id = $1", kid),
    "campaign state": lambda c, cid, kid: c.execute(
        "UPDATE campaigns SET state = 'sleeping' WHERE id = $1", cid),
    "number twice": lambda c, cid, kid: c.execute(
        "INSERT INTO contacts (campaign_id, phone) VALUES ($1, '+14155550100')", cid),
    "contact of no campaign": lambda c, cid, kid: c.execute(
        "INSERT INTO contacts (campaign_id, phone) VALUES ($1 + 1000, '+14155550101')", cid),
    "contacts copied into no campaign": lambda c, cid, kid: c.copy_records_to_table(
        "contacts", records=[(cid, "+14155550101"), (cid + 1000, "+14155550102")],
        columns=("campaign_id", "phone")),
    "contact moved to no campaign": lambda c, cid, kid: c.execute(
        "UPDATE contacts SET campaign_id = campaign_id + 1000 WHERE id = $1", kid),
    "not e164": lambda c, cid, kid: c.execute(
        "INSERT INTO contacts (campaign_id, phone) VALUES ($1, '4155550101')", cid),
    "both twiml sources": lambda c, cid, kid: c.execute(
        "UPDATE campaigns SET twiml = '<Response/>' WHERE id = $1", cid),
    "no twiml source": lambda c, cid, kid: c.execute(
        "UPDATE campaigns SET twiml_url = NULL WHERE id = $1", cid),
    "schedule backwards": lambda c, cid, kid: c.execute(
        "UPDATE campaigns SET start_at = now(), end_at = now() - interval '1 day' WHERE id = $1",
        cid),
    "empty calendar": lambda c, cid, kid: c.execute(
        "UPDATE campaigns SET calendar = '' WHERE id = $1", cid),
    "margin too long": lambda c, cid, kid: c.execute(
        "UPDATE campaigns SET last_call_margin = 7200 WHERE id = $1", cid),
    "zones without source": lambda c, cid, kid: c.execute(
        "UPDATE contacts SET zones = '{UTC}' WHERE id = $1", kid),
    "states without sources": lambda c, cid, kid: c.execute(
        "UPDATE contacts SET states = '{OK}', state_sources = '{}' WHERE id = $1", kid),
    "record without a local time per zone": lambda c, cid, kid: c.execute(
        """WITH a AS (INSERT INTO call_attempts (contact_id, campaign_id, attempt_no, requested_at)
                      VALUES ($1, $2, 1, now()) RETURNING id)
           INSERT INTO attempt_compliance (attempt_id, decided_at, zones, zone_source, states,
                                           state_sources, local_times, rule_packs, rules,
                                           open_until)
           SELECT id, now(), '{UTC,Europe/Paris}', 'number', '{}', '{}',
                  '{2026-01-01T00:00:00+00:00}', '{}', '{calendar}', now() FROM a""", kid, cid),
    "dialing without owner": lambda c, cid, kid: c.execute(
        "UPDATE contacts SET state = 'dialing' WHERE id = $1", kid),
    "failed without reason": lambda c, cid, kid: c.execute(
        "UPDATE contacts SET state = 'failed' WHERE id = $1", kid),
    "second open attempt": lambda c, cid, kid: c.execute(
        """INSERT INTO call_attempts (contact_id, campaign_id, attempt_no, requested_at)
           VALUES ($1, $2, 1, now()), ($1, $2, 2, now())""", kid, cid),
    "attempt number reused": lambda c, cid, kid: c.execute(
        """INSERT INTO call_attempts (contact_id, campaign_id, attempt_no, requested_at, state)
           VALUES ($1, $2, 1, now(), 'rejected'), ($1, $2, 1, now(), 'rejected')""", kid, cid),
    "live without sid": lambda c, cid, kid: c.execute(
        """INSERT INTO call_attempts (contact_id, campaign_id, attempt_no, requested_at, state)
           VALUES ($1, $2, 1, now(), 'live')""", kid, cid),
    "bad answered_by": lambda c, cid, kid: c.execute(
        """INSERT INTO call_attempts (contact_id, campaign_id, attempt_no, requested_at,
                                      answered_by) VALUES ($1, $2, 1, now(), 'robot')""", kid, cid),
    "event twice": lambda c, cid, kid: c.execute(
        """INSERT INTO call_events (call_sid, source, sequence_number, params)
           VALUES ('CA1', 'call-progress-events', 1, '{}'),
                  ('CA1', 'call-progress-events', 1, '{}')"""),
    "amd event twice": lambda c, cid, kid: c.execute(
        """INSERT INTO call_events (call_sid, source, params)
           VALUES ('CA1', 'amd', '{}'), ('CA1', 'amd', '{}')"""),
    "dnc source unknown": lambda c, cid, kid: c.execute(
        "INSERT INTO dnc_numbers (phone, source) VALUES ('+14155550100', 'rumour')"),
    "dnc removed without who": lambda c, cid, kid: c.execute(
        "INSERT INTO dnc_numbers (phone, removed_at) VALUES ('+14155550100', now())"),
    "dnc call sid malformed": lambda c, cid, kid: c.execute(
        "INSERT INTO dnc_numbers (phone, call_sid) VALUES ('+14155550100', 'CA1')"),
    "opt-out key of two keys": lambda c, cid, kid: c.execute(
        "UPDATE campaigns SET opt_out_digit = '99' WHERE id = $1", cid),
    "opt-out scope unknown": lambda c, cid, kid: c.execute(
        "UPDATE campaigns SET opt_out_scope = 'household' WHERE id = $1", cid),
    "quiet period of a second": lambda c, cid, kid: c.execute(
        "UPDATE campaigns SET quiet_after_human = 1 WHERE id = $1", cid),
    "subject with a space": lambda c, cid, kid: c.execute(
        "UPDATE campaigns SET subject = 'a b' WHERE id = $1", cid),
    "cps zero": lambda c, cid, kid: c.execute("UPDATE accounts SET cps = 0"),
    "max concurrent above bound": lambda c, cid, kid: c.execute(
        "UPDATE campaigns SET max_concurrent = 100001 WHERE id = $1", cid),
    "pause reason too long": lambda c, cid, kid: c.execute(
        "UPDATE campaigns SET pause_reason = repeat('x', 1001) WHERE id = $1", cid),
}


@pytest.mark.parametrize("case", list(BAD_WRITES))
async def test_bad_state_is_rejected(pool: asyncpg.Pool, case: str) -> None:
    async with pool.acquire() as conn:
        campaign_id = await _campaign(conn)
        contact_id = await _contact(conn, campaign_id)
        with pytest.raises(asyncpg.IntegrityConstraintViolationError):
            await BAD_WRITES[case](conn, campaign_id, contact_id)


async def test_good_rows_are_accepted(pool: asyncpg.Pool) -> None:
    """The constraints above are not simply rejecting everything."""
    async with pool.acquire() as conn:
        campaign_id = await _campaign(conn)
        contact_id = await _contact(conn, campaign_id)
        await _contact(conn, await _campaign(conn, "c2"))  # same number, other campaign
        await conn.execute(
            """INSERT INTO call_attempts (contact_id, campaign_id, attempt_no, requested_at,
                                          state) VALUES ($1, $2, 1, now(), 'void')""",
            contact_id, campaign_id,
        )
        await conn.execute(
            """INSERT INTO call_attempts (contact_id, campaign_id, attempt_no, requested_at)
               VALUES ($1, $2, 1, now())""",
            contact_id, campaign_id,
        )
        await conn.execute(
            "UPDATE contacts SET state = 'dialing', claimed_by = 'w1' WHERE id = $1", contact_id
        )
        await conn.execute(
            "INSERT INTO dnc_numbers (phone, campaign_id) VALUES ('+14155550100', $1)", campaign_id
        )
        await conn.execute("INSERT INTO dnc_numbers (phone) VALUES ('+14155550100')")


async def test_deleting_a_campaign_deletes_its_contacts_and_attempts(pool: asyncpg.Pool) -> None:
    """What ON DELETE CASCADE did before migration 0007 (its trigger now)."""
    async with pool.acquire() as conn:
        campaign_id = await _campaign(conn)
        other = await _campaign(conn, "c2")
        contact_id = await _contact(conn, campaign_id)
        await _contact(conn, other)
        await conn.execute(
            """INSERT INTO call_attempts (contact_id, campaign_id, attempt_no, requested_at,
                                          state) VALUES ($1, $2, 1, now(), 'void')""",
            contact_id, campaign_id)
        await conn.execute("DELETE FROM campaigns WHERE id = $1", campaign_id)
        assert await conn.fetchval("SELECT count(*) FROM contacts WHERE campaign_id = $1",
                                   campaign_id) == 0
        assert await conn.fetchval("SELECT count(*) FROM call_attempts") == 0
        assert await conn.fetchval("SELECT count(*) FROM contacts WHERE campaign_id = $1",
                                   other) == 1


async def test_a_campaign_deleted_during_an_insert_leaves_no_contact(pool: asyncpg.Pool) -> None:
    """The insert's check locks the campaign as the foreign key did: the delete waits
    for the insert's transaction, then deletes what it committed."""
    async with pool.acquire() as inserting, pool.acquire() as deleting:
        campaign_id = await _campaign(inserting)
        transaction = inserting.transaction()
        await transaction.start()
        await _contact(inserting, campaign_id)
        delete = asyncio.create_task(
            deleting.execute("DELETE FROM campaigns WHERE id = $1", campaign_id))
        await asyncio.sleep(0.3)
        assert not delete.done()
        await transaction.commit()
        await delete
        assert await deleting.fetchval("SELECT count(*) FROM contacts") == 0


# Spellings at the edges of E.164: lengths 1 to 17, a leading 0, a second '+', blanks,
# a trailing newline, digits that are not ASCII (Arabic-Indic, fullwidth).
_PHONE_EDGES = [
    "", "+", "+0", "+1", "+10", "+01", "+12", "+99", "1234", "++12", "+1+2", "+12+",
    " +12", "+12 ", "+12\n", "\n+12", "+1 2", "+12a", "+1\u0662", "+\uff19\uff19",
    "+" + "1" * 14, "+" + "1" * 15, "+" + "1" * 16, "+0" + "1" * 14, "+" + "9" * 15,
]


async def test_the_phone_check_accepts_what_its_regex_did(pool: asyncpg.Pool) -> None:
    """Migration 0010 said the contacts' phone CHECK without a regex (cheaper per
    imported row): the stored constraint accepts exactly the strings the regex of 0001
    did, on the edges and on random strings over '+', digits and a few others."""
    rng = random.Random(11)
    strings = list(_PHONE_EDGES)
    for _ in range(20_000):
        strings.append("".join(rng.choice("+0123456789 a\n\u0663")
                               for _ in range(rng.randint(0, 17))))
        strings.append("+" + "".join(rng.choice("0123456789") for _ in range(rng.randint(0, 16))))
    async with pool.acquire() as conn:
        check = await conn.fetchval(
            "SELECT pg_get_expr(conbin, conrelid) FROM pg_constraint "
            "WHERE conname = 'contacts_phone_check' AND conrelid = 'contacts'::regclass")
        assert "~" not in check  # the regex is gone
        regex = "phone ~ '^\\+[1-9][0-9]{1,14}$'"  # the CHECK of migration 0001
        differ = await conn.fetch(
            f"SELECT phone, {regex} AS regex, ({check}) AS now "
            "FROM unnest($1::text[]) AS t(phone) "
            f"WHERE ({regex}) IS DISTINCT FROM ({check})", strings)
        accepted = await conn.fetchval(
            f"SELECT count(*) FROM unnest($1::text[]) AS t(phone) WHERE {check}", strings)
    assert [tuple(r) for r in differ] == []
    assert 10_000 < accepted < len(strings) - 10_000  # both kinds were tried
