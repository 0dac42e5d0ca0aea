"""The Grafana dashboard (config/grafana/dialer.json) asks only for what a daemon
exposes: every metric of every panel is in the /metrics of a `dialer run` working on a
campaign, with every label the query filters on, groups by or names in its legend. The
labels are read from the live /metrics, so a label added to a metric (such as an
account) needs no change here."""

from __future__ import annotations

import collections
import json
import re
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from prometheus_client.parser import text_string_to_metric_families

from dialer.sim.server import SimServer
from dialer.testing import (
    SIM_SID,
    daemon_env,
    daemon_process,
    make_campaign,
    sim_config,
    wait_until,
)

DASHBOARD = Path(__file__).resolve().parent.parent / "config" / "grafana" / "dialer.json"
# Labels Prometheus adds to every series it scrapes; /metrics does not carry them.
SCRAPE_LABELS = frozenset({"instance", "job"})
_METRIC = re.compile(r"\b(dialer_[a-z0-9_]+)\b")
_SELECTOR = re.compile(r"\{([^}]*)\}")
_MATCHER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)")
_GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
_LEGEND = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def wanted(dashboard: dict[str, Any]) -> list[tuple[str, str, frozenset[str]]]:
    """(panel, metric, labels) of every query: one metric per query (so each label is
    the metric's), labels from its selectors, its by/without clauses and its legend."""
    found = []
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            metrics = set(_METRIC.findall(expr))
            assert len(metrics) == 1, (panel["title"], expr)
            labels = {name for selector in _SELECTOR.findall(expr)
                      for name in _MATCHER.findall(selector)}
            labels |= {name.strip() for group in _GROUPING.findall(expr)
                       for name in group.split(",") if name.strip()}
            labels |= set(_LEGEND.findall(target.get("legendFormat", "")))
            found.append((panel["title"], metrics.pop(), frozenset(labels - SCRAPE_LABELS)))
    return found


def exposed(text: str) -> dict[str, set[str]]:
    """Sample name (``_total``, ``_bucket`` ... included) -> the labels its samples carry."""
    samples: dict[str, set[str]] = collections.defaultdict(set)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name] |= set(sample.labels)
    return samples


def problems(queries: list[tuple[str, str, frozenset[str]]],
             samples: dict[str, set[str]]) -> list[str]:
    found = []
    for panel, metric, labels in queries:
        if metric not in samples:
            found.append(f"{panel}: {metric} is not exposed")
        elif missing := labels - samples[metric]:
            found.append(f"{panel}: {metric} has no label {sorted(missing)}")
    return found


def test_the_check_sees_a_missing_metric_and_a_missing_label() -> None:
    samples = exposed("# TYPE dialer_x counter\ndialer_x_total{a=\"1\"} 2\n")
    dashboard = {"panels": [{"title": "p", "targets": [
        {"expr": 'sum by (a) (rate(dialer_x_total[5m]))', "legendFormat": "{{a}} {{instance}}"},
        {"expr": 'sum by (b) (rate(dialer_x_total{a="1"}[5m]))'},
        {"expr": "dialer_y", "legendFormat": "{{a}}"},
    ]}]}
    assert problems(wanted(dashboard), samples) == [
        "p: dialer_x_total has no label ['b']", "p: dialer_y is not exposed"]


async def _answers(client: httpx.AsyncClient) -> bool:
    """The daemon has been answered: 429s and status callbacks are in its /metrics."""
    try:
        text = (await client.get("/metrics")).text
    except httpx.TransportError:
        return False  # not listening yet
    return 'code="20429"' in text and 'source="call-progress-events"' in text


async def test_every_query_of_the_dashboard_is_answered_by_a_running_daemon(
        dsn: str, pool: asyncpg.Pool) -> None:
    dashboard = json.loads(DASHBOARD.read_text("utf-8"))
    assert all(t["datasource"]["uid"] == "${datasource}"
               for p in dashboard["panels"] for t in p["targets"])
    queries = wanted(dashboard)
    # Every kind of number of the simulator's deterministic scenario, AMD on.
    await make_campaign(pool, "graphed", [f"+1415{6000000 + i:07d}" for i in range(30)],
                        cps=20, amd_mode="Enable", ring_timeout=5)
    # A strict simulator answers 429 past 8 creates a second: the errors panel has a code.
    async with SimServer(sim_config(time_scale=0.01, strict=True, strict_rate=8)) as sim, \
            daemon_process(daemon_env(dsn, sim.base_url, 20)) as (_, base), \
            httpx.AsyncClient(base_url=base) as client:
        await wait_until(lambda: _answers(client), timeout=30, what="/metrics")
        forged = await client.post("/twilio/attempts/1/status", data={"CallSid": "CA1"})
        assert forged.status_code == 403  # a refused callback, for the refusals' labels
        text = (await client.get("/metrics")).text
    samples = exposed(text)
    assert not problems(queries, samples), problems(queries, samples)
    assert any(sample.name == "dialer_twilio_errors_total" and sample.labels["code"] == "20429"
               and sample.labels["account"] == SIM_SID and sample.value > 0
               for family in text_string_to_metric_families(text) for sample in family.samples)
    assert {"dialer_callbacks_total", "dialer_callback_seconds_bucket",
            "dialer_database_errors_total"} <= {m for _, m, _ in queries}
