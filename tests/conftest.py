"""Shared fixtures: one throwaway Postgres per test session, a fresh database per test.

The server comes from the ``pgserver`` package (no system install needed), through
``dialer.testing.postgres`` (which the benchmarks use too): a migrated template
database is built once and cloned per test with ``CREATE DATABASE ... TEMPLATE``,
which takes milliseconds.
"""

from __future__ import annotations

import atexit
import io
import itertools
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import pytest
from hypothesis import settings

from dialer import db
from dialer.testing.postgres import Cluster, throwaway_cluster

if TYPE_CHECKING:
    from dialer.demo import DemoRun

# Property tests check answers, not speed (timing goals live in bench/): no example
# may fail for taking long on a busy machine.
settings.register_profile("dialer", deadline=None)
settings.load_profile("dialer")


def _keep_child_bytecode() -> None:
    """Where byte code may not be written (``PYTHONDONTWRITEBYTECODE``, as in CI), every
    CLI and daemon process a test starts would compile the dialer and its libraries
    again, seconds each. Children get a byte-code cache of their own for the session
    instead, in a throwaway folder: the first compiles, the others reuse."""
    if os.environ.pop("PYTHONDONTWRITEBYTECODE", None) is not None:
        folder = tempfile.mkdtemp(prefix="dialer-pyc-")
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        os.environ.setdefault("PYTHONPYCACHEPREFIX", folder)


_keep_child_bytecode()

_counter = itertools.count()
# The shared demo campaign: a few hundred calls at a rate a loaded 2-core machine keeps.
DEMO_CONTACTS = 150
DEMO_CPS = 10.0


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="run the long variants too")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="long variant: pass --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    # Durability is not under test here; speed is welcome.
    with throwaway_cluster(durable=False, max_connections=300) as cluster:
        yield cluster


@pytest.fixture(scope="session")
async def template_db(pg_cluster: Cluster) -> str:
    return await pg_cluster.migrated_template()


@dataclass(frozen=True)
class DemoCampaign:
    """A demo campaign run to completion (``dialer.demo.run_demo``) in a database of its
    own: shared by the tests of its report and its forecast (the run takes seconds)."""

    dsn: str
    name: str
    run: DemoRun


@pytest.fixture(scope="session")
async def demo_run(pg_cluster: Cluster, template_db: str,
                   tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[DemoCampaign]:
    from rich.console import Console

    from dialer import demo
    from dialer.config import Settings

    name = f"t_demo_{os.getpid()}"
    dsn = await pg_cluster.new_database(name)
    work = tmp_path_factory.mktemp("demo")
    try:
        settings = Settings(database_url=dsn, data_dir=work)
        run = await demo.run_demo(settings, contacts=DEMO_CONTACTS, cps=DEMO_CPS,
                                  console=Console(file=io.StringIO()), workdir=work)
        yield DemoCampaign(dsn, run.summary["name"], run)
    finally:
        await pg_cluster.drop_database(name)


@pytest.fixture
async def dsn(pg_cluster: Cluster, template_db: str) -> AsyncIterator[str]:
    """A freshly migrated database of its own for one test."""
    name = f"t_{os.getpid()}_{next(_counter)}"
    dsn = await pg_cluster.new_database(name)
    try:
        yield dsn
    finally:
        await pg_cluster.drop_database(name)


@pytest.fixture
async def pool(dsn: str) -> AsyncIterator[asyncpg.Pool]:
    async with db.open_pool(dsn) as p:
        yield p


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's DIALER_* settings or .env file."""
    for key in list(os.environ):
        if key.startswith("DIALER_") or key in {"NOTIFY_SOCKET", "CREDENTIALS_DIRECTORY"}:
            monkeypatch.delenv(key)
    monkeypatch.setenv("DIALER_ENV_FILE", str(tmp_path / "absent.env"))


@pytest.fixture(scope="session", autouse=True)
def _quiet_logs() -> None:
    """Warnings and errors only: a failing test's output stays readable."""
    from dialer import logs

    logs.configure(log_format="console", level="warning")
