"""Run every benchmark, one after another, and write bench/RESULTS.md.

    .venv/bin/python bench/run_all.py [--quick] [--output bench/RESULTS.md]

Each script runs as its own subprocess (so one's leftovers cannot slow the next) with
``--json`` where it has it; bench/sim_creates.py and bench/import.py print their
figures, which are parsed from their output. The report puts every figure beside its
goal (DESIGN.md) and beside the naive baseline (bench/baseline.py) measured in the
same run, with the date, the machine and the command that regenerates it. A script
that fails or is missing is reported as such; the others still run. ``--quick`` is a
smoke run (short runs, 100,000 import rows, 200,000 contacts for the report bench): its
figures are not the reference ones.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import ROOT, fmt, machine

from dialer.testing import SIMULATOR_NICE

BENCH = ROOT / "bench"
COMMAND = ".venv/bin/python bench/run_all.py"
STEP_TIMEOUT = 3600
# The cap of the ceiling run that shows what caps cost (issue 15): Florida's figure.
CEILING_CAP = "3/24h"


@dataclass
class Step:
    """One benchmark run: what was run and what came of it."""

    name: str
    script: str
    args: list[str]
    uses_json: bool = True
    returncode: int | None = None
    seconds: float = 0.0
    stdout: str = ""
    stderr: str = ""
    figures: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def plan(quick: bool, reports_contacts: int | None = None) -> list[Step]:
    q = ["--quick"] if quick else []
    return [
        Step("simulator", "sim_creates.py", ["--seconds", "2" if quick else "5"],
             uses_json=False),
        Step("pacing", "pacing.py", q),
        Step("ceiling", "ceiling.py", q),
        Step("ceiling_no_callbacks", "ceiling.py", [*q, "--drop-callbacks"]),
        Step("ceiling_cap", "ceiling.py", [*q, "--cap", CEILING_CAP]),
        Step("callbacks", "callbacks.py", q),
        Step("baseline", "baseline.py", q),
        Step("daemon_memory", "daemon_memory.py", q),
        Step("import", "import.py", ["--rows", "100000"] if quick else [], uses_json=False),
        Step("compliance", "compliance.py", q),
        Step("reports", "reports.py",
             [*q, *(["--contacts", str(reports_contacts)] if reports_contacts else [])]),
        Step("accounts", "accounts.py", q),
    ]


def run(step: Step, folder: Path) -> None:
    script = BENCH / step.script
    if not script.exists():
        step.problem = f"not run: bench/{step.script} does not exist"
        return
    json_path = folder / f"{step.name}.json"
    command = [sys.executable, str(script), *step.args]
    if step.uses_json:
        command += ["--json", str(json_path)]
    print(f"== {step.name}: {' '.join(command[1:])}", flush=True)
    started = time.monotonic()
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                              timeout=STEP_TIMEOUT, check=False)
    except subprocess.TimeoutExpired as exc:
        step.problem = f"timed out after {STEP_TIMEOUT} s"
        step.stdout = _text(exc.stdout)
        step.stderr = _text(exc.stderr)
        return
    finally:
        step.seconds = time.monotonic() - started
    step.returncode, step.stdout, step.stderr = done.returncode, done.stdout, done.stderr
    print(step.stdout, flush=True)
    if done.returncode != 0:
        step.problem = f"exited with {done.returncode}"
        print(step.stderr[-3000:], file=sys.stderr, flush=True)
        return
    try:
        if step.uses_json:
            step.figures = json.loads(json_path.read_text())["figures"]
        else:
            step.figures = PARSERS[step.name](step.stdout)
    except (OSError, ValueError, KeyError) as exc:
        step.problem = f"figures not readable: {exc}"


def _text(data: str | bytes | None) -> str:
    return data.decode(errors="replace") if isinstance(data, bytes) else data or ""


def _search(pattern: str, text: str) -> re.Match[str]:
    found = re.search(pattern, text)
    if found is None:
        raise ValueError(f"no line matching {pattern!r} in the output")
    return found


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def parse_simulator(out: str) -> dict[str, Any]:
    """``creates: N in S s = X creates/s (...)`` from bench/sim_creates.py."""
    found = _search(r"creates: (\d+) in ([\d.]+) s = ([\d,]+) creates/s", out)
    return {"creates": int(found[1]), "seconds": float(found[2]),
            "creates_per_s": _number(found[3])}


def parse_import(out: str) -> dict[str, Any]:
    """Rows/s and peak memory from bench/import.py's closing lines."""
    rows = _search(r"generated ([\d,]+) rows", out)
    rate = _search(r"-> ([\d,]+) rows/s", out)
    rss = _search(r"peak RSS: import process (\d+) MB; largest process (\d+) MB; "
                  r"all import processes together (\d+) MB", out)
    return {"rows": int(_number(rows[1])), "rows_per_s": _number(rate[1]),
            "rss_import_mb": int(rss[1]), "rss_largest_mb": int(rss[2]),
            "rss_all_mb": int(rss[3])}


