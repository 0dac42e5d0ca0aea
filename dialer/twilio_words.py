"""Twilio's words, defined once: call statuses, AnsweredBy values, callback sources and
the few error codes the dialer names (as arq's ``constants.py`` holds every key name).

Sources: the Call resource's ``status`` values and StatusCallbackEvent names (Twilio's
Call resource page, ``/work/shared/seeds``), the AnsweredBy values of answering
machine detection, and CallbackSource on status callbacks. The whole table of Create
Call error codes and whom each concerns is ``dialer.twilio_errors``; the migrations'
CHECK constraints spell the same statuses for the database (0001_schema.sql).
"""

from __future__ import annotations

API_VERSION = "2010-04-01"

# ---- call statuses ---------------------------------------------------------------

PROGRESS_STATUSES = ("queued", "initiated", "ringing", "in-progress")
"""A call on its way, in the order it moves through them."""
FINAL_STATUSES = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})
"""A call that ended; nothing follows these."""
CALL_STATUSES = frozenset({*PROGRESS_STATUSES, *FINAL_STATUSES})
"""What a status callback's CallStatus may say."""
RESOURCE_STATUSES = CALL_STATUSES - {"initiated"}
"""What the Call resource's ``status`` may say (its OpenAPI enum has no ``initiated``)."""

_RANK = {status: position for position, status in enumerate(PROGRESS_STATUSES)}


def status_rank(status: str | None) -> int:
    """How far a call has got: statuses only move forward, so a late ``ringing`` never
    regresses a final status (-1 for none yet; every final status ranks alike)."""
    if status is None:
        return -1
    return len(PROGRESS_STATUSES) if status in FINAL_STATUSES else _RANK[status]


STATUS_CALLBACK_EVENTS = ("initiated", "ringing", "answered", "completed")
"""Every StatusCallbackEvent there is (the dialer asks for all of them)."""

# ---- answering machine detection ---------------------------------------------------

MACHINE_ANSWERS = frozenset(
    {"machine_start", "machine_end_beep", "machine_end_silence", "machine_end_other"}
)
MESSAGE_END_ANSWERS = MACHINE_ANSWERS - {"machine_start"}
"""A machine whose greeting has ended (DetectMessageEnd): a message can be left now."""
HUMAN = "human"
FAX = "fax"
UNKNOWN = "unknown"
ANSWERED_BY = frozenset({*MACHINE_ANSWERS, HUMAN, FAX, UNKNOWN})

# ---- where an event came from --------------------------------------------------------

STATUS_SOURCE = "call-progress-events"
"""Twilio's CallbackSource on status callbacks."""
AMD_SOURCE = "amd"
"""The dialer's name for asynchronous AMD results (they carry no CallbackSource)."""
RECONCILE_SOURCE = "reconcile"
"""The dialer's name for what it learned by fetching or listing calls itself."""

# ---- error codes named in code -------------------------------------------------------

CALL_NOT_IN_PROGRESS = 21220
"""Updating a call that is no longer in progress (a hang-up that came too late)."""
