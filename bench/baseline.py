"""The naive baseline: a synchronous loop over the official ``twilio`` library, paced with
``time.sleep(1 / r)``, against the same simulator the daemon is measured with.

    .venv/bin/python bench/baseline.py [--rates 1,10,30,100] [--seconds 60]
                                       [--ceiling-seconds 10] [--quick] [--json FILE]

This is what a script written from Twilio's quick-start looks like::

    for number in numbers:
        client.calls.create(to=number, from_=FROM, url=TWIML_URL)
        time.sleep(1 / cps)

For each rate it places ``r * --seconds`` calls that way (a fresh simulator process
per rate) and takes the same figures as bench/pacing.py from the simulator's trace:
achieved rate, error, the most calls in any one-second window, gap deviation. Then
its ceiling: the same loop without the sleep, creates per second over the steady
middle of ``--ceiling-seconds``. It records no outcomes (no callbacks asked for).
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import asdict
from typing import Any

from _common import (
    PACING_HEADERS,
    Pacing,
    pacing_figures,
    pacing_row,
    parser,
    print_table,
    steady_rate,
    write_json,
)
from twilio.rest import Client

from dialer.testing import FROM_NUMBER, TWIML_URL, Simulator, human_number, humans, simulator


def official_client(sim: Simulator) -> Client:
    client = Client(sim.account_sid, sim.auth_token)
    client.api.base_url = sim.base_url  # no edge or region set: the host is used as is
    return client


def paced_loop(rate: float, seconds: float) -> Pacing:
    numbers = humans(math.ceil(rate * seconds) + 1)
    with simulator(cps=1000, time_scale=0.001) as sim:
        client = official_client(sim)
        for number in numbers:
            client.calls.create(to=number, from_=FROM_NUMBER, url=TWIML_URL)
            time.sleep(1 / rate)
        times = [r["t"] for r in sim.create_records()]
    return pacing_figures(times, rate)


def unpaced_loop(seconds: float) -> dict[str, Any]:
    with simulator(cps=100_000, time_scale=0.001, loop="uvloop") as sim:
        client = official_client(sim)
        deadline = time.monotonic() + seconds
        for index in itertools.count():
            client.calls.create(to=human_number(index), from_=FROM_NUMBER, url=TWIML_URL)
            if time.monotonic() > deadline:
                break
        times = [r["t"] for r in sim.create_records()]
    rate, creates, span = steady_rate(times)
    return {"creates": len(times), "steady_creates_per_s": rate, "steady_span_s": span,
            "steady_creates": creates}


def main() -> None:
    p = parser(__doc__.splitlines()[0], database=False)
    p.add_argument("--rates", default="1,10,30,100", help="comma-separated CPS values")
    p.add_argument("--seconds", type=float, default=None,
                   help="seconds per rate (default 60; 10 with --quick)")
    p.add_argument("--ceiling-seconds", type=float, default=None,
                   help="length of the unpaced run (default 10; 3 with --quick)")
    args = p.parse_args()
    seconds = args.seconds or (10.0 if args.quick else 60.0)
    ceiling_seconds = args.ceiling_seconds or (3.0 if args.quick else 10.0)
    rates = [float(r) for r in args.rates.split(",")]
    paced = []
    for rate in rates:
        print(f"naive loop at {rate:g} CPS for {seconds:g} s ...", flush=True)
        paced.append(paced_loop(rate, seconds))
    print(f"naive loop unpaced for {ceiling_seconds:g} s ...", flush=True)
    ceiling = unpaced_loop(ceiling_seconds)
    print_table(
        f"Naive baseline: twilio library + time.sleep(1/r), {seconds:g} s per rate",
        PACING_HEADERS, [pacing_row(r) for r in paced],
    )
    print_table(
        "Naive baseline ceiling: the same loop without the sleep",
        ["creates", "steady creates/s"], [[ceiling["creates"], ceiling["steady_creates_per_s"]]],
    )
    write_json(args.json, "baseline", args,
               {"seconds": seconds, "rates": [asdict(r) for r in paced], "ceiling": ceiling})


if __name__ == "__main__":
    main()
