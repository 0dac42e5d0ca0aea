"""A Twilio-compatible simulator of the Calls part of the 2010-04-01 REST API, and of
the account's own resources (the Account, its phone numbers and caller IDs).

It creates, lists, fetches and updates calls like Twilio, queues them at the
account's CPS, decides each call's outcome from a scenario, and sends signed status
and AMD callbacks; faults and a request trace make it a test instrument. The daemon
never imports it. Start it in-process with ``SimServer`` or as ``dialer sim``.
"""

from dialer.sim.callbacks import Attempt, CallbackRecord
from dialer.sim.calls import SimCall
from dialer.sim.config import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, SimConfig
from dialer.sim.faults import Faults
from dialer.sim.scenario import (
    DEFAULT_WEIGHTS,
    AmdMode,
    Fate,
    deterministic_fate,
)
from dialer.sim.server import SimServer
from dialer.sim.trace import TraceRecord

__all__ = [
    "DEFAULT_ACCOUNT_SID",
    "DEFAULT_AUTH_TOKEN",
    "DEFAULT_WEIGHTS",
    "AmdMode",
    "Attempt",
    "CallbackRecord",
    "Fate",
    "Faults",
    "SimCall",
    "SimConfig",
    "SimServer",
    "TraceRecord",
    "deterministic_fate",
]
