"""A running campaign completes when nothing of it is left to call, and only then:
complete_finished_campaigns asks that in two NOT EXISTS, one per partial index
(migration 0012), so every state still to call is checked here one by one; and
`campaign show`'s counts by state (now read from the counters of 0006) equal the rows."""

from __future__ import annotations

import asyncpg
import pytest

from dialer import repository
from dialer.testing import make_campaign
from dialer.testing.factories import SIM_SID

FINISHED = {"done": None, "failed": "busy", "skipped": "dnc"}
TO_CALL = ["pending", "dialing", "in_call", "retry_wait"]


async def _campaign(pool: asyncpg.Pool, name: str, states: list[str]) -> int:
    campaign_id = await make_campaign(pool, name)
    await pool.executemany(
        "INSERT INTO contacts (campaign_id, phone, state, reason, claimed_by, claimed_at)"
        " VALUES ($1, $2, $3, $4, $5, CASE WHEN $5::text IS NULL THEN NULL ELSE now() END)",
        [(campaign_id, f"+1415555{1000 + i}", state, FINISHED.get(state),
          "w1" if state == "dialing" else None) for i, state in enumerate(states)])
    return campaign_id


async def _completed(pool: asyncpg.Pool) -> set[str]:
    return {row["name"] for row in await repository.complete_finished_campaigns(pool, SIM_SID)}


@pytest.mark.parametrize("left", TO_CALL)
async def test_a_contact_still_to_call_keeps_its_campaign_running(
        pool: asyncpg.Pool, left: str) -> None:
    await _campaign(pool, "open", [*FINISHED, left])
    assert await _completed(pool) == set()
    await pool.execute("UPDATE contacts SET state = 'done', claimed_by = NULL, "
                       "claimed_at = NULL WHERE state = $1", left)
    assert await _completed(pool) == {"open"}


async def test_finished_campaigns_complete_empty_ones_do_not(pool: asyncpg.Pool) -> None:
    await _campaign(pool, "finished", list(FINISHED))
    await _campaign(pool, "empty", [])
    await _campaign(pool, "running", ["done", "pending"])
    ended = await _campaign(pool, "ended", ["pending", "in_call"])
    await pool.execute("UPDATE campaigns SET end_at = now() WHERE id = $1", ended)
    assert await _completed(pool) == {"finished", "ended"}


async def test_contact_counts_by_state_equal_the_rows(pool: asyncpg.Pool) -> None:
    campaign_id = await _campaign(pool, "spring", [*FINISHED, *TO_CALL, "pending", "done"])
    await _campaign(pool, "other", ["pending", "done"])
    await pool.execute("UPDATE contacts SET state = 'done', reason = NULL, claimed_by = NULL,"
                       " claimed_at = NULL WHERE campaign_id = $1 AND state = 'failed'",
                       campaign_id)
    rows = await pool.fetch("SELECT state, count(*) AS n FROM contacts WHERE campaign_id = $1"
                            " GROUP BY state", campaign_id)
    counts = await repository.campaign_contact_counts(pool, campaign_id)
    assert counts == {row["state"]: row["n"] for row in rows}
    assert counts == {"done": 3, "skipped": 1, "pending": 2, "dialing": 1, "in_call": 1,
                      "retry_wait": 1}
