"""`dialer report NAME --html FILE` of a demo campaign: the figures embedded in the page
equal counts taken here from the tables, every chart is in the page, and headless
Chromium draws it without a console error (skipped when Chromium is not installed)."""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import decimal
import json
import math
import os
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from dialer import cli, db
from dialer.report import SUMMARY_ROWS
from tests.conftest import DemoCampaign

CHARTS = ("attempts_over_time", "sends_over_time", "by_local_hour", "by_country", "by_zone",
          "retry_funnel", "queue_time", "compliance")


@pytest.fixture(scope="module")
async def demo_report(demo_run: DemoCampaign, tmp_path_factory: pytest.TempPathFactory
                      ) -> Demo:
    """The HTML report of the demo campaign, made by the CLI."""
    page = tmp_path_factory.mktemp("html") / "report.html"
    env = {"DIALER_DATABASE_URL": demo_run.dsn, "DIALER_ENV_FILE": str(page) + ".env"}
    os.environ.update(env)
    try:
        code = await asyncio.to_thread(cli.main, ["report", demo_run.name, "--html", str(page)])
    finally:
        for key in env:
            del os.environ[key]
    assert code == 0
    return Demo(demo_run.dsn, demo_run.name, page)


class Demo:
    def __init__(self, dsn: str, name: str, page: Path) -> None:
        self.dsn, self.name, self.page = dsn, name, page


