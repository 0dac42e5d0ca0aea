"""The campaign report as one HTML file that opens offline: charts drawn by matplotlib
as inline SVG, a table of the numbers under each chart, and the figures as JSON.

matplotlib rather than plotly: SVG is text inside the page, so the file needs no
JavaScript at all (plotly inlines about 3.5 MB of it into every report), prints and
scales sharply, and the page can forbid every script and every network load in its
Content-Security-Policy. matplotlib is the optional extra ``dialer[report]``; only
``dialer report --html`` imports this module, never the daemon.
"""

from __future__ import annotations

import datetime as dt
import html
import io
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, cast

import matplotlib
import matplotlib.dates as mdates
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from dialer.forecast import Forecast, hourly_rows
from dialer.report import SUMMARY_ROWS
from dialer.report_figures import Figures

# One colour per way an attempt ends, the same in every chart (tab10 and friends).
COLOURS = {
    "human": "#2ca02c", "completed": "#98df8a", "voicemail_left": "#17becf",
    "machine": "#9467bd", "fax": "#8c564b", "busy": "#ff7f0e", "no-answer": "#ffbb78",
    "failed_transient": "#e377c2", "failed_permanent": "#d62728", "canceled": "#7f7f7f",
    "rejected": "#bcbd22", "void": "#c7c7c7", "undecided": "#aec7e8",
    "requested": "#dbdb8d", "unknown": "#f7b6d2", "live": "#1f77b4", "final": "#aec7e8",
}
# The outcome columns of the breakdown queries, with the outcome whose colour they take.
BREAKDOWN_COLUMNS = (
    ("human", "human"), ("machine", "machine"), ("voicemail_left", "voicemail_left"),
    ("answered_no_amd", "completed"), ("fax", "fax"), ("busy", "busy"),
    ("no_answer", "no-answer"), ("failed", "failed_permanent"), ("canceled", "canceled"),
    ("undecided", "undecided"),
)
NO_RECORD = "no ended call with a compliance record yet"
NO_PACK = "no rule pack (campaign calendar only)"
MAX_ZONES = 15  # zone sets drawn; the table lists every one
# Deterministic SVG (same figures, same bytes), text kept as text (selectable, small).
RC = {"svg.fonttype": "none", "svg.hashsalt": "dialer-report", "font.size": 9,
      "axes.spines.top": False, "axes.spines.right": False}
# Nothing loads from anywhere: no script runs, styles and images only from the page.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; padding: 0 1em; max-width: 70em;
       color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.2em; margin-top: 2em; }
