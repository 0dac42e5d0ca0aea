"""The HTTP endpoint Twilio reports to: status and AMD callbacks, the opt-out Gather
action (dialer.optout), health, metrics.

Answers are chosen for Twilio's retry behaviour: 2xx once an event is stored (and
for duplicates, which are already stored), 5xx only when the database could not
record it (so a retry can succeed), 4xx for requests that no retry can fix.

Everything in a request is hostile until checked, in this order, and nothing is
stored from a request that fails a check:

1. the path names an attempt in a form the dialer gives (dialer.callback_urls), 400;
2. the body is a well-formed UTF-8 form, 415/413/400;
3. it is Twilio's (403): every parameter name looks like Twilio's (an ASCII capital
   first, so that no name can begin where the URL ends or a value could), the names
   of the fields the dialer reads appear in the signed string only as those fields
   (so no boundary was moved, see ``resplit_field``), AccountSid is an account of
   this dialer, and the signature checks out with that account's key (each account
   has its own token and shared key: ``dialer.credentials``);
4. every field the dialer reads has the type and range its column takes, 400.

A Gather action request passes the same checks (its fields: ``optout.READ_FIELDS``,
and the one lowercase name Twilio sends, ``msg``) and is answered with TwiML.

So an event that reaches the group-commit batch cannot make Postgres refuse it, and
one bad request cannot spoil the others in its batch (see dialer.outcomes), which
also refuses an event whose AccountSid is not the account of the attempt it names.
"""

from __future__ import annotations

import datetime as dt
import re
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from dialer import metrics, optout
from dialer.callback_urls import CallbackTarget, NotACallbackUrl, parse_target, signed_urls
from dialer.outcomes import CallEvent, NotRecorded, OutcomeRecorder, Result
from dialer.repository import DATABASE_ERRORS, DATABASE_FAILURES
from dialer.signature import (
    ALGORITHMS,
    Params,
    parse_signature_settings,
    signed_params,
    validate_signature,
)
from dialer.twilio_words import AMD_SOURCE, ANSWERED_BY, CALL_STATUSES, STATUS_SOURCE

log = structlog.get_logger(__name__)

SHARED_KEY_SETTING = "DIALER_TWILIO_WEBHOOK_SHARED_KEY"
CALL_SID = re.compile(r"CA[0-9a-fA-F]{32}")
INT4_MAX = 2**31 - 1  # sequence_number, duration, sip_response_code are integer columns
_COUNT = re.compile(r"[0-9]{1,10}")
_SIP_CODE = re.compile(r"[1-6][0-9]{2}")  # RFC 3261 section 7.2: 100-699
# Twilio's parameter names are CamelCase words (CallSid, SipResponseCode).
_TWILIO_NAME = re.compile(r"[A-Z][A-Za-z0-9_]{0,63}")
# The names whose values the dialer reads (the rest is stored raw, never trusted).
READ_FIELDS = (
    "AccountSid", "AnsweredBy", "CallDuration", "CallSid", "CallStatus", "CallbackSource",
    "SequenceNumber", "SipResponseCode",
)
_IDEMPOTENCY_TOKEN = re.compile(r"[!-~]{1,256}")  # printable ASCII, no spaces
MAX_FIELDS = 256

HangUp = Callable[[str, str], None]
"""(account SID, call SID): end that call with that account's client."""
Health = Callable[[], Awaitable[dict[str, Any]]]
# dialer.repository.record_opt_out with its pool: (attempt id, Call SID, whether the row's
# campaign settings make the keys pressed an opt-out) -> the attempt's row, or None.
RecordOptOut = Callable[[int, str, Callable[[Any], bool]], Awaitable[Any]]
TWIML_TYPE = "text/xml"


