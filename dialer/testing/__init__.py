"""What the tests and the benchmarks share: a throwaway Postgres, factories of
campaigns and numbers, the simulator in-process or as a process, the daemon
in-process or as ``dialer run`` processes, and waiting and counting helpers.

Like ``procrastinate.testing``, it ships with the package so that benchmarks import
it as they import the dialer; the daemon never imports it (nor ``dialer.sim``).
"""

from dialer.testing.assertions import assert_recorded_as_placed, attempts_of, read_csv_rows
from dialer.testing.daemon import daemon_settings, recording, running_daemon
from dialer.testing.factories import (
    FROM_NUMBER,
    MIX,
    QUICK_RETRY,
    SIM_SID,
    SIM_TOKEN,
    TWIML_URL,
    account_sid,
    account_token,
    campaign_completed,
    campaign_in_state,
    campaign_state,
    contact_states,
    human_number,
    humans,
    located,
    make_campaign,
    mixed,
    workers_at_least,
)
from dialer.testing.postgres import Cluster, dsn_for, throwaway_cluster
from dialer.testing.processes import (
    clean_env,
    daemon_env,
    daemon_process,
    daemons,
    run_cli,
    write_credentials,
)
from dialer.testing.simulator import (
    SIMULATOR_NICE,
    Simulator,
    called_numbers,
    change_account,
    sim_config,
    simulator,
    simulator_process,
    stop_process,
)
from dialer.testing.waiting import free_port, max_in_window, wait_until, window_counts

__all__ = [
    "FROM_NUMBER",
    "MIX",
    "QUICK_RETRY",
    "SIMULATOR_NICE",
    "SIM_SID",
    "SIM_TOKEN",
    "TWIML_URL",
    "Cluster",
    "Simulator",
    "account_sid",
    "account_token",
    "assert_recorded_as_placed",
    "attempts_of",
    "called_numbers",
    "campaign_completed",
    "campaign_in_state",
    "campaign_state",
    "change_account",
    "clean_env",
    "contact_states",
    "daemon_env",
    "daemon_process",
    "daemon_settings",
    "daemons",
    "dsn_for",
    "free_port",
    "human_number",
    "humans",
    "located",
    "make_campaign",
    "max_in_window",
    "mixed",
    "read_csv_rows",
    "recording",
    "run_cli",
    "running_daemon",
    "sim_config",
    "simulator",
    "simulator_process",
    "stop_process",
    "throwaway_cluster",
    "wait_until",
    "window_counts",
    "workers_at_least",
    "write_credentials",
]
