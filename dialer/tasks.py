"""Who owns each task: none may fail silently or be garbage-collected.

Two owners, for two kinds of task:

* ``Supervisor``: the daemon's long-lived tasks (the callback server, the listener,
  each account's dispatcher, reconciler and flusher, housekeeping, the watchdog).
  Each is started with ``spawn(name, coro)``; any of them ending while the daemon
  runs (an exception, a cancellation, or a return nobody asked for) is a failure:
  ``first_failure()`` returns it, the daemon stops, and systemd restarts it. A
  daemon with its callback endpoint gone but still dialing is worse than none.
* ``Detached``: short tasks started and forgotten (a send, a hang-up), whose
  failures are logged and counted one by one and cancel nothing: the opposite of
  ``asyncio.TaskGroup``, where one failure cancels the siblings. ``wait`` lets
  shutdown drain what is left.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

import structlog

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Failure:
    """A supervised task that ended while the daemon ran."""

    name: str
    how: str
    """``raised``, ``cancelled`` or ``returned``."""
    error: BaseException | None = None

    def __str__(self) -> str:
        if self.error is not None:
            return f"task {self.name} {self.how} {self.error!r}"
        return f"task {self.name} {self.how}"


class TaskDied(Exception):
    """The daemon stopped because a supervised task ended (exit code 1)."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(str(failure))
        self.failure = failure


class Supervisor:
    """Owns long-lived tasks; see the module docstring.

    ``retire(task)`` says a task may end now without that being a failure (an
    account removed while the daemon runs); ``stop()`` ends the supervision, then
    cancels and awaits whatever still runs."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._retired: set[asyncio.Task[Any]] = set()
        self._failure: Failure | None = None
        self._failed = asyncio.Event()
        self._stopping = False

    def spawn(self, name: str, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._ended)
        return task

    def task(self, name: str) -> asyncio.Task[Any] | None:
        """The running task of that name, if any."""
        return next((t for t in self._tasks if t.get_name() == name), None)

    def retire(self, task: asyncio.Task[Any]) -> None:
        if task in self._tasks:
            self._retired.add(task)

    def _ended(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        expected = self._stopping or task in self._retired
        self._retired.discard(task)
        if task.cancelled():
            failure = Failure(task.get_name(), "cancelled")
        elif (error := task.exception()) is not None:
            failure = Failure(task.get_name(), "raised", error)
        else:
            failure = Failure(task.get_name(), "returned")
        if expected:
            if failure.error is not None:
                log.warning("task_failed_while_stopping", task=failure.name,
                            error=repr(failure.error))
            return
        if self._failure is not None:
            # The daemon is already stopping for the first one; this one is its echo.
            log.info("task_ended_after_failure", task=failure.name, how=failure.how)
            return
        log.error("task_failed", task=failure.name, how=failure.how,
                  exc_info=failure.error, action="the daemon stops; systemd restarts it")
        self._failure = failure
        self._failed.set()

    async def first_failure(self) -> Failure:
        """Wait for the first supervised task to end unexpectedly."""
        await self._failed.wait()
        assert self._failure is not None
        return self._failure

    @property
    def failure(self) -> Failure | None:
        return self._failure

    def retire_all(self) -> None:
        """Shutdown has begun: from now on any task may end."""
        self._stopping = True

    async def stop(self, timeout: float | None = None) -> None:
        """From now on tasks may end; cancel those still running after ``timeout``."""
        self.retire_all()
        tasks = set(self._tasks)
        if not tasks:
            return
        _, still = await asyncio.wait(tasks, timeout=timeout)
        for task in still:
            task.cancel()
        if still:
            await asyncio.gather(*still, return_exceptions=True)


class Detached:
    """Keeps strong references to fire-and-forget tasks and logs their failures."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self.failures = 0

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.failures += 1
            log.error("task_failed", task=task.get_name(), exc_info=task.exception())

    def __len__(self) -> int:
        return len(self._tasks)

    async def wait(self, timeout: float | None = None) -> None:
        """Wait for the tasks running now; cancel those still running after ``timeout``,
        or when the waiting is cancelled (its grace is over, so is theirs: none may
        outlive the shutdown that waited for it)."""
        if not self._tasks:
            return
        pending = set(self._tasks)
        try:
            _, still = await asyncio.wait(pending, timeout=timeout)
        except asyncio.CancelledError:
            await self._cancel(pending)
            raise
        await self._cancel(still)

    @staticmethod
    async def _cancel(tasks: set[asyncio.Task[Any]]) -> None:
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
