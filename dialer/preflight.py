"""The I/O behind ``dialer check`` and the checks ``dialer run`` logs at start: ask the
database, Twilio, the public URL and the TwiML URLs, and let ``checks`` judge.

Every probe is bounded in time and size. A check that cannot run because an earlier
one failed (no usable database, credentials refused) is reported as not checked, a
warning, so that the first fail names the cause instead of every line repeating it.

``dialer run`` runs the same checks: the credentials before anything starts (refused
credentials stop the start, as every request would fail), the rest once the
callback endpoint listens and before the first call, logged, never stopping it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
from collections.abc import AsyncIterator, Sequence

import asyncpg
import httpx
import structlog

from dialer import checks, db, personalise, repository
from dialer.accounts import Account, default_account
from dialer.campaigns import Campaign
from dialer.checks import Finding, Verdict
from dialer.config import Settings
from dialer.repository import DATABASE_FAILURES
from dialer.twilio import AuthError, TwilioClient, TwilioError

log = structlog.get_logger(__name__)

PROBE_TIMEOUT = 5.0
"""Seconds for each HTTP probe of the public URL or a TwiML URL, and to connect to the
database."""
START_CHECKS_SECONDS = 15.0
"""How long ``dialer run`` gives its start-up checks before it dials anyway."""
MAX_BODY = 1 << 20
"""Bytes read of any answer at most: a TwiML document or a health report is far smaller."""


class StartRefused(Exception):
    """``dialer run`` must not start (its exit code is 2): the message says why."""


def _describe(exc: BaseException) -> str:
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect: {exc}"
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return f"no answer within {PROBE_TIMEOUT:g} s"
    return str(exc) or type(exc).__name__


class _TooLarge(Exception):
    """An answer longer than MAX_BODY."""


async def _get(http: httpx.AsyncClient, url: str, *, follow_redirects: bool
               ) -> tuple[httpx.Response, bytes]:
    """GET ``url``, reading at most MAX_BODY bytes, within PROBE_TIMEOUT overall."""
    async with asyncio.timeout(PROBE_TIMEOUT), http.stream(
        "GET", url, follow_redirects=follow_redirects
    ) as response:
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > MAX_BODY:
                raise _TooLarge
        return response, bytes(body)


async def open_database(dsn: str) -> tuple[Finding, asyncpg.Connection | None]:
    """The database check; the connection is returned when the schema is usable."""
    try:
        conn = await asyncio.wait_for(db.connect(dsn), PROBE_TIMEOUT)
    except (*DATABASE_FAILURES, ValueError) as exc:
        return checks.database_unreachable(_describe(exc)), None
    try:
        known = {migration.version for migration in db.load_migrations()}
        finding = checks.schema(known, await db.applied_versions(conn))
    except DATABASE_FAILURES as exc:
        await conn.close()
        return checks.database_unreachable(_describe(exc)), None
    if finding.verdict is Verdict.FAIL:
        await conn.close()
        return finding, None
    return finding, conn


def log_finding(finding: Finding) -> None:
    """How ``dialer run`` reports a check: warnings for anything not ok."""
    level = log.info if finding.verdict is Verdict.OK else log.warning
    if finding.stops_start:
        level = log.error
    level("start_check", check=finding.check, verdict=finding.verdict.value,
          campaign=finding.subject, detail=finding.message, fix=finding.fix)


class Preflight:
    """The checks of one account (by default the settings' own). ``client`` is None
    when no credentials are set, ``database`` None when there is no usable database."""

    def __init__(self, settings: Settings, *, client: TwilioClient | None,
                 http: httpx.AsyncClient, database: repository.Executor | None,
                 worker_id: str | None = None, account: Account | None = None) -> None:
        self._settings = settings
        self._account = account or default_account(settings)
        self._worker_id = worker_id
        """The daemon running the checks, which counts as running before its row exists."""
        self._client = client
        self._http = http
        self._db = database
        self._twilio_works: bool | None = None
        """Whether the credentials check passed; None: not asked here (the daemon asked
        before it started)."""
        self._numbers: dict[str, tuple[bool, bool]] = {}

    async def credentials(self) -> list[Finding]:
        """The credentials, then (when they work) the account's status."""
        client = self._client
        if client is None:
            return [checks.credentials_missing()]
        try:
            info = await client.fetch_account()
        except AuthError as exc:
            self._twilio_works = False
            return [checks.credentials_refused(client.account_sid, exc.status, exc.code)]
        except TwilioError as exc:
            self._twilio_works = False
            return [checks.twilio_unreachable(self._settings.twilio_api_base, exc.message)]
        self._twilio_works = True
        return [checks.credentials_accepted(client.account_sid),
                checks.account(info.status, info.type)]

    async def public_url(self) -> Finding:
        url = self._settings.public_base_url
        if self._db is None:
            return checks.not_checked("public-url", "the database, which lists the running "
                                      "daemons, is not usable")
        live = await repository.live_workers(self._db, self._settings.dead_worker_seconds)
        if self._worker_id is not None:
            live.add(self._worker_id)
        worker: str | None = None
        status = error = None
        try:
            response, body = await _get(self._http, f"{url}/healthz", follow_redirects=False)
        except _TooLarge:
            error = f"the answer is larger than {MAX_BODY} bytes"
        except (httpx.HTTPError, TimeoutError) as exc:
            error = _describe(exc)
        else:
            status = response.status_code
            worker = _worker_in(body)
        return checks.public_url(url, live_workers=live, worker=worker, status=status,
                                 error=error)

    async def cps(self) -> Finding:
        account = self._account
        if self._db is None or account is None:
            return checks.not_checked("cps", "needs the database and the account")
        since = dt.datetime.now(dt.UTC) - dt.timedelta(hours=checks.RECENT_HOURS)
        row = await repository.recent_pacing(self._db, account.sid, since, checks.QUEUED_MS)
        stats = checks.PacingStats(calls=row["calls"], queued=row["queued"],
                                   max_queue_ms=row["max_queue_ms"],
                                   busiest_minute=row["busiest_minute"])
        return checks.cps(account.cps, stats)

    async def campaign(self, campaign: Campaign) -> list[Finding]:
        """Caller ID, TwiML and compliance of one campaign."""
        assert self._db is not None
        return [await self.caller_id(campaign), await self.twiml(campaign),
                checks.default_zone(campaign.name, campaign.spec.default_timezone,
                                    await repository.contacts_without_zone(self._db,
                                                                           campaign.id))]

    async def caller_id(self, campaign: Campaign) -> Finding:
        client, number = self._client, campaign.spec.from_number
        if client is None or self._twilio_works is False:
            return checks.not_checked("caller-id", "the credentials check failed",
                                      subject=campaign.name)
        if campaign.account_sid != client.account_sid:
            return checks.not_checked(
                "caller-id", f"the campaign belongs to account {campaign.account_sid}, the "
                f"credentials to {client.account_sid}", subject=campaign.name)
        if number not in self._numbers:
            try:
                owned = await client.owns_number(number)
                verified = owned or await client.is_verified_caller_id(number)
            except TwilioError as exc:
                return checks.not_checked("caller-id", f"Twilio answered {exc.message!r}",
                                          subject=campaign.name)
            self._numbers[number] = (owned, verified)
        owned, verified = self._numbers[number]
        return checks.caller_id(campaign.name, number, owned=owned, verified=verified)

    async def twiml(self, campaign: Campaign) -> Finding:
        """The TwiML URL fetched, or the inline TwiML parsed, with the placeholders of
        the campaign's first contact filled as the dispatcher fills them."""
        assert self._db is not None
        spec = campaign.spec
        sample = await repository.sample_contact(self._db, campaign.id)
        values = personalise.contact_fields(
            sample["attributes"] if sample is not None else {},
            phone=sample["phone"] if sample is not None else "",
            contact_id=sample["id"] if sample is not None else 0,
            attempt=1, campaign=campaign.name,
        )
        label = f"contact #{sample['id']}" if sample is not None else None
        template = spec.twiml_url or spec.twiml or ""
        unfilled = checks.unfilled_placeholders(template, values) if sample else []
        if spec.twiml_url is not None:
            source = spec.twiml_url
            try:
                url = personalise.fill_url(spec.twiml_url, values)
            except personalise.TemplateError as exc:
                problem: str | None = f"is refused ({exc})"
            else:
                problem = await self._fetch_twiml(url)
        else:
            source = "the inline TwiML"
            problem = checks.twiml_problem(personalise.fill_twiml(template, values))
        return checks.twiml(campaign.name, source, problem=problem, unfilled=unfilled,
                            sample=label)

    async def _fetch_twiml(self, url: str) -> str | None:
        """What is wrong with the document at ``url`` (Twilio follows redirects)."""
        try:
            response, body = await _get(self._http, url, follow_redirects=True)
        except _TooLarge:
            return f"answers more than {MAX_BODY} bytes"
        except (httpx.HTTPError, TimeoutError) as exc:
            return f"could not be fetched ({_describe(exc)})"
        if not response.is_success:
            return f"answered {response.status_code} to a GET"
        document = body.decode(response.encoding or "utf-8", errors="replace")
        problem = checks.twiml_problem(document)
        return None if problem is None else f"answers a document that {problem}"


def _worker_in(body: bytes) -> str | None:
    """The worker id a dialer's /healthz names, or None for anything else."""
    try:
        report = json.loads(body)
    except ValueError:
        return None
    worker = report.get("worker") if isinstance(report, dict) else None
    return worker if isinstance(worker, str) else None


def _client_for(settings: Settings) -> TwilioClient | None:
    if settings.twilio_account_sid is None or settings.twilio_auth_token is None:
        return None
    return TwilioClient(
        account_sid=settings.twilio_account_sid,
        auth_token=settings.twilio_auth_token.get_secret_value(),
        api_base=settings.twilio_api_base, timeout=settings.twilio_timeout, max_in_flight=2,
    )


def _http_client() -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=PROBE_TIMEOUT, headers={"User-Agent": "dialer-check"})