PARSERS: dict[str, Callable[[str], dict[str, Any]]] = {
    "simulator": parse_simulator, "import": parse_import,
}


# ---- the report ---------------------------------------------------------------------


def md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def ratio(better: float | None, worse: float | None, *, higher_is_better: bool) -> str:
    """How the dialer compares with the baseline, said so that > 1x means better."""
    if better is None or worse is None or math.isnan(better) or math.isnan(worse):
        return "-"
    if higher_is_better:
        return f"{better / worse:.1f}x" if worse else "-"
    return f"{worse / better:.1f}x" if better else "inf"


def verdict(met: bool | None) -> str:
    return "-" if met is None else ("**yes**" if met else "**NO**")


class Report:
    def __init__(self, steps: dict[str, Step]) -> None:
        self.steps = steps
        self.rows: list[list[Any]] = []

    def figures(self, name: str) -> dict[str, Any] | None:
        step = self.steps.get(name)
        return step.figures if step is not None and step.ok else None

    def add(self, figure: str, goal: str, value: Any, met: bool | None,
            baseline: Any = None, compared: str = "-") -> None:
        self.rows.append([figure, goal, value, verdict(met), baseline, compared])

    def missing(self, figure: str, goal: str, step: str) -> None:
        problem = self.steps[step].problem if step in self.steps else "not run"
        self.rows.append([figure, goal, f"not measured ({problem})", "-", None, "-"])

    def cap_cost(self, plain: dict[str, Any] | None, capped: dict[str, Any] | None) -> None:
        """What the cap adds to a claim: the mean claim of the ceiling run with a cap
        against the one without (the number lock is taken in both)."""
        label = f"cap {CEILING_CAP}: added to a claim (mean claim ms, no cap -> cap)"
        if plain is None or capped is None:
            self.missing(label, "-", "ceiling" if plain is None else "ceiling_cap")
            return
        def per_contact_us(c: dict[str, Any]) -> float:
            return c["claim_ms"] * c["claims"] * 1000 / max(1, c["creates"])

        added = capped["claim_ms"] - plain["claim_ms"]
        added_us = per_contact_us(capped) - per_contact_us(plain)
        self.add(label, "-", f"{added:+.2f} ms ({plain['claim_ms']:.2f} -> "
                 f"{capped['claim_ms']:.2f}), {added_us:+.1f} µs per claimed contact", None)

    def summary(self) -> str:
        pacing, base = self.figures("pacing"), self.figures("baseline")
        base_rates = {r["target"]: r for r in base["rates"]} if base else {}
        if pacing is None:
            self.missing("pacing", "|error| < 1 %, no window > r, p99 < 5 ms", "pacing")
        for r in pacing["rates"] if pacing else []:
            b = base_rates.get(r["target"])
            rate = f"{r['target']:g} CPS"
            self.add(f"pacing error at {rate}", "< 1 %", f"{r['error_pct']:+.2f} %",
                     abs(r["error_pct"]) < 1, b and f"{b['error_pct']:+.2f} %",
                     ratio(abs(r["error_pct"]), b and abs(b["error_pct"]),
                           higher_is_better=False))
            worst = r["max_in_window"]
            if r["windows_over"]:
                worst = (f"{worst} ({r['windows_over']} windows over, the first "
                         f"{r['first_over_at_s']:.1f} s after the first call)")
            self.add(f"most calls in a 1 s window at {rate}", f"<= {r['target']:g}",
                     worst, r["windows_over"] == 0, b and b["max_in_window"])
            self.add(f"gap deviation p99 at {rate}", "< 5 ms", f"{r['gap_p99_dev_ms']:.2f} ms",
                     r["gap_p99_dev_ms"] < 5, b and f"{b['gap_p99_dev_ms']:.2f} ms",
                     ratio(r["gap_p99_dev_ms"], b and b["gap_p99_dev_ms"],
                           higher_is_better=False))
        naive = base["ceiling"]["steady_creates_per_s"] if base else None
        for name, label in (("ceiling", "creates/s, one daemon, pacing off (with callbacks)"),
                            ("ceiling_no_callbacks",
                             "creates/s, one daemon, pacing off (no callbacks)"),
                            ("ceiling_cap", "creates/s, one daemon, pacing off (with "
                                            f"callbacks, cap {CEILING_CAP})")):
            c = self.figures(name)
            if c is None:
                self.missing(label, ">= 1,000/s", name)
                continue
            self.add(label, ">= 1,000/s", c["steady_creates_per_s"],
                     c["steady_creates_per_s"] >= 1000, naive,
                     ratio(c["steady_creates_per_s"], naive, higher_is_better=True))
        c = self.figures("ceiling")
        if c is not None:
            self.add("callbacks recorded/s during the ceiling run", "-",
                     c["steady_callbacks_per_s"], None)
        self.cap_cost(c, self.figures("ceiling_cap"))
        cb = self.figures("callbacks")
        if cb is None:
            self.missing("callbacks/s recorded (duplicates included)", ">= 2,000/s",
                         "callbacks")
        else:
            self.add("callbacks/s recorded (duplicates included)", ">= 2,000/s",
                     cb["requests_per_s"], cb["requests_per_s"] >= 2000)
            self.add("callbacks stored exactly once", "all", cb["exactly_once"],
                     cb["exactly_once"])
        imp = self.figures("import")
        if imp is None:
            self.missing("import rows/s", ">= 100,000/s", "import")
        else:
            rows = f"{imp['rows']:,} rows"
            self.add(f"import rows/s ({rows})", ">= 100,000/s", imp["rows_per_s"],
                     imp["rows_per_s"] >= 100_000)
            self.add(f"import peak RSS, all processes ({rows})", "< 300 MB",
                     f"{imp['rss_all_mb']} MB", imp["rss_all_mb"] < 300)
        mem = self.figures("daemon_memory")
        label = "daemon peak RSS, 1,000,000-contact campaign"
        if mem is None:
            self.missing(label, "< 150 MB", "daemon_memory")
        else:
            self.add(label, "< 150 MB", f"{mem['rss_peak_mb']:.0f} MB", mem["goal_met"])
        comp = self.figures("compliance")
        label = "calls allowed outside a candidate zone's window (simulated week)"
        if comp is None:
            self.missing(label, "0", "compliance")
        else:
            week, claim = comp["week"], comp["claim"]
            self.add(f"{label}, {week['contacts']:,} contacts", "0",
                     week["allowed_outside_window"], week["allowed_outside_window"] == 0)
            self.add("calling-time decision per claimed contact", "-",
                     f"{week['decision_us_per_contact']:.2f} µs", None)
            self.add("added to the claim query per contact (zones, rules, record, number "
                     "lock)", "-",
                     f"{claim['added_us_per_contact']:+.1f} µs "
                     f"({claim['before_us_per_contact']:.1f} -> "
                     f"{claim['today_us_per_contact']:.1f})", None)
            self.add("the cap check in the claim per contact (caps 3/24h, 7/7d, quiet 7d)",
                     "-", f"{claim['cap_added_us_per_contact']:+.1f} µs "
                     f"({claim['today_ms_per_claim']:.2f} -> "
                     f"{claim['capped_ms_per_claim']:.2f} ms per claim of 200)", None)
        self.reports()
        acc = self.figures("accounts")
        label = "accounts at 50 CPS each, 150 ms API latency: every one within 1 %"
        if acc is None:
            self.missing(label, "all", "accounts")
        else:
            for run in acc["runs"]:
                worst = max(abs(p["error_pct"]) for p in run["per_account"])
                over = sum(p["windows_over"] for p in run["per_account"])
                self.add(f"{run['accounts']} account(s) at 50 CPS each: worst error, windows "
                         "over", "< 1 %, 0", f"{worst:.2f} %, {over}", run["all_within_1pct"])
                self.add(f"{run['accounts']} account(s): daemon CPU per call", "-",
                         f"{run['cpu_ms_per_call']:.2f} ms", None)
            self.add("highest total rate held, all accounts within 1 %, / one account's "
                     "ceiling", "-", f"{acc['highest_total_held']:.0f}/s = "
                     f"{acc['ratio_to_one_account_ceiling']:.2f}x", None)
        sim = self.figures("simulator")
        if sim is None:
            self.missing("simulator creates/s", "above the daemon's goal", "simulator")
        else:
            self.add("simulator creates/s", "> 1,000/s (must outrun the daemon)",
                     sim["creates_per_s"], sim["creates_per_s"] > 1000)
        return md_table(["figure", "goal", "dialer", "goal met", "naive baseline",
                         "dialer vs baseline"], self.rows)


    def reports(self) -> None:
        rep = self.figures("reports")
        if rep is None:
            for figure, goal in (("campaign summary p95, small and large campaign", "< 50 ms"),
                                 ("export rows/s", ">= 200,000/s"),
                                 ("export peak RSS", "< 150 MB"),
                                 ("claim latency p50 against an empty database", "<= 2x")):
                self.missing(figure, goal, "reports")
            return
        size = f"{rep['contacts']:,} contacts, {rep['attempts']:,} attempts"
        self.add(f"campaign summary p95, small and large campaign ({size})", "< 50 ms",
                 f"{rep['summary_p95_ms']:.2f} ms", rep["summary_goal_met"])
        rows = f"{rep['export_rows']:,} rows"
        self.add(f"export rows/s, `report --csv` of the large campaign ({rows})",
                 ">= 200,000/s", rep["export_rows_per_s"],
                 rep["export_rows_per_s"] >= 200_000)
        self.add("export peak RSS (plain and gzip)", "< 150 MB",
                 f"{rep['export_peak_rss_mb']:.0f} MB", rep["export_peak_rss_mb"] < 150)
        self.add(f"claim latency p50 against an empty database ({size})", "<= 2x",
                 f"{rep['claim_ratio']:.2f}x", rep["claim_goal_met"])


