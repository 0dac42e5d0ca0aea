"""Everything one Twilio account dials with in this process, and the set of them.

An ``AccountRuntime`` is one account's client (with the account's one limit of REST
requests in flight), pacer, dispatcher, reconciler and the flusher of its Create Call
answers. Runtimes share only the database pool, the outcome recorder and the
callback endpoint, so a 429 storm or refused credentials on one account never slows
or pauses another: each has its own share of the ``accounts.next_slot`` schedule, its
own backoff, its own in-flight permits and its own dispatch loop.

``AccountRuntimes`` follows the ``accounts`` table and the credentials: an account
added (with a token this process has) gets a runtime, a removed one, or one whose
token is gone, has its runtime stopped, a changed CPS or concurrent-call limit applies
at once, a changed in-flight limit restarts the runtime, and a rotated token is used
from the next request on.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any

import asyncpg
import structlog

from dialer import metrics, repository
from dialer.accounts import Account
from dialer.callbacks import AccountKeys
from dialer.config import Settings
from dialer.credentials import Keyring
from dialer.dispatcher import Clock, Dispatcher
from dialer.live_buffer import LiveBuffer
from dialer.outcomes import OutcomeRecorder
from dialer.pacer import AccountPacer, Pacer, Reservation, Unpaced
from dialer.reconcile import Reconciler
from dialer.tasks import Detached, Supervisor
from dialer.twilio import TwilioClient, TwilioError
from dialer.twilio_words import CALL_NOT_IN_PROGRESS

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Shared:
    """What every account runtime of one process uses alike. ``pacing`` is off only
    for the ceiling benchmark (the null pacer)."""

    settings: Settings
    pool: asyncpg.Pool
    recorder: OutcomeRecorder
    supervisor: Supervisor
    worker_id: str
    clock: Clock
    pacing: bool = True


async def reserve_slots(pool: asyncpg.Pool, sid: str, count: int, spacing: float
                        ) -> Reservation:
    """The pacer's reservation, with a clock sample of a read-only statement timed
    alone: the reservation's own reading of the clock is followed by its commit (an
    fsync), and a sample as wide as that left too little of the send tolerance, so slots
    were skipped on a quiet machine (bench/pacing.py at 100 CPS: 85 of 1,000)."""
    async with pool.acquire() as conn:
        first_slot = await repository.reserve_slots(conn, sid, count, spacing)
        sent = time.monotonic()
        db_now = await repository.database_clock(conn)
        return Reservation(first_slot, db_now, sent, time.monotonic())


class AccountRuntime:
    """One account's parts (see the module docstring). ``start`` hands their loops to
    the supervisor, named after the account's SID (``dispatcher:AC...``)."""

    def __init__(self, account: Account, token: str, shared: Shared) -> None:
        settings = shared.settings
        self.account = account
        self._shared = shared
        self._token = token
        self.client = TwilioClient(
            account_sid=account.sid, auth_token=token, api_base=settings.twilio_api_base,
            timeout=settings.twilio_timeout, max_in_flight=account.max_in_flight,
        )
        self.pacer: Pacer = (
            AccountPacer(account_sid=account.sid, cps=account.cps,
                         reserve=partial(reserve_slots, shared.pool))
            if shared.pacing else Unpaced()
        )
        self.live = LiveBuffer(shared.pool)
        self.dispatcher = Dispatcher(
            pool=shared.pool, client=self.client, pacer=self.pacer, account=account,
            settings=settings, worker_id=shared.worker_id, live=self.live, clock=shared.clock,
        )
        self.reconciler = Reconciler(
            pool=shared.pool, client=self.client, recorder=shared.recorder,
            reconcile_after=settings.reconcile_after_seconds,
            stale_after=settings.stale_call_seconds, clock=shared.clock,
        )
        self._hang_ups = Detached()
        self._dispatch_stop = asyncio.Event()
        self._flush_stop = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._closed = False

    @property
    def sid(self) -> str:
        return self.account.sid

    def start(self) -> None:
        spawn, sid = self._shared.supervisor.spawn, self.sid
        metrics.CURRENT_CPS.labels(sid).set_function(lambda: self.pacer.current_rate)
        metrics.CPS_LIMIT.labels(sid).set(self.account.cps)
        metrics.DISPATCH_PROGRESS_AGE.labels(sid).set_function(
            lambda: time.monotonic() - self.dispatcher.last_progress)
        self._tasks = [
            spawn(f"dispatcher:{sid}", self.dispatcher.run(self._dispatch_stop)),
            spawn(f"live-flusher:{sid}", self.live.run(self._flush_stop)),
            spawn(f"reconciler:{sid}",
                  self.reconciler.run(every=self._shared.settings.heartbeat_seconds)),
        ]

    def update(self, account: Account, token: str) -> None:
        """New limits (CPS, concurrent calls) or a rotated token, applied at once."""
        if token != self._token:
            self.client.set_auth_token(token)
            self._token = token
            log.info("account_token_rotated", account=account.sid)
        self.pacer.retune(account.cps)
        metrics.CPS_LIMIT.labels(account.sid).set(account.cps)
        self.account = self.dispatcher.account = account

    def hang_up(self, call_sid: str) -> None:
        self._hang_ups.spawn(self._hang_up(call_sid), name=f"hangup-{call_sid}")

    async def _hang_up(self, call_sid: str) -> None:
        try:
            await self.client.update_call(call_sid, status="completed")
            log.info("call_hung_up", account=self.sid, call_sid=call_sid,
                     reason="answering machine")
        except TwilioError as exc:
            if exc.code == CALL_NOT_IN_PROGRESS:
                log.info("hang_up_not_needed", call_sid=call_sid, reason="call already ended")
            else:
                log.warning("hang_up_failed", account=self.sid, call_sid=call_sid,
                            error=exc.message)

    def stalled(self, within: float) -> bool:
        """Whether the dispatch loop made no progress in the last ``within`` seconds."""
        return time.monotonic() - self.dispatcher.last_progress >= within

    async def stop_dispatching(self) -> None:
        """Stop claiming, hand back unsent claims, let in-flight creates answer."""
        self._dispatch_stop.set()
        if self._tasks:
            await asyncio.gather(asyncio.shield(self._tasks[0]), return_exceptions=True)

    async def wait_hang_ups(self, timeout: float) -> None:
        await self._hang_ups.wait(timeout=timeout)

    async def close(self) -> None:
        """The last answers written, the reconciler stopped, the client closed."""
        if self._closed:
            return
        self._closed = True
        self._dispatch_stop.set()
        self._flush_stop.set()
        if self._tasks:
            dispatching, flushing, reconciling = self._tasks
            dispatching.cancel()  # a no-op once it has stopped within its grace
            reconciling.cancel()  # nothing of it needs finishing
            await asyncio.gather(dispatching, reconciling, return_exceptions=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(flushing),
                                       self._shared.settings.shutdown_grace_seconds)
            flushing.cancel()
            await asyncio.gather(flushing, return_exceptions=True)
        await self._hang_ups.wait(timeout=0)
        await self.client.aclose()
        for gauge in (metrics.CURRENT_CPS, metrics.CPS_LIMIT, metrics.DISPATCH_PROGRESS_AGE):
            with contextlib.suppress(KeyError):
                gauge.remove(self.sid)

    async def retire(self, grace: float) -> None:
        """Stop this runtime while the daemon goes on (its account was removed, lost
        its token, or changed its in-flight limit)."""
        for task in self._tasks:
            self._shared.supervisor.retire(task)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop_dispatching(), grace)
        await self.wait_hang_ups(grace)
        await self.close()