def _loaded(row: asyncpg.Record) -> Campaign | Finding:
    """The campaign of a row, or a failed check when its stored settings no longer
    pass validation (the dispatcher pauses such a campaign rather than dial it)."""
    try:
        return Campaign.from_row(row)
    except ValueError as exc:
        detail = " ".join(str(exc).split())[:300]
        return Finding("settings", Verdict.FAIL,
                       f"campaign {row['name']} has stored settings this version refuses "
                       f"({detail})", fix=f"`dialer campaign edit {row['name']} ...`",
                       subject=row["name"])


async def _campaign_findings(preflight: Preflight, campaigns: Sequence[Campaign | Finding]
                             ) -> AsyncIterator[Finding]:
    if not campaigns:
        yield checks.no_campaigns()
    for campaign in campaigns:
        if isinstance(campaign, Finding):
            yield campaign
            continue
        for finding in await preflight.campaign(campaign):
            yield finding


async def _load(database: repository.Executor, settings: Settings, names: Sequence[str]
                ) -> tuple[list[Campaign | Finding], list[str]]:
    """The campaigns to check (by default every one of the account that may still
    dial) and the names given that match none."""
    if not names:
        rows = await repository.campaigns_to_check(database, settings.twilio_account_sid)
        return [_loaded(row) for row in rows], []
    found: list[Campaign | Finding] = []
    unknown = []
    for name in dict.fromkeys(names):
        row = await repository.campaign_by_name(database, name)
        if row is None:
            unknown.append(name)
        else:
            found.append(_loaded(row))
    return found, unknown


