"""The HTTP endpoint Twilio reports to: status and AMD callbacks, health, metrics.

Answers are chosen for Twilio's retry behaviour: 2xx once an event is stored (and
for duplicates, which are already stored), 503 only when it could not be recorded
(so a retry can succeed), 4xx for requests that no retry can fix. Nothing is stored
from a request whose X-Twilio-Signature does not check out.
"""

from __future__ import annotations

import datetime as dt
import re
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import asyncpg
import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from dialer import metrics
from dialer.outcomes import CallEvent, OutcomeRecorder, Result
from dialer.repository import DATABASE_FAILURES
from dialer.signature import validate_signature

log = structlog.get_logger(__name__)

CALL_SID = re.compile(r"^CA[0-9a-fA-F]{32}$")
CALL_STATUSES = frozenset({
    "queued", "initiated", "ringing", "in-progress", "completed", "busy", "no-answer",
    "failed", "canceled",
})
ANSWERED_BY = frozenset({
    "human", "machine_start", "machine_end_beep", "machine_end_silence",
    "machine_end_other", "fax", "unknown",
})

HangUp = Callable[[str], None]
Health = Callable[[], Awaitable[dict[str, Any]]]


class BadCallback(ValueError):
    """A callback we can never accept; the message names the field."""


def _optional_int(params: Mapping[str, str], name: str) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise BadCallback(f"{name} is not an integer: {value[:40]!r}") from None


def parse_event(
    params: Mapping[str, str], *, source_hint: str, query: Mapping[str, str],
    idempotency_token: str | None,
) -> CallEvent:
    """Validate a callback's fields and build the event; pure, so it can be fuzzed."""
    call_sid = params.get("CallSid", "")
    if not CALL_SID.match(call_sid):
        raise BadCallback(f"CallSid missing or malformed: {call_sid[:40]!r}")
    status = params.get("CallStatus") or None
    if status is not None and status not in CALL_STATUSES:
        raise BadCallback(f"CallStatus not recognised: {status[:40]!r}")
    answered_by = params.get("AnsweredBy") or None
    if answered_by is not None and answered_by not in ANSWERED_BY:
        raise BadCallback(f"AnsweredBy not recognised: {answered_by[:40]!r}")
    if source_hint == "amd" and answered_by is None:
        raise BadCallback("AnsweredBy missing from an AMD callback")
    if source_hint != "amd" and status is None:
        raise BadCallback("CallStatus missing from a status callback")
    hint = query.get("a")
    if hint is not None and not hint.isdigit():
        raise BadCallback(f"attempt id is not a number: {hint[:40]!r}")
    duration = _optional_int(params, "CallDuration")
    if duration is not None and duration < 0:
        raise BadCallback("CallDuration is negative")
    return CallEvent(
        call_sid=call_sid,
        source=params.get("CallbackSource") or source_hint,
        params=dict(params),
        attempt_hint=int(hint) if hint is not None else None,
        sequence_number=_optional_int(params, "SequenceNumber"),
        idempotency_token=idempotency_token or None,
        call_status=status,
        answered_by=answered_by,
        duration=duration,
        sip_code=_optional_int(params, "SipResponseCode"),
    )


def _reject(reason: str, status: int, **context: Any) -> Response:
    metrics.CALLBACK_REJECTS.labels(reason).inc()
    log.warning("callback_rejected", reason=reason, status=status, **context)
    return PlainTextResponse(reason, status_code=status)


def build_app(
    *,
    recorder: OutcomeRecorder,
    auth_token: str,
    public_base_url: str,
    max_body: int,
    hang_up: HangUp,
    health: Health,
    clock: Callable[[], dt.datetime],
) -> Starlette:
    """The callback application; collaborators are passed in so tests can wire it."""

    async def callback(request: Request) -> Response:
        source_hint = "amd" if request.url.path.endswith("/amd") else "call-progress-events"
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            return _reject("unsupported content type", 415, content_type=content_type[:60])
        length = request.headers.get("content-length")
        if length is None or not length.isdigit() or int(length) > max_body:
            return _reject("body too large or length missing", 413)
        body = await request.body()
        if len(body) > max_body:
            return _reject("body too large", 413)
        try:
            pairs = urllib.parse.parse_qsl(
                body.decode("utf-8"), keep_blank_values=True, strict_parsing=False
            )
        except (UnicodeDecodeError, ValueError):
            return _reject("body is not a form", 400)
        form: dict[str, list[str]] = {}
        for key, value in pairs:
            form.setdefault(key, []).append(value)
        query = request.url.query
        url = public_base_url + request.url.path + (f"?{query}" if query else "")
        signature = request.headers.get("x-twilio-signature", "")
        if not signature or not validate_signature(url, form, signature, auth_token):
            return _reject("bad signature", 403, path=request.url.path)
        params = {key: values[-1] for key, values in form.items()}
        try:
            event = parse_event(
                params, source_hint=source_hint, query=dict(request.query_params),
                idempotency_token=request.headers.get("i-twilio-idempotency-token"),
            )
        except BadCallback as exc:
            return _reject(str(exc), 400)
        try:
            recorded = await recorder.record(event, now=clock())
        except DATABASE_FAILURES as exc:
            # Away, or it refused the write: not recorded, so Twilio must send it again.
            reason = "database error" if isinstance(exc, asyncpg.PostgresError) else (
                "database unavailable")
            metrics.CALLBACK_REJECTS.labels(reason).inc()
            log.error("callback_not_recorded", call_sid=event.call_sid, error=repr(exc))
            return PlainTextResponse("not recorded, retry", status_code=503)
        if recorded.result is Result.UNKNOWN_CALL:
            return _reject("unknown call", 404, call_sid=event.call_sid)
        if recorded.hang_up is not None:
            hang_up(recorded.hang_up)
        return Response(status_code=204)

    async def healthz(request: Request) -> Response:
        started = time.monotonic()
        report = await health()
        report["check_ms"] = round((time.monotonic() - started) * 1000, 1)
        return JSONResponse(report, status_code=200 if report.get("ok") else 503)

    async def prometheus(request: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return Starlette(routes=[
        Route("/twilio/status", callback, methods=["POST"]),
        Route("/twilio/amd", callback, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", prometheus, methods=["GET"]),
    ])
