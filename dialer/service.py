"""Wires the daemon together and runs it: start-up order, side tasks, shutdown stages.

Start-up: pool (schema checked) -> credentials checked (refused: no start, exit 2)
-> account row -> callback endpoint listening -> the other checks of ``dialer
check``, logged (dialer.preflight) -> worker row -> LISTEN connection -> dispatcher;
READY=1 only after all of that.
Shutdown (first SIGTERM/SIGINT; a second one exits at once): stop claiming, hand
back unsent claims, let in-flight POSTs answer, keep the endpoint up for the drain
period so live calls' outcomes are still recorded, then close everything.
A side task that dies stops the service (systemd restarts it) rather than leaving a
half-working daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import secrets
import signal
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import structlog

from dialer import db, metrics, preflight, repository
from dialer.callbacks import AccountKeys, build_app
from dialer.config import Settings
from dialer.dispatcher import Clock, Dispatcher, utcnow
from dialer.dnc import NOTIFY_CHANNEL as DNC_CHANNEL
from dialer.dnc import DncBarrier
from dialer.httpserver import EmbeddedServer
from dialer.outcomes import OutcomeRecorder
from dialer.pacer import AccountPacer
from dialer.reconcile import Reconciler
from dialer.repository import DATABASE_ERRORS, DATABASE_FAILURES
from dialer.runtime import settle_heap
from dialer.systemd import Notifier, watchdog_interval
from dialer.tasks import TaskGroup
from dialer.twilio import TwilioClient, TwilioError

log = structlog.get_logger(__name__)

CAMPAIGN_CHANNEL = "dialer_campaigns"
# Twilio's answer to updating a call that is no longer in progress.
CALL_ALREADY_ENDED = 21220


@contextlib.asynccontextmanager
async def campaign_listener(
    dsn: str, wake: asyncio.Event, dnc: DncBarrier | None = None
) -> AsyncIterator[None]:
    """LISTEN on its own connection; a NOTIFY only sets ``wake`` (polling is the
    fallback, so a lost connection delays reactions, it does not lose them), and one on
    dialer_dnc is noted by ``dnc`` (which the dispatcher checks before sending)."""
    conn: asyncpg.Connection | None = None

    def on_notify(*_: Any) -> None:
        wake.set()

    def on_dnc(connection: Any, pid: int, channel: str, payload: object) -> None:
        if dnc is not None:
            dnc.note(str(payload))
        wake.set()

    async def keep_listening() -> None:
        nonlocal conn
        delay = 0.5
        while True:
            try:
                if conn is None or conn.is_closed():
                    conn = await asyncpg.connect(dsn)
                    await conn.add_listener(CAMPAIGN_CHANNEL, on_notify)
                    await conn.add_listener(DNC_CHANNEL, on_dnc)
                    if dnc is not None:
                        dnc.check_due = True
                    wake.set()  # we may have missed notifications while away
                    delay = 0.5
                await conn.execute("SELECT 1")
                await asyncio.sleep(5)
            except DATABASE_ERRORS as exc:
                metrics.DATABASE_ERRORS.labels("listener").inc()
                log.warning("listener_reconnecting", error=repr(exc), retry_in=delay)
                conn = None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10)

    task = asyncio.create_task(keep_listening(), name="campaign-listener")
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        if conn is not None and not conn.is_closed():
            await conn.close()


class Daemon:
    """One ``dialer run`` process. Options beyond Settings are for tests/benchmarks:
    ``clock`` (the time used for windows and retries) and ``pacing`` (off only for
    the ceiling benchmark)."""

    def __init__(
        self, settings: Settings, *, dsn: str, clock: Clock = utcnow, pacing: bool = True
    ) -> None:
        self.settings = settings
        self.dsn = dsn
        self.clock = clock
        self.pacing = pacing
        self.stop = asyncio.Event()
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.ready = asyncio.Event()
        self.dispatcher: Dispatcher | None = None
        self.port: int | None = None
        self._notifier = Notifier()
        self._pool: asyncpg.Pool | None = None
        self._signals = 0
        self._wake = asyncio.Event()

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)
        loop.add_signal_handler(signal.SIGHUP, self._reload)

    def _reload(self) -> None:
        """SIGHUP (`systemctl reload`): campaigns are re-read at once. They are read live
        anyway (on NOTIFY and every poll); settings come from the environment and need
        a restart."""
        log.info("reload_requested", reloads="campaigns", restart_needed_for="settings")
        self._notifier.reloading("re-reading campaigns")
        self._wake.set()
        self._notifier.ready("campaigns re-read")

    def _on_signal(self, sig: signal.Signals) -> None:
        self._signals += 1
        if self._signals > 1:
            log.warning("second_signal_exiting_now", signal=sig.name)
            os._exit(1)
        log.info("shutdown_requested", signal=sig.name)
        self.stop.set()

    async def _health(self) -> dict[str, Any]:
        database = False
        if self._pool is not None:
            try:
                await asyncio.wait_for(self._pool.fetchval("SELECT 1"), 2)
                database = True
            except DATABASE_FAILURES:
                database = False
        age = None if self.dispatcher is None else time.monotonic() - self.dispatcher.last_progress
        loop_ok = age is not None and age < max(5.0, self.settings.poll_seconds * 4)
        return {"ok": database and loop_ok, "database": database,
                "last_tick_seconds": None if age is None else round(age, 3),
                "worker": self.worker_id}

    async def run(self) -> None:
        settings = self.settings
        account_sid, token = settings.require_twilio()
        self._notifier.status("starting")
        tasks = TaskGroup()
        async with contextlib.AsyncExitStack() as stack:
            pool = await stack.enter_async_context(db.open_pool(self.dsn, max_size=12))
            self._pool = pool
            client = TwilioClient(
                account_sid=account_sid, auth_token=token, api_base=settings.twilio_api_base,
                timeout=settings.twilio_timeout, max_in_flight=settings.twilio_max_in_flight + 4,
            )
            stack.push_async_callback(client.aclose)
            await preflight.refuse_bad_credentials(settings, client)
            await repository.upsert_account(
                pool, account_sid, settings.twilio_cps, settings.twilio_max_concurrent_calls
            )
            recorder = OutcomeRecorder(pool)

            def hang_up(call_sid: str) -> None:
                tasks.spawn(self._hang_up(client, call_sid), name=f"hangup-{call_sid}")

            shared_key = settings.twilio_webhook_shared_key
            app = build_app(
                recorder=recorder,
                accounts={account_sid: AccountKeys(
                    auth_token=token,
                    shared_key=shared_key.get_secret_value() if shared_key else None,
                )},
                public_base_url=settings.public_base_url,
                callback_retries=settings.callback_retries, max_body=settings.callback_max_body,
                hang_up=hang_up, health=self._health, clock=self.clock,
                record_opt_out=functools.partial(repository.record_opt_out, pool),
            )
            server = EmbeddedServer(
                app, host=settings.bind_host, port=settings.bind_port,
                read_timeout=settings.callback_read_timeout,
                max_connections=settings.callback_max_connections,
            )
            await server.start()
            self.port = server.port
            stack.push_async_callback(server.stop)
            # Before this process counts as up (its worker row) and dials, not beside it:
            # the checks' CPU work (a TLS context, parsing) would stall the event loop as
            # the first send slots come.
            await preflight.log_start_checks(settings, client=client, pool=pool,
                                             worker_id=self.worker_id)
            await repository.register_worker(pool, self.worker_id, socket.gethostname(),
                                             os.getpid())
            try:
                await asyncio.wait_for(client.warm_up(), settings.twilio_timeout)
            except (TwilioError, TimeoutError) as exc:
                log.warning("twilio_warm_up_failed", error=str(exc))
            wake = self._wake
            listed = DncBarrier()
            await stack.enter_async_context(campaign_listener(self.dsn, wake, listed))
            metrics.CPS_LIMIT.labels(account_sid).set(settings.twilio_cps)
            pacer = None
            if self.pacing:
                pacer = AccountPacer(
                    account_sid=account_sid, cps=settings.twilio_cps,
                    reserve=lambda sid, n, gap: repository.reserve_slots(pool, sid, n, gap),
                )
                metrics.CURRENT_CPS.labels(account_sid).set_function(lambda: pacer.current_rate)
            dispatcher = Dispatcher(
                pool=pool, client=client, pacer=pacer, settings=settings,
                worker_id=self.worker_id, wake=wake, clock=self.clock, tasks=tasks, dnc=listed,
            )
            self.dispatcher = dispatcher
            metrics.DISPATCH_PROGRESS_AGE.set_function(
                lambda: time.monotonic() - dispatcher.last_progress)
            reconciler = Reconciler(
                pool=pool, client=client, recorder=recorder,
                reconcile_after=settings.reconcile_after_seconds,
                stale_after=settings.stale_call_seconds, clock=self.clock,
            )
            dispatch_stop = asyncio.Event()
            dispatching = asyncio.create_task(dispatcher.run(dispatch_stop), name="dispatcher")
            side = [
                dispatching,
                asyncio.create_task(self._housekeeping(pool, reconciler, account_sid),
                                    name="housekeeping"),
                asyncio.create_task(self._watchdog(), name="watchdog"),
            ]
            settle_heap()
            self._notifier.ready(f"dialing for account {account_sid}")
            self.ready.set()
            log.info("daemon_ready", worker=self.worker_id, port=self.port,
                     cps=settings.twilio_cps, pacing=self.pacing)
            stopper = asyncio.create_task(self.stop.wait())
            done, _ = await asyncio.wait([stopper, *side], return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            failed = [t for t in done if t is not stopper]
            for task in failed:
                log.error("side_task_stopped", task=task.get_name(),
                          exc_info=task.exception() if not task.cancelled() else None)
            await self._shut_down(dispatch_stop, dispatching, side, tasks, pool, account_sid)
            if failed:
                raise RuntimeError(f"side task {failed[0].get_name()} stopped")

    async def _shut_down(
        self, dispatch_stop: asyncio.Event, dispatching: asyncio.Task[None],
        side: list[asyncio.Task[None]], tasks: TaskGroup, pool: asyncpg.Pool, account_sid: str,
    ) -> None:
        settings = self.settings
        self._notifier.stopping("finishing in-flight requests")
        log.info("shutdown_started", grace=settings.shutdown_grace_seconds)
        dispatch_stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(dispatching), settings.shutdown_grace_seconds)
        await tasks.wait(timeout=settings.shutdown_grace_seconds)
        self._notifier.status("draining callbacks")
        deadline = time.monotonic() + settings.drain_seconds
        while time.monotonic() < deadline:
            try:
                live = await repository.live_calls_of_worker(pool, self.worker_id)
            except DATABASE_ERRORS:
                live = 1
            if not live:
                break
            await asyncio.sleep(0.2)
        for task in side:
            task.cancel()
        await asyncio.gather(*side, return_exceptions=True)
        with contextlib.suppress(*DATABASE_ERRORS):
            await repository.deregister_worker(pool, self.worker_id)
        log.info("shutdown_complete", worker=self.worker_id)
        self._notifier.close()

    async def _hang_up(self, client: TwilioClient, call_sid: str) -> None:
        try:
            await client.update_call(call_sid, status="completed")
            log.info("call_hung_up", call_sid=call_sid, reason="answering machine")
        except TwilioError as exc:
            if exc.code == CALL_ALREADY_ENDED:
                log.info("hang_up_not_needed", call_sid=call_sid, reason="call already ended")
            else:
                log.warning("hang_up_failed", call_sid=call_sid, error=exc.message)

    async def _housekeeping(
        self, pool: asyncpg.Pool, reconciler: Reconciler, account_sid: str
    ) -> None:
        """Heartbeat, recovery of dead workers' work, reconciliation, scheduled starts,
        completion."""
        while True:
            try:
                if not await repository.heartbeat(pool, self.worker_id):
                    log.warning("worker_reregistered", worker=self.worker_id)
                    await repository.register_worker(
                        pool, self.worker_id, socket.gethostname(), os.getpid()
                    )
                recovered = await repository.recover_dead_workers(
                    pool, self.settings.dead_worker_seconds
                )
                if recovered:
                    log.warning("dead_worker_attempts_recovered", attempts=recovered)
                await reconciler.run_once()
                metrics.IN_FLIGHT.set(await repository.live_calls_of_worker(pool, self.worker_id))
                for row in await repository.start_scheduled_campaigns(pool, account_sid):
                    log.info("campaign_started", campaign=row["name"], reason="scheduled start")
                for row in await repository.complete_finished_campaigns(pool, account_sid):
                    log.info("campaign_completed", campaign=row["name"])
            except DATABASE_ERRORS as exc:
                metrics.DATABASE_ERRORS.labels("housekeeping").inc()
                log.warning("housekeeping_database_unavailable", error=repr(exc))
            await asyncio.sleep(self.settings.heartbeat_seconds)

    async def _watchdog(self) -> None:
        """WATCHDOG=1 only while the dispatch loop makes progress: a stuck loop is restarted."""
        interval = watchdog_interval()
        if interval is None:
            await asyncio.Event().wait()
            return
        while True:
            dispatcher = self.dispatcher
            if dispatcher is not None and time.monotonic() - dispatcher.last_progress < interval:
                self._notifier.watchdog()
                metrics.WATCHDOG_PINGS.inc()
            await asyncio.sleep(interval / 2)


async def run(settings: Settings, dsn: str) -> int:
    """Entry point of ``dialer run``."""
    daemon = Daemon(settings, dsn=dsn)
    daemon.install_signal_handlers()
    try:
        await daemon.run()
    except preflight.StartRefused as exc:
        log.error("start_refused", reason=str(exc))
        return 2
    return 0