async def check_all(settings: Settings, *, dsn: str, names: Sequence[str] = ()
                    ) -> AsyncIterator[Finding]:
    """Every check of ``dialer check``, as each completes."""
    async with contextlib.AsyncExitStack() as stack:
        finding, conn = await open_database(dsn)
        yield finding
        if conn is not None:
            stack.push_async_callback(conn.close)
        client = _client_for(settings)
        if client is not None:
            stack.push_async_callback(client.aclose)
        http = await stack.enter_async_context(_http_client())
        preflight = Preflight(settings, client=client, http=http, database=conn)
        for finding in await preflight.credentials():
            yield finding
        try:
            yield await preflight.public_url()
            yield await preflight.cps()
            if conn is None:
                yield checks.not_checked("campaigns", "the database is not usable")
                return
            campaigns, unknown = await _load(conn, settings, names)
            for name in unknown:
                yield Finding("campaigns", Verdict.FAIL, f"no campaign named {name!r}",
                              fix="see `dialer campaign list`.")
            async for finding in _campaign_findings(preflight, campaigns):
                yield finding
        except DATABASE_FAILURES as exc:
            yield checks.not_checked("campaigns", f"the database failed: {_describe(exc)}")


async def credentials_refused(settings: Settings, client: TwilioClient) -> Finding | None:
    """``dialer run``'s first check of an account, logged: the failed check when Twilio
    refuses its credentials (the daemon does not dial for it), else None."""
    async with _http_client() as http:
        findings = await Preflight(settings, client=client, http=http,
                                   database=None).credentials()
    for finding in findings:
        log_finding(finding)
    return next((finding for finding in findings if finding.stops_start), None)


async def log_start_checks(settings: Settings, *, account: Account, client: TwilioClient,
                           pool: asyncpg.Pool, worker_id: str,
                           within: float = START_CHECKS_SECONDS) -> None:
    """``dialer run``'s other checks, once its endpoint listens: logged, never fatal,
    and given up after ``within`` seconds so that a slow TwiML host cannot hold the
    start (and systemd's start timeout) up."""
    async with _http_client() as http:
        preflight = Preflight(settings, client=client, http=http, database=pool,
                              worker_id=worker_id, account=account)
        try:
            async with asyncio.timeout(within):
                log_finding(await preflight.public_url())
                log_finding(await preflight.cps())
                rows = await repository.campaigns_to_check(pool, client.account_sid)
                async for finding in _campaign_findings(preflight,
                                                        [_loaded(r) for r in rows]):
                    log_finding(finding)
        except TimeoutError:  # first: a database error can be a TimeoutError too
            log.warning("start_checks_stopped", error=f"not done within {within:g} s")
        except DATABASE_FAILURES as exc:
            log.warning("start_checks_stopped", error=_describe(exc))
