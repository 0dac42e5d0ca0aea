"""Wires the daemon together and runs it: start-up order, supervision, shutdown stages.

Start-up: pool (schema checked) -> the default account's row (settings) -> the
accounts and their credentials (no account with a token: no start, exit 2) ->
credentials checked with Twilio (every account refused: no start, exit 2; some
refused: their campaigns pause) -> callback endpoint listening -> the other checks
of ``dialer check``, logged (dialer.preflight) -> worker row -> LISTEN connection ->
one runtime per account (dialer.account_runtime); READY=1 only after all of that.

Every long-lived task belongs to one ``Supervisor``: the callback server, the
listener, the outcome recorder's flusher, each account's dispatcher, reconciler and
answer flusher, housekeeping, the accounts follower and the watchdog. The first
that ends stops the daemon with one log line naming it, and exit code 1 (systemd
restarts it) rather than leaving a half-working daemon. The watchdog is fed only
while every account's dispatch loop and the callback server make progress.

SIGHUP (``systemctl reload``) re-reads the credentials (rotated tokens apply from the
next request) and the accounts, and wakes every dispatcher to re-read its campaigns.

Shutdown (first SIGTERM/SIGINT; a second one exits at once): stop claiming on every
account and hand back unsent claims, let in-flight creates and hang-ups answer, all
within ``DIALER_SHUTDOWN_GRACE_SECONDS``; keep the endpoint up for the drain period
so live calls' outcomes are still recorded; then close everything.
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
from collections.abc import Callable
from typing import Any

import asyncpg
import structlog

from dialer import credentials, db, metrics, preflight, repository
from dialer.account_runtime import AccountRuntime, AccountRuntimes, Shared
from dialer.accounts import Account, default_account
from dialer.callbacks import build_app
from dialer.config import Settings
from dialer.credentials import CredentialsError, Keyring
from dialer.dispatcher import Clock, pause_reason, utcnow
from dialer.httpserver import EmbeddedServer
from dialer.listener import Listener
from dialer.outcomes import OutcomeRecorder
from dialer.repository import DATABASE_ERRORS, DATABASE_FAILURES
from dialer.runtime import settle_heap
from dialer.systemd import Notifier, watchdog_interval
from dialer.tasks import Supervisor, TaskDied
from dialer.twilio import AuthError, TwilioError

log = structlog.get_logger(__name__)

POOL_SIZE = 32
"""Connections at most; opened on demand (two per account and a few more is typical)."""
ACCOUNTS_POLL_SECONDS = 10.0
"""How often the accounts table is re-read without a NOTIFY (the fallback)."""
NO_ACCOUNT = (
    "no account to dial for: set DIALER_TWILIO_ACCOUNT_SID and DIALER_TWILIO_AUTH_TOKEN, "
    "or add accounts with `dialer account add` and give their tokens in "
    "DIALER_CREDENTIALS_FILE"
)


class Daemon:
    """One ``dialer run`` process. Options beyond Settings are for tests/benchmarks:
    ``clock`` (the time used for windows and retries) and ``pacing`` (off only for
    the ceiling benchmark: the null pacer)."""

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
        self.port: int | None = None
        self.accounts: AccountRuntimes | None = None
        self.supervisor: Supervisor | None = None
        self._server: EmbeddedServer | None = None
        self._notifier = Notifier()
        self._pool: asyncpg.Pool | None = None
        self._signals = 0
        self._reload = asyncio.Event()
        self._credentials_reloaded = False

    def install_signal_handlers(self) -> Callable[[], None]:
        """SIGTERM/SIGINT stop, SIGHUP reloads; returns what removes the handlers."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)
        loop.add_signal_handler(signal.SIGHUP, self._on_reload)

        def remove() -> None:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)

        return remove

    def _on_reload(self) -> None:
        """SIGHUP (`systemctl reload`): credentials, accounts and campaigns are re-read
        (campaigns are read live anyway); other settings need a restart."""
        log.info("reload_requested", reloads="credentials, accounts, campaigns",
                 restart_needed_for="settings")
        self._notifier.reloading("re-reading credentials, accounts and campaigns")
        self._credentials_reloaded = True
        self._reload.set()

    def _on_signal(self, sig: signal.Signals) -> None:
        self._signals += 1
        if self._signals > 1:
            log.warning("second_signal_exiting_now", signal=sig.name)
            os._exit(1)
        log.info("shutdown_requested", signal=sig.name)
        self.stop.set()

    @property
    def dispatchers(self) -> list[Any]:
        """Each account's dispatcher (for tests and benchmarks)."""
        return [] if self.accounts is None else [rt.dispatcher for rt in self.accounts]

    # ---- health -----------------------------------------------------------------

    def _stalled(self, within: float) -> list[str]:
        """What made no progress within ``within`` seconds: accounts' dispatch loops
        by SID, and the callback server."""
        stalled = [] if self.accounts is None else self.accounts.stalled(within)
        server = self._server
        if server is None or not server.running or time.monotonic() - server.last_tick > within:
            stalled.append(EmbeddedServer.TASK_NAME)
        return stalled

    async def _health(self) -> dict[str, Any]:
        database = False
        if self._pool is not None:
            try:
                await asyncio.wait_for(repository.ping(self._pool), 2)
                database = True
            except DATABASE_FAILURES:
                database = False
        runtimes = list(self.accounts or [])
        now = time.monotonic()
        ages = {rt.sid: round(now - rt.dispatcher.last_progress, 3) for rt in runtimes}
        stalled = self._stalled(max(5.0, self.settings.poll_seconds * 4))
        ok = database and self.ready.is_set() and not stalled
        return {"ok": ok, "database": database, "ready": self.ready.is_set(),
                "last_tick_seconds": max(ages.values(), default=None), "accounts": ages,
                "stalled": stalled, "worker": self.worker_id}

    # ---- start ------------------------------------------------------------------

    def _keyring(self) -> Keyring:
        try:
            return credentials.load(self.settings)
        except CredentialsError as exc:
            raise preflight.StartRefused(str(exc)) from None

    async def _accounts(self, pool: asyncpg.Pool, fleet: AccountRuntimes,
                        keyring: Keyring) -> list[Account]:
        default = default_account(self.settings)
        if default is not None:
            if keyring.token(default.sid) is None:
                raise preflight.StartRefused(
                    f"DIALER_TWILIO_ACCOUNT_SID is {default.sid} but no auth token is given "
                    "for it: set DIALER_TWILIO_AUTH_TOKEN (or the dialer_twilio_auth_token "
                    "credential), or give it in DIALER_CREDENTIALS_FILE")
            await repository.upsert_account(pool, default.sid, default.cps,
                                            default.max_concurrent_calls)
        accounts = await fleet.read_accounts()
        for account in fleet.missing_tokens(accounts, keyring):
            log.warning("account_without_token", account=account.sid, label=account.label,
                        action=f"give {account.sid}=TOKEN in DIALER_CREDENTIALS_FILE (or the "
                        f"credential dialer_twilio_auth_token_{account.sid}), then reload; "
                        "until then this process does not dial its campaigns")
        return accounts

    async def _check_credentials(self, pool: asyncpg.Pool,
                                 runtimes: list[AccountRuntime]) -> None:
        """Ask Twilio about each account's credentials. When it refuses every one, the
        daemon does not start (StartRefused); otherwise an account it refuses has its
        running campaigns paused, as a refusal while dialing would."""
        findings = await asyncio.gather(*(
            preflight.credentials_refused(self.settings, rt.client) for rt in runtimes))
        refused = [(rt, f) for rt, f in zip(runtimes, findings, strict=True) if f is not None]
        if len(refused) == len(runtimes):
            raise preflight.StartRefused("; ".join(finding.line() for _, finding in refused))
        for runtime, finding in refused:
            reason = pause_reason(AuthError(finding.message), account=runtime.sid)
            paused = await repository.pause_account(pool, runtime.sid, reason)
            for name in paused:
                metrics.CAMPAIGNS_PAUSED.labels(runtime.sid, name, "account", "").inc()
            log.error("campaign_paused", campaigns=paused, concern="account",
                      account=runtime.sid, reason=reason,
                      action="fix the token, `systemctl reload dialer`, then "
                             "`dialer campaign resume NAME`")

    async def run(self) -> None:
        """Run until ``stop`` is set; raises ``TaskDied`` when a supervised task ended,
        ``StartRefused`` when it must not start."""
        settings = self.settings
        self._notifier.status("starting")
        supervisor = self.supervisor = Supervisor()
        keyring = self._keyring()
        async with contextlib.AsyncExitStack() as stack:
            # The daemon's statements keep no session state (db.create_pool).
            pool = await stack.enter_async_context(
                db.open_pool(self.dsn, max_size=POOL_SIZE, session_state=False))
            self._pool = pool
            recorder = OutcomeRecorder(pool)
            supervisor.spawn("outcome-recorder", recorder.run())
            fleet = self.accounts = AccountRuntimes(Shared(
                settings=settings, pool=pool, recorder=recorder, supervisor=supervisor,
                worker_id=self.worker_id, clock=self.clock, pacing=self.pacing,
            ))
            stack.push_async_callback(fleet.close)
            accounts = await self._accounts(pool, fleet, keyring)
            runtimes, _ = fleet.apply(accounts, keyring)
            if not runtimes:
                raise preflight.StartRefused(NO_ACCOUNT)
            await self._check_credentials(pool, runtimes)

            app = build_app(
                recorder=recorder, accounts=fleet.keys, public_base_url=settings.public_base_url,
                callback_retries=settings.callback_retries, max_body=settings.callback_max_body,
                hang_up=fleet.hang_up, health=self._health, clock=self.clock,
                record_opt_out=functools.partial(repository.record_opt_out, pool),
            )
            server = self._server = EmbeddedServer(
                app, host=settings.bind_host, port=settings.bind_port,
                read_timeout=settings.callback_read_timeout,
                max_connections=settings.callback_max_connections,
            )
            await server.start(supervisor.spawn)
            self.port = server.port
            stack.push_async_callback(server.stop)
            # Before this process counts as up (its worker row) and dials, not beside it:
            # the checks' CPU work (a TLS context, parsing) would stall the event loop as
            # the first send slots come.
            for runtime in runtimes:
                await preflight.log_start_checks(settings, account=runtime.account,
                                                 client=runtime.client, pool=pool,
                                                 worker_id=self.worker_id)
            await repository.register_worker(pool, self.worker_id, socket.gethostname(),
                                             os.getpid())
            await asyncio.gather(*(self._warm_up(rt) for rt in runtimes))
            listener = Listener(self.dsn, on_campaigns=fleet.wake_all,
                                on_accounts=self._reload.set, on_dnc=fleet.note_dnc)
            stack.push_async_callback(listener.close)
            supervisor.spawn("campaign-listener", listener.run())
            for runtime in runtimes:
                runtime.start()
            supervisor.spawn("housekeeping", self._housekeeping(pool))
            supervisor.spawn("accounts", self._follow_accounts(fleet))
            supervisor.spawn("watchdog", self._watchdog())
            settle_heap()
            self._notifier.ready(f"dialing for {len(runtimes)} account(s)")
            self.ready.set()
            log.info("daemon_ready", worker=self.worker_id, port=self.port, pacing=self.pacing,
                     accounts={rt.sid: rt.account.cps for rt in runtimes})
            failure = await self._until_stop_or_failure(supervisor)
            await self._shut_down(supervisor, fleet, pool, drain=server.running)
        if failure is not None:
            raise TaskDied(failure)

    async def _until_stop_or_failure(self, supervisor: Supervisor) -> Any:
        stopping = asyncio.ensure_future(self.stop.wait())
        failing = asyncio.ensure_future(supervisor.first_failure())
        try:
            await asyncio.wait([stopping, failing], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            failing.cancel()
        return supervisor.failure

    async def _warm_up(self, runtime: AccountRuntime) -> None:
        try:
            await asyncio.wait_for(runtime.client.warm_up(), self.settings.twilio_timeout)
        except (TwilioError, TimeoutError) as exc:
            log.warning("twilio_warm_up_failed", account=runtime.sid, error=str(exc))

    # ---- running ------------------------------------------------------------------

    async def _follow_accounts(self, fleet: AccountRuntimes) -> None:
        """Apply changes of the accounts table (NOTIFY dialer_accounts, or every
        ACCOUNTS_POLL_SECONDS) and, on SIGHUP or an account change, of the credentials.
        A credentials file that cannot be used is logged and the tokens in use stay."""
        keyring = self._keyring()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._reload.wait(), ACCOUNTS_POLL_SECONDS)
            signalled, self._credentials_reloaded = self._credentials_reloaded, False
            reread = self._reload.is_set()
            self._reload.clear()
            if reread:
                try:
                    keyring = credentials.load(self.settings)
                except CredentialsError as exc:
                    log.error("credentials_not_reloaded", error=str(exc),
                              action="the tokens in use stay; fix the file, then reload")
            try:
                accounts = await fleet.read_accounts()
            except DATABASE_ERRORS as exc:
                log.warning("accounts_not_reloaded", error=repr(exc))
                continue
            if reread:
                for account in fleet.missing_tokens(accounts, keyring):
                    log.warning("account_without_token", account=account.sid)
            added, retired = fleet.apply(accounts, keyring)
            for runtime in retired:
                log.info("account_runtime_stopped", account=runtime.sid)
                await runtime.retire(self.settings.shutdown_grace_seconds)
            for runtime in added:
                await self._warm_up(runtime)
                runtime.start()
                log.info("account_runtime_started", account=runtime.sid,
                         cps=runtime.account.cps)
            fleet.wake_all()
            if signalled:
                self._notifier.ready(f"reloaded: dialing for {len(fleet)} account(s)")

    async def _housekeeping(self, pool: asyncpg.Pool) -> None:
        """Heartbeat, recovery of dead workers' work, the in-flight gauges, scheduled
        starts and completion of the accounts this process dials for."""
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
                live = await repository.live_calls_by_account(pool, self.worker_id)
                for runtime in self.accounts or []:
                    metrics.IN_FLIGHT.labels(runtime.sid).set(live.get(runtime.sid, 0))
                    for row in await repository.start_scheduled_campaigns(pool, runtime.sid):
                        log.info("campaign_started", campaign=row["name"],
                                 reason="scheduled start")
                    for row in await repository.complete_finished_campaigns(pool, runtime.sid):
                        log.info("campaign_completed", campaign=row["name"])
            except DATABASE_ERRORS as exc:
                metrics.DATABASE_ERRORS.labels("housekeeping").inc()
                log.warning("housekeeping_database_unavailable", error=repr(exc))
            await asyncio.sleep(self.settings.heartbeat_seconds)

    async def _watchdog(self) -> None:
        """WATCHDOG=1 only while every account's dispatch loop and the callback server
        make progress: a stuck loop or a dead endpoint is restarted by systemd."""
        interval = watchdog_interval()
        if interval is None:
            await asyncio.Event().wait()
            return
        while True:
            stalled = self._stalled(interval)
            if not stalled:
                self._notifier.watchdog()
                metrics.WATCHDOG_PINGS.inc()
            else:
                log.warning("watchdog_not_fed", stalled=stalled)
            await asyncio.sleep(interval / 2)

    # ---- stop ---------------------------------------------------------------------

    async def _shut_down(self, supervisor: Supervisor, fleet: AccountRuntimes,
                         pool: asyncpg.Pool, *, drain: bool) -> None:
        settings = self.settings
        self._notifier.stopping("finishing in-flight requests")
        log.info("shutdown_started", grace=settings.shutdown_grace_seconds)
        supervisor.retire_all()
        follower = supervisor.task("accounts")
        if follower is not None:  # no runtime may start or stop from here on
            follower.cancel()
        deadline = time.monotonic() + settings.shutdown_grace_seconds
        await fleet.stop_dispatching(settings.shutdown_grace_seconds)
        await fleet.wait_hang_ups(max(0.0, deadline - time.monotonic()))
        if drain:
            self._notifier.status("draining callbacks")
            await self._drain(pool)
        if self._server is not None:
            await self._server.stop()
        await fleet.close()  # the last answers written
        await supervisor.stop(timeout=0)
        with contextlib.suppress(*DATABASE_ERRORS):
            await repository.deregister_worker(pool, self.worker_id)
        log.info("shutdown_complete", worker=self.worker_id)
        self._notifier.close()

    async def _drain(self, pool: asyncpg.Pool) -> None:
        """Keep the endpoint up until this process's live calls have ended, at most
        DIALER_DRAIN_SECONDS."""
        deadline = time.monotonic() + self.settings.drain_seconds
        while time.monotonic() < deadline:
            try:
                live = await repository.live_calls_of_worker(pool, self.worker_id)
            except DATABASE_ERRORS:
                live = 1
            if not live:
                return
            await asyncio.sleep(0.2)


async def run(settings: Settings, dsn: str) -> int:
    """Entry point of ``dialer run``: see ``serve``."""
    return await serve(Daemon(settings, dsn=dsn))


async def serve(daemon: Daemon) -> int:
    """Run ``daemon`` with its signal handlers: 0 after a clean stop, 1 when a
    supervised task died (logged as it happened, naming it), 2 when it must not start."""
    remove_handlers = daemon.install_signal_handlers()
    try:
        await daemon.run()
    except preflight.StartRefused as exc:
        log.error("start_refused", reason=str(exc))
        return 2
    except TaskDied:
        return 1
    finally:
        remove_handlers()
    return 0
