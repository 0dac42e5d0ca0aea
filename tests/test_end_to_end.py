"""A whole campaign against the simulator's deterministic scenario: every contact ends
where the policy says, and the report's numbers match counts made here independently."""

from __future__ import annotations

import collections
import datetime as dt

import asyncpg

from dialer.policy import RetryPolicy
from dialer.sim.server import SimServer
from dialer.sim.trace import creates
from dialer.testing import (
    campaign_completed,
    daemon_settings,
    make_campaign,
    running_daemon,
    sim_config,
    wait_until,
)

# Last digit -> (calls placed, final contact state, final outcome), for max 3 attempts,
# AMD Enable with hangup_retry, derived by hand from the scenario table in dialer.sim.
EXPECTED = {
    0: (1, "done", "human"), 1: (1, "done", "human"), 2: (1, "done", "human"),
    3: (3, "failed", "machine"),            # machine each time: hung up, retried, given up
    4: (2, "done", "human"),                # busy, then human
    5: (3, "done", "human"),                # no-answer twice, then human
    6: (3, "failed", "busy"),               # busy always
    7: (2, "done", "human"),                # failed with SIP 503 (transient), then human
    8: (1, "failed", "failed_permanent"),   # SIP 404: no retry
    9: (1, "failed", "fax"),
}
QUICK = dt.timedelta(milliseconds=300)


def numbers(count: int) -> list[str]:
    return [f"+1415{3000000 + i:07d}" for i in range(count)]


async def test_campaign_of_500_ends_as_the_policy_dictates(dsn: str, pool: asyncpg.Pool) -> None:
    phones = numbers(500)
    retry = RetryPolicy(max_attempts=3, busy_delay=QUICK, no_answer_delay=QUICK,
                        failed_delay=QUICK, machine_delay=QUICK, backoff=1.0, jitter=0.0)
    campaign_id = await make_campaign(
        pool, "e2e", phones, cps=100, amd_mode="Enable", machine_policy="hangup_retry",
        retry=retry, ring_timeout=5,
    )
    async with SimServer(sim_config(time_scale=0.01)) as sim:
        settings = daemon_settings(sim.base_url, cps=100)
        async with running_daemon(settings, dsn):
            await wait_until(lambda: campaign_completed(pool, campaign_id), timeout=90,
                             what="campaign completion")
    calls = collections.Counter(r.params["To"][0] for r in creates(sim.trace))
    contacts = {r["phone"]: r for r in await pool.fetch(
        "SELECT phone, state, attempts, last_outcome FROM contacts WHERE campaign_id = $1",
        campaign_id)}
    wrong = []
    for phone in phones:
        placed, state, outcome = EXPECTED[int(phone[-1])]
        row = contacts[phone]
        got = (calls[phone], row["attempts"], row["state"], row["last_outcome"])
        if got != (placed, placed, state, outcome):
            wrong.append((phone, got))
    assert not wrong, wrong[:5]

    # The summary view against counts made from the expectations table.
    per_digit = collections.Counter(int(p[-1]) for p in phones)

    def total(digits: dict[int, int]) -> int:
        return sum(per_digit[d] * n for d, n in digits.items())

    summary = await pool.fetchrow("SELECT * FROM campaign_summary WHERE name = 'e2e'")
    assert summary is not None
    expected = {
        "contacts": 500,
        "done": total({0: 1, 1: 1, 2: 1, 4: 1, 5: 1, 7: 1}),
        "failed": total({3: 1, 6: 1, 8: 1, 9: 1}),
        "attempts": sum(per_digit[d] * EXPECTED[d][0] for d in EXPECTED),
        "busy": total({4: 1, 6: 3}),
        "no_answer": total({5: 2}),
        "call_failed": total({7: 1, 8: 1}),
        "machine": total({3: 3}),
        "fax": total({9: 1}),
        "human": total({0: 1, 1: 1, 2: 1, 4: 1, 5: 1, 7: 1}),
        "pending": 0, "dialing": 0, "in_call": 0, "retry_wait": 0,
    }
    assert {key: summary[key] for key in expected} == expected
    assert float(summary["completion_pct"]) == 100.0
    answered = expected["human"] + expected["machine"] + expected["fax"]
    assert summary["answered"] == answered
    assert float(summary["answer_rate_pct"]) == round(100 * answered / expected["attempts"], 1)
    # Every machine call was hung up by the dialer, not left to talk.
    hangups = [r for r in sim.trace if r.method == "POST" and r.path.endswith(".json")
               and "Status" in r.params]
    assert len(hangups) == total({3: 3, 9: 1})
