"""Import benchmark: a million-row contact CSV through the real ``dialer import``.

    .venv/bin/python bench/import.py [--rows 1000000] [--workers N] [--gzip]

Generates the file (several columns, nine countries and time zones) in a temporary
directory, starts a throwaway embedded Postgres with default (durable) settings
unless ``DIALER_DATABASE_URL`` is set, creates a campaign, and runs the import as an
operator would, in a subprocess. It prints rows/s and the peak memory: the import
process's own high-water mark (VmHWM), the largest process seen by the kernel
(``ru_maxrss`` of the waited-for children, parser workers included), and the peak
of all its processes together, sampled every 20 ms, and the import's own figures
(its ``import_finished`` log line): CPU µs per row reading the CSV, parsing rows
into COPY text, and in the loading process (database client work; Postgres's own
time is the rest of the wall time), and the hit rate of the exact number cache.
Goal of issues 6 and 18: >= 100,000 rows/s and under 300 MB, all processes together.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

from _common import process_cpu_seconds, status_kb

from dialer.testing import clean_env
from dialer.testing.contact_files import write_contacts

ACCOUNT = "AC" + "0" * 32


def _tree(pid: int) -> list[int]:
    found = [pid]
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                for child in f.read().split():
                    found.extend(_tree(int(child)))
    except OSError:
        pass
    return found


def _postgres_cpu(postmaster: int | None) -> float:
    """Postgres's CPU seconds so far: the postmaster, the backends that have ended
    (waited for by it) and those still running. 0 for a server not started here."""
    if postmaster is None:
        return 0.0
    return process_cpu_seconds(postmaster, children=True)


def _figures(log: str) -> dict[str, object]:
    """The fields of the import's ``import_finished`` log line."""
    for line in log.splitlines():
        if '"import_finished"' in line:
            fields: dict[str, object] = json.loads(line)
            return fields
    raise SystemExit(f"the import logged no import_finished line:\n{log[-2000:]}")


def _cli(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "dialer.cli", *args],
        env=env, capture_output=True, text=True, check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"dialer {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def _measure_import(
    args: list[str], env: dict[str, str]
) -> tuple[float, str, str, int, int, int]:
    """Run the import; (seconds, output, log, own peak kB, largest child kB, tree peak
    kB)."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "dialer.cli", *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    own_peak = tree_peak = 0
    while proc.poll() is None:
        own_peak = max(own_peak, status_kb(proc.pid, "VmHWM"))
        tree_peak = max(tree_peak, sum(status_kb(p, "VmRSS") for p in _tree(proc.pid)))
        time.sleep(0.02)
    out, err = proc.communicate()
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"import failed ({proc.returncode}):\n{out}{err}")
    largest = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return seconds, out, err, own_peak, largest, tree_peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=None, help="dialer import --workers")
    parser.add_argument("--gzip", action="store_true", help="import a .csv.gz")
    options = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="dialer-bench-") as tmp:
        folder = Path(tmp)
        path = folder / ("contacts.csv.gz" if options.gzip else "contacts.csv")
        t0 = time.perf_counter()
        generated = write_contacts(path, options.rows)
        size = path.stat().st_size
        print(f"generated {generated.rows:,} rows ({generated.distinct:,} distinct numbers, "
              f"{size / 1e6:.0f} MB) in {time.perf_counter() - t0:.1f} s")

        server = None
        dsn = os.environ.get("DIALER_DATABASE_URL")
        if not dsn:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from pgserver.postgres_server import get_server

                server = get_server(folder / "pg", cleanup_mode="stop")
            dsn = server.get_uri()
        postmaster = server.get_pid() if server is not None else None
        env = clean_env({"DIALER_DATABASE_URL": dsn, "DIALER_TWILIO_ACCOUNT_SID": ACCOUNT,
                         "DIALER_ENV_FILE": str(folder / "absent.env"),
                         "DIALER_LOG_LEVEL": "debug", "DIALER_LOG_FORMAT": "json"})
        try:
            name = f"bench{int(time.time())}"
            _cli("migrate", env=env)
            _cli("campaign", "create", name, "--from", "+14155550100",
                 "--twiml-url", "https://example.com/twiml", env=env)
            command = ["import", name, str(path)]
            if options.workers is not None:
                command += ["--workers", str(options.workers)]
            cpu_before = _postgres_cpu(postmaster)
            seconds, out, log, own, largest, tree = _measure_import(command, env)
            postgres_cpu = _postgres_cpu(postmaster) - cpu_before
        finally:
            if server is not None:
                server.cleanup()
    print(out.rstrip())
    print(f"wall time (process start to exit): {seconds:.2f} s -> "
          f"{generated.rows / seconds:,.0f} rows/s")
    figures = _figures(log)
    print(f"import's own time: {figures['seconds']} s, {figures['rows_per_second']:,} rows/s "
          f"({'COPY straight into contacts' if figures['copied_straight'] else 'merged'}, "
          f"{figures['batches']} batches)")
    print(f"CPU µs per row: read {figures['read_us_per_row']}, parse "
          f"{figures['parse_us_per_row']} (parser process), loader "
          f"{figures['loader_us_per_row']} (importing process), Postgres "
          + (f"{postgres_cpu * 1e6 / generated.rows:.2f} (all its processes)"
             if postmaster is not None else "not measured (DIALER_DATABASE_URL's server)"))
    print(f"number cache: hit rate {figures['cache_hit_rate']} ({figures['cache_hits']:,} "
          f"hits, {figures['cache_misses']:,} misses, {figures['cache_classes']:,} classes)")
    print(f"peak RSS: import process {own / 1024:.0f} MB; largest process "
          f"{largest / 1024:.0f} MB; all import processes together {tree / 1024:.0f} MB")


if __name__ == "__main__":
    main()