@dataclass(frozen=True, slots=True)
class AccountKeys:
    """What authenticates one account's callbacks: its auth token and, when Webhooks
    Rules sign with a shared key, that key. Looked up by the callback's AccountSid.

    After a rotation (SIGHUP) the key it replaced is kept as ``former_*`` until the
    next reload: Twilio goes on signing with its primary token until the new one is
    promoted, which comes after the daemon has been given it."""

    auth_token: str = field(repr=False)
    shared_key: str | None = field(default=None, repr=False)
    former_auth_token: str | None = field(default=None, repr=False)
    former_shared_key: str | None = field(default=None, repr=False)

    def signing_keys(self, shared: bool) -> tuple[str, ...]:
        current, former = ((self.shared_key, self.former_shared_key) if shared
                           else (self.auth_token, self.former_auth_token))
        return tuple(key for key in (current, former) if key is not None)


class Refusal(Exception):
    """A request answered with ``status``. ``reason`` is a fixed label (metrics); the
    message adds the detail for the log and the answer."""

    status = 400

    def __init__(self, reason: str, detail: str | None = None) -> None:
        super().__init__(detail or reason)
        self.reason = reason


class BadCallback(Refusal):
    """Malformed: no retry can fix it. The message names the field."""

    status = 400


class NotTwilios(Refusal):
    """Not a genuine callback of one of our accounts (or not provably so)."""

    status = 403


class SharedKeyMissing(NotTwilios):
    """Signed by a Webhooks Rule with a shared key, and none is configured."""

    def __init__(self, account_sid: str, key_id: str | None) -> None:
        super().__init__(
            "shared key not configured",
            f"X-Twilio-Webhooks-Signature-Settings announces shared key {key_id!r} but "
            f"{SHARED_KEY_SETTING} is not set",
        )
        self.account_sid = account_sid
        self.key_id = key_id


def parse_form(body: bytes) -> dict[str, list[str]]:
    """The form's values by name, decoded strictly (Twilio sends UTF-8)."""
    try:
        pairs = urllib.parse.parse_qsl(
            body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body),
            errors="strict", max_num_fields=MAX_FIELDS,
        )
    except ValueError as exc:  # UnicodeDecodeError is one
        raise BadCallback("body is not a form", f"body is not a form: {exc}") from None
    form: dict[str, list[str]] = {}
    for name, value in pairs:
        form.setdefault(name, []).append(value)
    return form


def _values(form: Params, name: str) -> Sequence[str]:
    value = form.get(name, ())
    return (value,) if isinstance(value, str) else value


def _one(form: Params, name: str) -> str | None:
    values = _values(form, name)
    if len(values) > 1:
        raise BadCallback("field repeated", f"{name} given {len(values)} times")
    return values[0] if values else None


def resplit_field(form: Params, read: Sequence[str] = READ_FIELDS) -> str | None:
    """The first field the dialer reads whose name appears in the signed string other
    than as that field, or None.

    The signed string has no separators, so the holder of one genuine callback can
    move a boundary and keep the signature: absorb a field into the value before it
    (``To`` = ``+1415...AnsweredBymachine_start``), cut its name short
    (``AnsweredB`` = ``ymachine_start``) or lengthen it (``SipResponseCode200`` =
    ``""``). Each move leaves the field's name in the string where no field of that
    name starts. A name may still contain another as a later CamelCase word
    (``ParentCallSid``, ``DialCallStatus``): there the letter before it is lowercase.
    (None of these names overlaps itself, so counting occurrences is exact.)
    """
    names = sorted(form)
    in_names = "\x00".join(names)  # names are checked first: none holds a NUL
    signed = signed_params(form)
    for field_name in read:
        inside = in_names.count(field_name)
        if signed.count(field_name) != inside:
            return field_name  # in a value, or across a boundary
        if inside > (field_name in form) and not all(
            _later_word(name, field_name) for name in names
            if field_name in name and name != field_name
        ):
            return field_name
    return None


def _later_word(name: str, word: str) -> bool:
    """Every occurrence of ``word`` in ``name`` follows a lowercase letter."""
    start = name.find(word)
    while start != -1:
        if start == 0 or not name[start - 1].islower():
            return False
        start = name.find(word, start + 1)
    return True


