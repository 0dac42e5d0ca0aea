"""The campaign report: the summary view as a table, the attempt detail as CSV."""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.table import Table

# (label, column of campaign_summary) in the order an operator reads them.
SUMMARY_ROWS = (
    ("state", "state"), ("contacts", "contacts"), ("done", "done"), ("failed", "failed"),
    ("skipped", "skipped"), ("pending", "pending"), ("waiting for retry", "retry_wait"),
    ("dialing", "dialing"), ("in a call", "in_call"), ("attempts", "attempts"),
    ("answered", "answered"), ("answer rate %", "answer_rate_pct"), ("human", "human"),
    ("machine", "machine"), ("fax", "fax"), ("busy", "busy"), ("no answer", "no_answer"),
    ("call failed", "call_failed"), ("canceled", "canceled"),
    ("refused by Twilio", "rejected"), ("average talk time s", "avg_talk_seconds"),
    ("completion %", "completion_pct"),
)


def summary_table(name: str, summary: Mapping[str, Any]) -> Table:
    table = Table(title=f"campaign {name}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for label, column in SUMMARY_ROWS:
        value = summary[column]
        table.add_row(label, "-" if value is None else str(value))
    return table


def _cell(value: Any) -> Any:
    """Lists (an attempt's zones, local times, rule packs ...) as space-separated text:
    none of their items contains a space."""
    return " ".join(map(str, value)) if isinstance(value, list | tuple) else value


def write_csv(path: Path, rows: Sequence[Mapping[str, Any]]) -> int:
    """Write the rows with a header; returns how many data rows were written.

    The attempt export ends with each attempt's compliance record: ``sent_at``, the
    ``zones`` and ``zone_source``, the ``states`` and ``state_sources``, the
    ``local_times`` (one per zone, ISO-8601 with offset, at ``requested_at``), the
    ``rule_packs`` (name@version), the ``rules`` applied and ``open_until`` (the
    request had to be sent before it)."""
    with path.open("w", newline="", encoding="utf-8") as out:
        if not rows:
            return 0
        writer = csv.DictWriter(out, fieldnames=list(rows[0].keys()))
        writer.writeheader()
        for row in rows:
            writer.writerow({key: _cell(value) for key, value in row.items()})
    return len(rows)
