"""Prometheus metrics of the daemon (served at /metrics by the callback endpoint).

Names are stable (dashboards read them); whatever is counted per Twilio account has
an ``account`` label, the account's SID. The Grafana dashboard in ``config/grafana/``
queries these; its test checks each name and label it uses against a running daemon's
/metrics. Labels whose values are known in advance are created at start, so their
series exist (at 0) before anything happens."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CALLS_CREATED = Counter(
    "dialer_calls_created", "Create Call requests by account, campaign and result",
    ["account", "campaign", "result"],
)
CURRENT_CPS = Gauge("dialer_account_cps", "Current pacing rate per account", ["account"])
CPS_LIMIT = Gauge(
    "dialer_account_cps_limit", "The account's CPS as configured (DIALER_TWILIO_CPS)", ["account"]
)
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
CONTACTS_CAPPED = Counter(
    "dialer_contacts_capped",
    "Contacts a claim deferred because a cap or quiet period allowed no call yet", ["campaign"],
)
OPT_OUTS = Counter(
    "dialer_opt_outs", "Numbers put on a do-not-call list by a key pressed during a call",
    ["campaign"],
)
CLAIMS_LISTED = Counter(
    "dialer_claims_listed",
    "Claimed calls not sent because the number was put on a do-not-call list meanwhile",
    ["campaign"],
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
CALLBACK_SECONDS = Histogram(
    "dialer_callback_seconds",
    "Time to answer a callback: checks, durable recording (group commit) and the decision",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
# Where the daemon meets a database that is away or refuses a statement; the work
# waits or is done again (see dialer.repository.DATABASE_ERRORS).
DATABASE_ERROR_SITES = ("dispatch", "answers", "callback", "housekeeping", "listener")
DATABASE_ERRORS = Counter(
    "dialer_database_errors", "Database operations that failed, by where in the daemon",
    ["where"],
)
for _where in DATABASE_ERROR_SITES:
    DATABASE_ERRORS.labels(_where)
DISPATCH_PROGRESS_AGE = Gauge(
    "dialer_dispatch_progress_age_seconds",
    "Seconds since the account's dispatch loop last made progress (the watchdog is fed "
    "only while every account's stays under the watchdog interval)", ["account"],
)
WATCHDOG_PINGS = Counter("dialer_watchdog_pings", "WATCHDOG=1 notifications sent to systemd")