def render(steps: list[Step], quick: bool, started: dt.datetime,
           machine_info: dict[str, Any]) -> str:
    report = Report({s.name: s for s in steps})
    command = COMMAND + (" --quick" if quick else "")
    out = [
        "# Benchmark results",
        "",
        "Generated by `bench/run_all.py`; do not edit by hand. Regenerate with:",
        "",
        "```sh",
        COMMAND,
        "```",
        "",
    ]
    if quick:
        out += [f"**This is a smoke run (`{command}`): short runs, 100,000 import rows, "
                "200,000 report contacts. "
                "Its figures are not the reference ones.**", ""]
    out += [
        f"- date: {started:%Y-%m-%d %H:%M} UTC (took {sum(s.seconds for s in steps):.0f} s)",
        f"- machine: nproc {machine_info['nproc']}, Python {machine_info['python']}, "
        f"{machine_info['platform']}; load average at start "
        f"{' / '.join(str(x) for x in machine_info['load_average_at_start'])}",
        "- Postgres: a throwaway pgserver cluster per script, durable settings (fsync on); "
        "the simulator always runs in its own process, at nice "
        f"{SIMULATOR_NICE} when allowed (it timestamps the arrivals: its own scheduling "
        "delays must not count against the daemon)",
        "- naive baseline: a synchronous loop over the official `twilio` library with "
        "`time.sleep(1/r)` (bench/baseline.py), against the same simulator; "
        "\"dialer vs baseline\" > 1x means the dialer does better",
        "",
        "## Summary",
        "",
        report.summary(),
        "",
        "## Details",
        "",
        "Each script's own output (run it alone for the same tables).",
        "",
    ]
    for step in steps:
        out += [f"### {step.name}: `bench/{step.script} {' '.join(step.args)}`".rstrip(), ""]
        if not step.ok:
            out += [f"**{step.problem}**", ""]
        text = step.stdout.strip()
        if not step.ok and step.stderr.strip():
            text += "\n--- stderr (last lines) ---\n" + "\n".join(
                step.stderr.strip().splitlines()[-25:])
        if text:
            out += ["```", text, "```", ""]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--output", type=Path, default=BENCH / "RESULTS.md")
    parser.add_argument("--reports-contacts", type=int, default=None, metavar="N",
                        help="contacts of the reports bench's database (default: its own, "
                             "10,000,000, about 45 min on 2 cores)")
    args = parser.parse_args()
    started = dt.datetime.now(dt.UTC)
    machine_info = machine()
    steps = plan(args.quick, args.reports_contacts)
    with tempfile.TemporaryDirectory(prefix="dialer-bench-") as folder:
        for step in steps:
            run(step, Path(folder))
            if step.problem:
                print(f"!! {step.name}: {step.problem}", file=sys.stderr, flush=True)
    args.output.write_text(render(steps, args.quick, started, machine_info))
    print(f"wrote {args.output}")
    failed = [s.name for s in steps if not s.ok]
    if failed:
        print(f"not measured: {', '.join(failed)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