class Tables(HTMLParser):
    """The page's tables marked data-figure, as lists of rows of cell texts."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.svgs = 0
        self._table: list[list[str]] | None = None
        self._cell: list[str] | None = None
        self.data = ""
        self._in_data = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "table" and found.get("data-figure"):
            self._table = self.tables.setdefault(str(found["data-figure"]), [])
        elif tag == "tr" and self._table is not None:
            self._table.append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = []
        elif tag == "svg":
            self.svgs += 1
        elif tag == "script" and found.get("id") == "dialer-figures":
            self._in_data = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._table = None
        elif tag in ("td", "th") and self._table is not None and self._cell is not None:
            self._table[-1].append("".join(self._cell))
            self._cell = None
        elif tag == "script":
            self._in_data = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._in_data:
            self.data += data


def _bucket(moment: dt.datetime, width: int) -> str:
    return dt.datetime.fromtimestamp(math.floor(moment.timestamp() / width) * width,
                                     dt.UTC).isoformat()


def _pct(part: int, whole: int) -> float:
    """``round(100.0 * part / whole, 1)`` as Postgres computes it: numeric, half away
    from zero (Python's round of a float goes to even: 13 of 16 is 81.3, not 81.2)."""
    exact = decimal.Decimal(100 * part) / decimal.Decimal(whole)
    return float(exact.quantize(decimal.Decimal("0.1"), rounding=decimal.ROUND_HALF_UP))


def _disc(values: list[int], fraction: float) -> int:
    """percentile_disc: the first value whose cumulative share reaches ``fraction``."""
    ordered = sorted(values)
    return ordered[max(math.ceil(fraction * len(ordered)) - 1, 0)]


async def test_the_page_shows_the_numbers_of_the_tables(demo_report: Demo) -> None:
    parser = Tables()
    parser.feed(demo_report.page.read_text("utf-8"))
    figures: dict[str, Any] = json.loads(parser.data)
    conn = await db.connect(demo_report.dsn)
    try:
        campaign_id = await conn.fetchval("SELECT id FROM campaigns WHERE name = $1",
                                          demo_report.name)
        attempts = await conn.fetch(
            "SELECT a.*, r.zones, r.local_times, r.rule_packs FROM call_attempts a "
            "LEFT JOIN attempt_compliance r ON r.attempt_id = a.id WHERE a.campaign_id = $1",
            campaign_id)
        contacts = await conn.fetch("SELECT state, reason FROM contacts WHERE campaign_id = $1",
                                    campaign_id)
        countries = dict(await conn.fetch("SELECT zone, country FROM time_zone_countries"))
        cps = await conn.fetchval("SELECT cps FROM accounts")
    finally:
        await conn.close()
    assert len(attempts) > len(contacts) > 0  # retries happened

    # The summary, as the text report shows it, against the rows.
    states = collections.Counter(c["state"] for c in contacts)
    summary = figures["summary"]
    assert summary["contacts"] == len(contacts)
    assert {s: summary[s] for s in ("done", "failed", "skipped", "pending")} == {
        s: states[s] for s in ("done", "failed", "skipped", "pending")}
    assert summary["attempts"] == sum(a["state"] != "void" for a in attempts)
    assert summary["answered"] == sum(a["call_status"] == "completed" for a in attempts)
    shown = {row[0]: row[1] for row in parser.tables["summary"]}
    assert [shown[label] for label, _ in SUMMARY_ROWS] == [
        "-" if summary[c] is None else str(summary[c]) for _, c in SUMMARY_ROWS]

    # Attempts over time and the funnel: by request time and what each ended in.
    width = figures["bucket_seconds"]
    ended = [(a, a["outcome"] or a["state"]) for a in attempts]
    assert collections.Counter(
        {(r["bucket"], r["ended_in"]): r["attempts"] for r in figures["attempts_over_time"]}
    ) == collections.Counter((_bucket(a["requested_at"], width), e) for a, e in ended)
    assert collections.Counter(
        {(r["attempt_no"], r["ended_in"]): r["attempts"] for r in figures["retry_funnel"]}
    ) == collections.Counter((a["attempt_no"], e) for a, e in ended)
    span = (max(a["requested_at"] for a in attempts)
            - min(a["requested_at"] for a in attempts)).total_seconds()
    assert span / width < 60 and (width == 1 or span / width >= 60 / 5)

    # Sends per bucket and the busiest second, against the account's CPS.
    seconds = collections.Counter(a["sent_at"].replace(microsecond=0)
                                  for a in attempts if a["sent_at"] is not None)
    sends: dict[str, list[int]] = collections.defaultdict(list)
    for second, n in seconds.items():
        sends[_bucket(second, width)].append(n)
    assert {r["bucket"]: (r["campaign_sent"], r["account_sent"], r["busiest_second"])
            for r in figures["sends_over_time"]} == {
        b: (sum(ns), sum(ns), max(ns)) for b, ns in sends.items()}
    assert figures["account_cps"] == cps
    assert max(max(ns) for ns in sends.values()) <= cps

    # Twilio's queue_time per bucket.
    queued: dict[str, list[int]] = collections.defaultdict(list)
    for a in attempts:
        if a["queue_time_ms"] is not None:
            queued[_bucket(a["requested_at"], width)].append(a["queue_time_ms"])
    assert queued
    assert {r["bucket"]: (r["calls"], r["median_ms"], r["p95_ms"], r["max_ms"])
            for r in figures["queue_time"]} == {
        b: (len(v), _disc(v, 0.5), _disc(v, 0.95), max(v)) for b, v in queued.items()}

    # Answer rate by local hour and outcomes by country, from the compliance records.
    final = [a for a in attempts if a["state"] == "final" and a["zones"] is not None]
    hours: dict[int | None, list[bool]] = collections.defaultdict(list)
    by_country: dict[str | None, collections.Counter[str]] = collections.defaultdict(
        collections.Counter)
    for a in final:
        local = {t[11:13] for t in a["local_times"]}
        hours[int(local.pop()) if len(local) == 1 else None].append(
            a["call_status"] == "completed")
        ranked = collections.Counter(countries.get(z) for z in a["zones"]
                                     if z in countries).most_common()
        country = (ranked[0][0] if ranked and (len(ranked) == 1 or ranked[0][1] > ranked[1][1])
                   else None)
        by_country[country][a["outcome"] or "undecided"] += 1
    assert {r["local_hour"]: (r["calls"], r["answered"], r["answer_rate_pct"])
            for r in figures["by_local_hour"]} == {
        h: (len(v), sum(v), _pct(sum(v), len(v))) for h, v in hours.items()}
    assert {r["country"]: (r["calls"], r["human"], r["voicemail_left"], r["busy"])
            for r in figures["by_country"]} == {
        c: (sum(n.values()), n["human"], n["voicemail_left"], n["busy"])
        for c, n in by_country.items()}
    assert {"US", "GB", "DE", "FR", "AU", "JP"} <= set(by_country)
    assert sum(r["calls"] for r in figures["by_zone"]) == len(final)

    # Compliance: calls per rule pack (the demo obeys none) and who is not called.
    assert figures["rule_packs"] == [{"rule_pack": "none", "attempts": len(
        [a for a in attempts if a["zones"] is not None])}]
    skipped = collections.Counter(f"skipped: {c['reason']}" for c in contacts
                                  if c["state"] == "skipped")
    assert {r["why"]: r["contacts"] for r in figures["waiting"]} == dict(skipped)

    # Every chart is drawn, with its numbers in a table beside it.
    assert parser.svgs == len(CHARTS)
    for name in CHARTS:
        if name != "compliance":
            assert len(parser.tables[name]) == len(figures[name]) + 1, name


def test_without_the_report_extra_html_is_a_usage_error(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # what `import` sees when absent
    assert cli.main(["report", "any", "--html", str(tmp_path / "r.html")]) == 2
    assert "pip install 'dialer[report]'" in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _screenshot(page: Path, png: Path, profile: Path) -> str:
    """Chromium's log while it loads ``page`` and saves a screenshot to ``png``."""
    chromium = _chromium()
    assert chromium is not None
    done = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={profile}", "--enable-logging=stderr",
         "--log-level=0", "--hide-scrollbars", "--window-size=1100,4300",
         f"--screenshot={png}", page.as_uri()],
        capture_output=True, text=True, timeout=90, check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stderr


def _console_errors(log: str) -> list[str]:
    return [line for line in log.splitlines() if "CONSOLE" in line]


@pytest.mark.skipif(_chromium() is None, reason="Chromium is not installed "
                    "(Debian: apt-get install chromium); CI does not depend on it")
def test_chromium_draws_every_chart_without_console_errors(
        demo_report: Demo, tmp_path: Path) -> None:
    import matplotlib.image

    # The check sees console errors: a page with the report's policy whose script the
    # policy refuses logs one.
    head = demo_report.page.read_text("utf-8").split("<style>")[0]
    broken = tmp_path / "broken.html"
    broken.write_text(f"{head}</head><body><script>console.error('seen')</script></body>",
                      "utf-8")
    assert _console_errors(_screenshot(broken, tmp_path / "broken.png", tmp_path / "p1"))

    png = tmp_path / "report.png"
    log = _screenshot(demo_report.page, png, tmp_path / "p2")
    assert not _console_errors(log), _console_errors(log)
    pixels = matplotlib.image.imread(png)
    drawn = (pixels[..., :3].min(axis=2) < 0.9).mean(axis=1)  # share of inked pixels per row
    assert (drawn > 0.02).sum() > 2000, "the page looks empty"
