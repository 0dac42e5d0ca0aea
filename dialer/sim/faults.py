"""Faults to inject into Create Call requests, settable at any time while serving.

Each models a way the real API leaves a client unsure or refused, and whether a call
exists afterwards is what matters to the client:

- ``reset_before_create``: the connection is reset before anything happens; no call.
- ``rate_limited``: 429 with code 20429 (a storm); no call.
- ``server_errors``: a 5xx (``server_error_status``, 500 or 503); no call.
- ``reset_after_create`` / ``reset_after_create_probability``: the call is created
  and proceeds, but the connection is reset instead of answering.
- ``response_delay``: the call is created, then the answer is held this many seconds
  (to go past a client's timeout).

Counters count down one per create request they hit; checked in the order above.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass, field


class Refusal(enum.Enum):
    """What a fault does to a create request before any call is created."""

    RESET = "reset"
    RATE_LIMITED = "rate_limited"
    SERVER_ERROR = "server_error"


@dataclass
class Faults:
    reset_before_create: int = 0
    rate_limited: int = 0
    server_errors: int = 0
    server_error_status: int = 500
    reset_after_create: int = 0
    reset_after_create_probability: float = 0.0
    response_delay: float = 0.0
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def refusal(self) -> Refusal | None:
        """The refusal for the next create request, if any; uses up one of its count."""
        if self.reset_before_create > 0:
            self.reset_before_create -= 1
            return Refusal.RESET
        if self.rate_limited > 0:
            self.rate_limited -= 1
            return Refusal.RATE_LIMITED
        if self.server_errors > 0:
            self.server_errors -= 1
            return Refusal.SERVER_ERROR
        return None

    def reset_after(self) -> bool:
        """Whether to drop the answer of the create request that just made a call."""
        if self.reset_after_create > 0:
            self.reset_after_create -= 1
            return True
        probability = self.reset_after_create_probability
        return probability > 0 and self.rng.random() < probability

    def clear(self) -> None:
        """Back to no faults (the random generator keeps its state)."""
        self.reset_before_create = self.rate_limited = self.server_errors = 0
        self.reset_after_create = 0
        self.reset_after_create_probability = self.response_delay = 0.0
        self.server_error_status = 500