section { border-top: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
td, th { border: 1px solid #ddd; padding: 0.2em 0.6em; } td.n { text-align: right; }
.chart svg { max-width: 100%; height: auto; }
details summary { cursor: pointer; color: #555; } .none { color: #777; }
"""


def _label(text: object) -> str:
    """Text from the database as a chart label: a ``$`` must not start mathtext."""
    return str(text).replace("$", r"\$")


def _svg(figure: Figure) -> str:
    out = io.StringIO()
    figure.savefig(out, format="svg", metadata={"Date": None}, bbox_inches="tight")
    text = out.getvalue()
    return text[text.index("<svg"):]


def _figure(height: float = 3.2) -> tuple[Figure, Axes]:
    figure = Figure(figsize=(9, height), layout="constrained")
    return figure, figure.add_subplot()


def _finish(figure: Figure, axes: Axes, *, ylabel: str, title: str,
            legend_size: int = 8) -> str:
    """Label the chart, put its legend beside it, and draw it as SVG."""
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.legend(loc="upper left", bbox_to_anchor=(1, 1), fontsize=legend_size)
    return _svg(figure)


def _times(rows: Sequence[Mapping[str, Any]]) -> list[float]:
    """The rows' buckets as matplotlib's date numbers."""
    return [float(mdates.date2num(dt.datetime.fromisoformat(row["bucket"])))  # type: ignore[no-untyped-call]
            for row in rows]


def _time_axis(axes: Axes, width_seconds: int) -> None:
    locator = mdates.AutoDateLocator(minticks=3, maxticks=8)  # type: ignore[no-untyped-call]
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(
        mdates.ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    axes.set_xlabel(f"time (UTC), bars of {width_seconds} s")


def _stacked(axes: Axes, xs: Sequence[Any], series: Mapping[str, Sequence[float]],
             width: float, colours: Mapping[str, str]) -> None:
    bottom = [0.0] * len(xs)
    for name, values in series.items():
        axes.bar(xs, values, width, bottom=bottom, label=_label(name),
                 color=colours.get(name), align="edge" if width < 1 else "center")
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]


def _by_key(rows: Iterable[Mapping[str, Any]], key: str, series: str,
            value: str) -> tuple[list[Any], dict[str, list[float]]]:
    """Pivot rows (key, series, value) into keys in order and one list per series."""
    keys: list[Any] = []
    cells: dict[tuple[Any, str], float] = {}
    names: list[str] = []
    for row in rows:
        if row[key] not in keys:
            keys.append(row[key])
        if row[series] not in names:
            names.append(row[series])
        cells[(row[key], row[series])] = float(row[value])
    return keys, {n: [cells.get((k, n), 0.0) for k in keys] for n in names}


def _attempts_chart(f: Figures) -> str:
    figure, axes = _figure()
    keys, series = _by_key(f.attempts_over_time, "bucket", "ended_in", "attempts")
    xs = _times([{"bucket": k} for k in keys])
    _stacked(axes, xs, series, f.bucket_seconds / 86400, COLOURS)
    _time_axis(axes, f.bucket_seconds)
    return _finish(figure, axes, ylabel="attempts",
                   title="Attempts by request time and what they ended in")


def _cps_chart(f: Figures) -> str:
    figure, axes = _figure()
    rows = f.sends_over_time
    xs = _times(rows)
    per_second = float(f.bucket_seconds)
    axes.step(xs, [r["account_sent"] / per_second for r in rows], where="post",
              label="account, average per second", color="#1f77b4")
    axes.step(xs, [r["campaign_sent"] / per_second for r in rows], where="post",
              label="this campaign, average", color="#2ca02c", linestyle="--")
    axes.plot(xs, [r["busiest_second"] for r in rows], "o", markersize=3,
              label="account, busiest second", color="#ff7f0e")
    if f.account_cps is not None:
        axes.axhline(f.account_cps, color="#d62728", linestyle=":",
                     label=f"account limit {f.account_cps:g} CPS")
    _time_axis(axes, f.bucket_seconds)
    axes.set_ylim(bottom=0)
    return _finish(figure, axes, ylabel="calls per second",
                   title="CPS achieved against the account's limit")


def _local_hour_chart(f: Figures) -> str:
    figure, axes = _figure()
    labels = ["?" if r["local_hour"] is None else f"{r['local_hour']:02d}"
              for r in f.by_local_hour]
    rates = [r["answer_rate_pct"] or 0.0 for r in f.by_local_hour]
    # Positions, not the labels: matplotlib would read "02" as a number or a date.
    bars = axes.bar(range(len(labels)), rates, color="#2ca02c", tick_label=labels)
    axes.bar_label(bars, [f"{r['calls']}" for r in f.by_local_hour], fontsize=7,
                   padding=2)
    axes.set_xlabel("recipient's local hour (? = the contact's zones disagree); "
                    "above each bar: calls ended")
    axes.set_ylabel("answer rate %")
    axes.set_ylim(0, 105)
    axes.set_title("Answer rate by the recipient's local hour")
    return _svg(figure)


def _breakdown_chart(rows: Sequence[Mapping[str, Any]], key: str, title: str,
                     empty: str) -> str:
    shown = list(rows[:MAX_ZONES])
    figure, axes = _figure(max(2.0, 0.9 + 0.28 * len(shown)))
    labels = [_label(empty if r[key] is None else r[key]) for r in shown][::-1]
    left = [0.0] * len(shown)
    for column, colour_of in BREAKDOWN_COLUMNS:
        values = [float(r[column]) for r in shown][::-1]
        if any(values):
            axes.barh(range(len(labels)), values, left=left, tick_label=labels,
                      label=column.replace("_", " "), color=COLOURS[colour_of])
            left = [a + b for a, b in zip(left, values, strict=True)]
    axes.set_xlabel("calls ended")
    axes.set_title(title if len(rows) <= MAX_ZONES
                   else f"{title} (the {MAX_ZONES} with most calls)")
    axes.legend(loc="upper left", bbox_to_anchor=(1, 1), fontsize=8)
    return _svg(figure)


def _funnel_chart(f: Figures) -> str:
    figure, axes = _figure()
    keys, series = _by_key(f.retry_funnel, "attempt_no", "ended_in", "attempts")
    _stacked(axes, [f"attempt {k}" for k in keys], series, 0.6, COLOURS)
    return _finish(figure, axes, ylabel="attempts",
                   title="Retry funnel: what attempt 1, 2, 3 ... ended in")


def _queue_chart(f: Figures) -> str:
    figure, axes = _figure()
    rows = f.queue_time
    xs = _times(rows)
    for column, label, colour in (("median_ms", "median", "#2ca02c"),
                                  ("p95_ms", "95th percentile", "#ff7f0e"),
                                  ("max_ms", "longest", "#d62728")):
        axes.plot(xs, [r[column] for r in rows], marker=".", label=label, color=colour)
    _time_axis(axes, f.bucket_seconds)
    axes.set_ylim(bottom=0)
    return _finish(figure, axes, ylabel="queue_time ms",
                   title="Time in Twilio's queue (queue_time of the Create Call answers)")


def _compliance_chart(f: Figures) -> str:
    figure = Figure(figsize=(9, 2.8), layout="constrained")
    packs, waiting = figure.subplots(1, 2)
    for axes, rows, key, value, title, colour in (
        (packs, f.rule_packs, "rule_pack", "attempts", "Calls per rule pack", "#1f77b4"),
        (waiting, f.waiting, "why", "contacts",
         "Contacts not called now (opt-outs: skipped: dnc)", "#ff7f0e"),
    ):
        axes.set_title(title)
        if not rows:
            axes.set_axis_off()
            axes.text(0.5, 0.5, f"no {value}", ha="center", va="center",
                      transform=axes.transAxes)
            continue
        labels = [_label(NO_PACK if r[key] == "none" else r[key]) for r in rows]
        axes.barh(range(len(rows)), [r[value] for r in rows], color=colour,
                  tick_label=labels)
        axes.set_xlabel(value)
    return _svg(figure)


def _cell(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f'<td class="n">{html.escape(str(value))}</td>'
    return f"<td>{'-' if value is None else html.escape(str(value))}</td>"


def _table(rows: Sequence[Mapping[str, Any]], name: str) -> str:
    if not rows:
        return ""
    columns = list(rows[0])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(_cell(r[c]) for c in columns) + "</tr>" for r in rows)
    count = "1 row" if len(rows) == 1 else f"{len(rows)} rows"
    return (f'<details><summary>the numbers ({count})</summary>'
            f'<table data-figure="{name}"><tr>{head}</tr>{body}</table></details>')


def _section(title: str, name: str, tables: Sequence[tuple[str, Sequence[Mapping[str, Any]]]],
             chart: Callable[[], str], empty: str) -> str:
    """A chart with the tables of its numbers; ``empty`` said instead when no table has
    a row."""
    drawn = (chart() if any(rows for _, rows in tables)
             else f'<p class="none">{html.escape(empty)}</p>')
    numbers = "".join(_table(rows, table) for table, rows in tables)
    return (f'<section id="{name}"><h2>{html.escape(title)}</h2>'
            f'<div class="chart">{drawn}</div>{numbers}</section>')


def _summary(f: Figures) -> str:
    rows = "".join(
        f"<tr><th>{html.escape(label)}</th>{_cell(f.summary[column])}</tr>"
        for label, column in SUMMARY_ROWS
    )
    reason = f.summary.get("pause_reason")
    paused = (f"<p>paused by the dialer: {html.escape(str(reason))}</p>" if reason else "")
    return (f'<section id="summary"><table data-figure="summary">{rows}</table>'
            f"{paused}</section>")


def render(f: Figures) -> str:
    """The whole page."""
    with matplotlib.rc_context(cast(Any, RC)):
        sections = [
            _summary(f),
            _section("Attempts and outcomes over time", "attempts_over_time",
                     [("attempts_over_time", f.attempts_over_time)],
                     lambda: _attempts_chart(f), "no attempts yet"),
            _section("CPS achieved against the account's limit", "sends_over_time",
                     [("sends_over_time", f.sends_over_time)], lambda: _cps_chart(f),
                     "no request sent yet"),
            _section("Answer rate by the recipient's local hour", "by_local_hour",
                     [("by_local_hour", f.by_local_hour)], lambda: _local_hour_chart(f),
                     NO_RECORD),
            _section("Outcomes by country", "by_country", [("by_country", f.by_country)],
                     lambda: _breakdown_chart(f.by_country, "country", "Outcomes by country",
                                              "no country"), NO_RECORD),
            _section("Outcomes by zone", "by_zone", [("by_zone", f.by_zone)],
                     lambda: _breakdown_chart(f.by_zone, "zones",
                                              "Outcomes by the contact's zones", "no zone"),
                     NO_RECORD),
            _section("Retry funnel", "retry_funnel", [("retry_funnel", f.retry_funnel)],
                     lambda: _funnel_chart(f), "no attempts yet"),
            _section("Time in queue", "queue_time", [("queue_time", f.queue_time)],
                     lambda: _queue_chart(f), "Twilio reported no queue_time for these calls"),
            _section("Compliance", "compliance",
                     [("rule_packs", f.rule_packs), ("waiting", f.waiting)],
                     lambda: _compliance_chart(f),
                     "no attempt with a compliance record, no contact waiting"),
        ]
    return _page(f"campaign {f.name}",
                 f"<p>state {html.escape(str(f.summary['state']))}, report made "
                 f"{html.escape(f.generated_at)}</p>" + "".join(sections), f.as_json())


def _page(title: str, body: str, data: Mapping[str, Any]) -> str:
    """The page around ``body``, with ``data`` as JSON for programs."""
    text = json.dumps(data, sort_keys=True, default=str).replace("</", "<\\/")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>{body}"
        f'<script type="application/json" id="dialer-figures">{text}</script>'
        "</body></html>\n"
    )


def _forecast_chart(rows: Sequence[Mapping[str, Any]]) -> str:
    totals: dict[str, int] = {}
    for row in rows:
        totals[row["zones"]] = totals.get(row["zones"], 0) + int(row["calls"])
    shown = sorted(totals, key=lambda z: -totals[z])[:MAX_ZONES]
    merged = [{**row, "zones": row["zones"] if row["zones"] in shown else "other zones"}
              for row in rows]
    hours, series = _by_key(merged, "hour", "zones", "calls")
    figure, axes = _figure(3.6)
    _stacked(axes, hours, {_label(k): v for k, v in series.items()}, 0.9, {})
    axes.set_xlabel("hours from the start")
    return _finish(figure, axes, ylabel="calls",
                   title="Forecast: calls per hour by the contacts' zones", legend_size=7)


def forecast_page(name: str, lines: Sequence[str], result: Forecast) -> str:
    """The forecast's text, its chart of calls per hour per zone, and the numbers."""
    rows = hourly_rows(result)
    zones = [{"zones": z.zones, "contacts": z.contacts,
              "opens_at": None if z.opens_at is None else z.opens_at.isoformat(),
              "calls": z.calls, "busiest_hour": z.busiest_hour}
             for z in sorted(result.zones.values(), key=lambda z: (-z.contacts, z.zones))]
    with matplotlib.rc_context(cast(Any, RC)):
        chart = _section("Calls per hour per zone", "forecast_hourly",
                         [("zones", zones), ("forecast_hourly", rows)],
                         lambda: _forecast_chart(rows), "no call would be placed")
    text = "".join(f"<p>{html.escape(line)}</p>" for line in lines)
    return _page(f"forecast for campaign {name}", text + chart,
                 {"lines": list(lines), "zones": zones, "hourly": rows,
                  "seconds": result.seconds, "attempts": result.attempts})
