"""What every run against the simulator must show, whatever went wrong on the way:
each call placed is one final attempt with the simulator's status, and no attempt
claims a call that was never placed."""

from __future__ import annotations

import collections
import csv
from pathlib import Path

import asyncpg

from dialer.sim.server import SimServer


async def attempts_of(pool: asyncpg.Pool, campaign_id: int) -> list[asyncpg.Record]:
    return list(await pool.fetch(
        """SELECT a.id, a.attempt_no, a.state, a.call_sid, a.call_status, a.error_message,
                  k.phone
           FROM call_attempts a JOIN contacts k ON k.id = a.contact_id
           WHERE a.campaign_id = $1 ORDER BY a.id""", campaign_id))


async def assert_recorded_as_placed(
    pool: asyncpg.Pool, campaign_id: int, sim: SimServer
) -> list[asyncpg.Record]:
    """Every call the simulator placed is one final attempt with the simulator's status,
    no attempt claims a call that was never placed, and none is left open."""
    attempts = await attempts_of(pool, campaign_id)
    recorded = {a["call_sid"]: a for a in attempts if a["call_sid"] is not None}
    assert set(recorded) == set(sim.calls)
    wrong = [(sid, a["state"], a["call_status"], sim.calls[sid].status)
             for sid, a in recorded.items()
             if (a["state"], a["call_status"]) != ("final", sim.calls[sid].status)]
    assert not wrong
    assert not [a for a in attempts if a["state"] in ("requested", "unknown", "live")]
    per_attempt = collections.Counter((a["phone"], a["attempt_no"]) for a in recorded.values())
    assert max(per_attempt.values()) == 1
    return attempts


def read_csv_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a CSV the dialer wrote (an import's errors, a report), by header."""
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))
