"""Fixtures for the simulator's tests: a fast simulator, a client for it, a receiver."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from dialer.sim import SimServer
from tests.sim.support import Api, Receiver, api_for, fast_config, serving


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    async with SimServer(fast_config()) as server:
        yield server


@pytest.fixture
async def api(sim: SimServer) -> AsyncIterator[Api]:
    async with api_for(sim) as client:
        yield client


@pytest.fixture(scope="session")
async def shared_receiver() -> AsyncIterator[Receiver]:
    async with serving(Receiver()) as running:
        yield running


@pytest.fixture
def receiver(shared_receiver: Receiver) -> Receiver:
    """One receiver for the session (starting servers costs time), reset for each test."""
    shared_receiver.reset()
    return shared_receiver
