"""Prometheus metrics of the daemon (served at /metrics by the callback endpoint).

Names are stable (dashboards read them); whatever is counted per Twilio account has
an ``account`` label, the account's SID.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CALLS_CREATED = Counter(
    "dialer_calls_created", "Create Call requests by account, campaign and result",
    ["account", "campaign", "result"],
)
CURRENT_CPS = Gauge("dialer_account_cps", "Current pacing rate per account", ["account"])
BUCKET_WAIT = Histogram(
    "dialer_bucket_wait_seconds", "Time a ready call waited for its send slot", ["account"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5),
)
CALLBACKS = Counter("dialer_callbacks", "Callbacks recorded by status", ["source", "status"])
CALLBACK_REJECTS = Counter("dialer_callback_rejects", "Callbacks refused, by reason", ["reason"])
IN_FLIGHT = Gauge(
    "dialer_calls_in_flight",
    "Calls this process created that have no final status yet, per account", ["account"],
)
CLAIM_SECONDS = Histogram(
    "dialer_claim_seconds", "Latency of one claim transaction", ["account"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5),
)
TWILIO_LATENCY = Histogram(
    "dialer_twilio_request_seconds", "Latency of Create Call requests", ["account"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
TWILIO_ERRORS = Counter("dialer_twilio_errors", "Twilio errors by account and code",
                        ["account", "code"])
CAMPAIGNS_PAUSED = Counter(
    "dialer_campaigns_paused",
    "Campaigns the dialer paused itself: Twilio refused their settings or their account",
    ["account", "campaign", "concern", "code"],
)