def check_names(form: Params, read: Sequence[str] = READ_FIELDS,
                lowercase: frozenset[str] = frozenset()) -> None:
    """Every name looks like Twilio's (or is one of the ``lowercase`` names it sends),
    and no boundary of a field we read was moved."""
    for name in form:
        if not _TWILIO_NAME.fullmatch(name) and name not in lowercase:
            raise NotTwilios("parameter name not Twilio's", f"parameter name not Twilio's: "
                             f"{name[:40]!r}")
    moved = resplit_field(form, read)
    if moved is not None:
        raise NotTwilios("field boundary moved", f"{moved} appears inside another field")


def _count(form: Params, name: str, *, required: bool = False) -> int | None:
    """A non-negative integer that fits an integer column."""
    value = _one(form, name)
    if value is None or (value == "" and not required):
        if required:
            raise BadCallback("field missing", f"{name} missing")
        return None
    if not _COUNT.fullmatch(value) or int(value) > INT4_MAX:
        raise BadCallback("integer field malformed",
                          f"{name} is not an integer from 0 to {INT4_MAX}: {value[:40]!r}")
    return int(value)


def _choice(form: Params, name: str, allowed: frozenset[str], *, required: bool) -> str | None:
    value = _one(form, name) or None
    if value is None:
        if required:
            raise BadCallback("field missing", f"{name} missing")
        return None
    if value not in allowed:
        raise BadCallback("field not recognised", f"{name} not recognised: {value[:40]!r}")
    return value


def parse_event(
    form: Params, target: CallbackTarget, *, idempotency_token: str | None,
    account_sid: str | None = None,
) -> CallEvent:
    """Validate the fields of a signed callback and build its event; pure, so it can
    be fuzzed. Whatever it returns can be stored: no NUL (Postgres refuses it in text
    and jsonb), integers within their columns, statuses from Twilio's lists."""
    if "\x00" in signed_params(form):
        name = next(n for n in form if "\x00" in n + "".join(_values(form, n)))
        raise BadCallback("NUL character", f"{name} contains a NUL character")
    call_sid = _one(form, "CallSid") or ""
    if not CALL_SID.fullmatch(call_sid):
        raise BadCallback("CallSid malformed", f"CallSid missing or malformed: {call_sid[:40]!r}")
    if idempotency_token is not None and not _IDEMPOTENCY_TOKEN.fullmatch(idempotency_token):
        raise BadCallback("idempotency token malformed",
                          f"I-Twilio-Idempotency-Token malformed: {idempotency_token[:40]!r}")
    amd = target.kind == "amd"
    status = _choice(form, "CallStatus", CALL_STATUSES, required=not amd)
    answered_by = _choice(form, "AnsweredBy", ANSWERED_BY, required=amd)
    if amd:
        # One AMD result per call: its key is the call and the kind of report alone.
        source, sequence_number = AMD_SOURCE, None
    else:
        callback_source = _one(form, "CallbackSource")
        if callback_source not in (None, STATUS_SOURCE):
            raise BadCallback("CallbackSource not recognised",
                              f"CallbackSource not recognised: {callback_source[:40]!r}")
        source, sequence_number = STATUS_SOURCE, _count(form, "SequenceNumber", required=True)
    sip_code = _one(form, "SipResponseCode") or None
    if sip_code is not None and not _SIP_CODE.fullmatch(sip_code):
        raise BadCallback("SipResponseCode malformed",
                          f"SipResponseCode is not a SIP status code: {sip_code[:40]!r}")
    return CallEvent(
        call_sid=call_sid,
        source=source,
        params={name: values[-1] for name in form if (values := _values(form, name))},
        attempt_hint=target.attempt_id,
        sequence_number=sequence_number,
        idempotency_token=idempotency_token or None,
        call_status=status,
        answered_by=answered_by,
        duration=_count(form, "CallDuration"),
        sip_code=int(sip_code) if sip_code is not None else None,
        legacy_url=target.legacy,
        account_sid=account_sid,
    )


def _reject(reason: str, status: int, *, loud: bool = False, **context: Any) -> Response:
    metrics.CALLBACK_REJECTS.labels(reason).inc()
    (log.error if loud else log.warning)(
        "callback_rejected", reason=reason, status=status, **context)
    return PlainTextResponse(context.get("detail", reason), status_code=status)