class AccountRuntimes:
    """The runtimes of this process, by SID, and the callback keys of their accounts
    (``keys``: the endpoint reads this mapping at every request, so rotations and new
    accounts apply without rebuilding it)."""

    def __init__(self, shared: Shared) -> None:
        self._shared = shared
        self.runtimes: dict[str, AccountRuntime] = {}
        self.keys: dict[str, AccountKeys] = {}

    def __iter__(self) -> Any:
        return iter(list(self.runtimes.values()))

    def __len__(self) -> int:
        return len(self.runtimes)

    async def read_accounts(self) -> list[Account]:
        default = self._shared.settings.twilio_max_in_flight
        return [Account.from_row(row, default_in_flight=default)
                for row in await repository.list_accounts(self._shared.pool)]

    def missing_tokens(self, accounts: Iterable[Account], keyring: Keyring) -> list[Account]:
        return [account for account in accounts if keyring.token(account.sid) is None]

    def apply(self, accounts: Iterable[Account], keyring: Keyring) -> tuple[
            list[AccountRuntime], list[AccountRuntime]]:
        """Make the runtimes match ``accounts`` (those with a token in ``keyring``):
        returns (runtimes to start, runtimes to retire). Runtimes kept are updated in
        place; the callback keys follow."""
        wanted = {a.sid: a for a in accounts if keyring.token(a.sid) is not None}
        added: list[AccountRuntime] = []
        retired: list[AccountRuntime] = []
        for sid, runtime in list(self.runtimes.items()):
            account = wanted.get(sid)
            if account is None or account.max_in_flight != runtime.account.max_in_flight:
                retired.append(self.runtimes.pop(sid))
        for sid, account in wanted.items():
            token = keyring.token(sid)
            assert token is not None
            kept = self.runtimes.get(sid)
            if kept is None:
                added.append(AccountRuntime(account, token, self._shared))
                self.runtimes[sid] = added[-1]
            else:
                kept.update(account, token)
            self._set_keys(sid, token, keyring.shared_key(sid))
        for runtime in retired:
            if runtime.sid not in self.runtimes:
                self.keys.pop(runtime.sid, None)
        return added, retired

    def _set_keys(self, sid: str, token: str, shared_key: str | None) -> None:
        old = self.keys.get(sid)
        former_token = former_key = None
        if old is not None:
            former_token = old.auth_token if old.auth_token != token else None
            former_key = old.shared_key if old.shared_key != shared_key else None
        self.keys[sid] = AccountKeys(token, shared_key, former_auth_token=former_token,
                                     former_shared_key=former_key)

    def wake_all(self) -> None:
        """Campaigns changed (NOTIFY, SIGHUP): every dispatcher re-reads its own."""
        for runtime in self:
            runtime.dispatcher.wake.set()

    def note_dnc(self, payload: str) -> None:
        """NOTIFY dialer_dnc (its payload, "" after a reconnect): every dispatcher notes
        it in its own barrier and looks its claims up (dialer.dnc.DncBarrier)."""
        for runtime in self:
            runtime.dispatcher.dnc.note(payload)
            runtime.dispatcher.wake.set()

    def hang_up(self, account_sid: str, call_sid: str) -> None:
        runtime = self.runtimes.get(account_sid)
        if runtime is None:
            log.warning("hang_up_failed", account=account_sid, call_sid=call_sid,
                        error="no runtime for the account")
            return
        runtime.hang_up(call_sid)

    def stalled(self, within: float) -> list[str]:
        """SIDs of accounts whose dispatch loop made no progress within ``within`` s."""
        return [runtime.sid for runtime in self if runtime.stalled(within)]

    async def stop_dispatching(self, grace: float) -> None:
        """Every dispatcher at once, within ``grace`` seconds together."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(runtime.stop_dispatching() for runtime in self)), grace)

    async def wait_hang_ups(self, timeout: float) -> None:
        await asyncio.gather(*(runtime.wait_hang_ups(timeout) for runtime in self))

    async def close(self) -> None:
        await asyncio.gather(*(runtime.close() for runtime in self))