def build_app(
    *,
    recorder: OutcomeRecorder,
    accounts: Mapping[str, AccountKeys],
    public_base_url: str,
    callback_retries: int,
    max_body: int,
    hang_up: HangUp,
    health: Health,
    clock: Callable[[], dt.datetime],
    record_opt_out: RecordOptOut,
) -> Starlette:
    """The callback application; collaborators are passed in so tests can wire it.
    ``accounts`` holds the keys of every account whose callbacks are accepted, by
    AccountSid; ``callback_retries`` is what the dialer's StatusCallback URLs asked
    for (it decides the one fragment a signature may cover)."""

    def authenticate(request: Request, form: dict[str, list[str]], path: str, query: str,
                     *, gather: bool) -> str:
        """The AccountSid of a genuine callback (NotTwilios otherwise)."""
        if gather:
            check_names(form, optout.READ_FIELDS, optout.LOWERCASE_FIELDS)
        else:
            check_names(form)
        account_sid = _one(form, "AccountSid") or ""
        keys = accounts.get(account_sid)
        if keys is None:
            raise NotTwilios("foreign AccountSid",
                             f"AccountSid is not this dialer's account: {account_sid[:40]!r}")
        signature = request.headers.get("x-twilio-signature", "")
        if not signature:
            raise NotTwilios("no signature")
        announced = parse_signature_settings(
            request.headers.get("x-twilio-webhooks-signature-settings"))
        algorithm = "HMAC_SHA1"
        if announced is not None:
            if announced.algorithm not in ALGORITHMS:
                raise NotTwilios("unknown signature algorithm",
                                 f"unknown signature algorithm {announced.algorithm[:40]!r}")
            if keys.shared_key is None:
                raise SharedKeyMissing(account_sid, announced.key_id)
            algorithm = announced.algorithm
        urls = signed_urls(public_base_url, path, query, retries=callback_retries)
        if not any(validate_signature(urls, form, signature, key, algorithm)
                   for key in keys.signing_keys(shared=announced is not None)):
            raise NotTwilios("bad signature")
        return account_sid

    async def signed_form(request: Request, *, gather: bool
                          ) -> tuple[CallbackTarget, dict[str, list[str]], str] | Response:
        """The target, form and AccountSid of a request that passed checks 1 to 3, or
        the refusal."""
        path = request.scope["raw_path"].decode("latin-1")
        query = request.scope["query_string"].decode("latin-1")
        try:
            target = parse_target(path, query)
        except NotACallbackUrl as exc:
            return _reject("not a callback URL", 400, detail=str(exc), path=path[:80])
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            return _reject("unsupported content type", 415, content_type=content_type[:60])
        length = request.headers.get("content-length")
        if length is None or not _COUNT.fullmatch(length) or int(length) > max_body:
            return _reject("body too large or length missing", 413)
        try:
            body = await request.body()
        except ClientDisconnect:  # gone, or cut off for reading too slowly
            return _reject("client disconnected", 400)
        if len(body) > max_body:
            return _reject("body too large", 413)
        try:
            form = parse_form(body)
            account_sid = authenticate(request, form, path, query, gather=gather)
        except SharedKeyMissing as exc:
            # Loud: every callback is refused until the operator sets the key.
            return _reject("shared key not configured", 403, loud=True, detail=str(exc),
                           setting=SHARED_KEY_SETTING, account_sid=exc.account_sid,
                           key=exc.key_id)
        except Refusal as exc:
            return _reject(exc.reason, exc.status, detail=str(exc), attempt=target.attempt_id)
        return target, form, account_sid

    async def callback(request: Request) -> Response:
        started = time.monotonic()
        try:
            return await answer(request)
        finally:
            metrics.CALLBACK_SECONDS.observe(time.monotonic() - started)

    async def answer(request: Request) -> Response:
        taken = await signed_form(request, gather=False)
        if isinstance(taken, Response):
            return taken
        target, form, account_sid = taken
        try:
            event = parse_event(
                form, target, idempotency_token=request.headers.get("i-twilio-idempotency-token"),
                account_sid=account_sid)
        except Refusal as exc:
            return _reject(exc.reason, exc.status, detail=str(exc), attempt=target.attempt_id)
        try:
            recorded = await recorder.record(event, now=clock())
        except (NotRecorded, *DATABASE_FAILURES) as exc:
            # Away, or it refused the write, or the daemon is stopping: not recorded,
            # so Twilio must send it again.
            reason = "database unavailable" if isinstance(exc, DATABASE_ERRORS) else (
                "stopping" if isinstance(exc, NotRecorded) else "database error")
            if not isinstance(exc, NotRecorded):
                metrics.DATABASE_ERRORS.labels("callback").inc()
            metrics.CALLBACK_REJECTS.labels(reason).inc()
            log.error("callback_not_recorded", call_sid=event.call_sid, error=repr(exc))
            return PlainTextResponse("not recorded, retry", status_code=503)
        except Exception:
            metrics.CALLBACK_REJECTS.labels("not recorded").inc()
            log.exception("callback_not_recorded", call_sid=event.call_sid)
            return PlainTextResponse("not recorded", status_code=500)
        if recorded.result is Result.UNKNOWN_CALL:
            return _reject("unknown call", 404, call_sid=event.call_sid)
        if recorded.result is Result.REFUSED:
            return _reject("old URL form for a new attempt", 403, attempt=target.attempt_id)
        if recorded.result is Result.FOREIGN:
            return _reject("another account's attempt", 403, attempt=target.attempt_id,
                           account_sid=account_sid)
        if recorded.hang_up is not None:
            hang_up(account_sid, recorded.hang_up)
        return Response(status_code=204)

    async def gather(request: Request) -> Response:
        """A key pressed in the campaign's Gather: the opt-out key puts the number on the
        do-not-call list at once and is answered with the confirmation; anything else
        with an empty document (the call ends)."""
        taken = await signed_form(request, gather=True)
        if isinstance(taken, Response):
            return taken
        target, form, account_sid = taken
        try:
            pressed = optout.parse_pressed(form)
        except optout.BadPress as exc:
            return _reject("gather field malformed", 400, detail=str(exc),
                           attempt=target.attempt_id)
        try:
            row = await record_opt_out(
                target.attempt_id, pressed.call_sid,
                lambda found: found["account_sid"] == account_sid
                and optout.is_opt_out(pressed.digits, found["opt_out_digit"]))
        except DATABASE_FAILURES as exc:
            metrics.CALLBACK_REJECTS.labels("database unavailable").inc()
            log.error("opt_out_not_recorded", call_sid=pressed.call_sid, error=repr(exc))
            return PlainTextResponse("not recorded, retry", status_code=503)
        if row is None:
            return _reject("unknown call", 404, call_sid=pressed.call_sid,
                           attempt=target.attempt_id)
        if row["account_sid"] != account_sid:  # signed by another account's key
            return _reject("another account's attempt", 403, attempt=target.attempt_id,
                           account_sid=account_sid)
        if not optout.is_opt_out(pressed.digits, row["opt_out_digit"]):
            return Response(optout.NOTHING, media_type=TWIML_TYPE)
        metrics.OPT_OUTS.labels(row["campaign"]).inc()
        log.info("opted_out", campaign=row["campaign"], contact=row["contact_id"],
                 attempt=target.attempt_id, call_sid=pressed.call_sid,
                 scope=row["opt_out_scope"])
        message = row["opt_out_message"] or optout.DEFAULT_MESSAGE
        return Response(optout.confirmation(message), media_type=TWIML_TYPE)

    async def healthz(request: Request) -> Response:
        started = time.monotonic()
        report = await health()
        report["check_ms"] = round((time.monotonic() - started) * 1000, 1)
        return JSONResponse(report, status_code=200 if report.get("ok") else 503)

    async def prometheus(request: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return Starlette(routes=[
        Route("/twilio/attempts/{attempt}/status", callback, methods=["POST"]),
        Route("/twilio/attempts/{attempt}/amd", callback, methods=["POST"]),
        Route("/twilio/attempts/{attempt}/gather", gather, methods=["POST"]),
        Route("/twilio/status", callback, methods=["POST"]),
        Route("/twilio/amd", callback, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", prometheus, methods=["GET"]),
    ])

