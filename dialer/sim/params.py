"""Parsing and validating request parameters, with the error codes Twilio answers.

Create Call: To and From are required, and exactly one of Url, Twiml or
ApplicationSid (Twilio itself would tolerate Url together with Twiml and ignore one;
the simulator refuses it so that a client's mistake shows). Every other parameter of
Twilio's CreateCallRequest is accepted; those that shape the call's progress
(StatusCallback*, Timeout, MachineDetection*, AsyncAmd*, SendDigits, Record) are
validated and used, the rest (Trim, CallerId, ...) are kept on the call as given.

Codes: 21201 To missing, 21213 From missing, 21211 invalid To, 21212 invalid From,
21205 Url missing or not a valid URL (also for the other URL parameters), 21218
invalid ApplicationSid, 20001 any other malformed value (a method that is not
GET/POST, a non-integer Timeout, an unknown StatusCallbackEvent or MachineDetection).
The To numbers in ``REFUSED_NUMBERS`` (Twilio's test "magic" numbers) are refused with
21211, 21214, 21215 and 21216.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from dialer.sim.errors import ApiError, bad_request
from dialer.sim.scenario import AmdMode
from dialer.twilio_words import RESOURCE_STATUSES, STATUS_CALLBACK_EVENTS

Form = dict[str, list[str]]
Method = Literal["GET", "POST"]

_E164 = re.compile(r"^\+[1-9]\d{1,14}$")
_APPLICATION_SID = re.compile(r"^AP[0-9a-fA-F]{32}$")
MAX_TIMEOUT = 600
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 50


def last(form: Form, name: str) -> str | None:
    """A single-valued parameter; when repeated, the last value wins."""
    values = form.get(name)
    return values[-1] if values else None


def _invalid(name: str, value: str) -> ApiError:
    return bad_request(20001, f"Invalid {name}: {value}")


def _is_phone(value: str) -> bool:
    return _E164.match(value) is not None


def _is_endpoint(value: str) -> bool:
    """A phone number, a SIP address or a Client identifier, as Twilio's `endpoint` format."""
    if value.startswith("client:"):
        return len(value) > len("client:")
    if value.startswith("sip:"):
        return "@" in value
    return _is_phone(value)


def _url(form: Form, name: str) -> str | None:
    value = last(form, name)
    if value is None or value == "":
        return None
    split = urlsplit(value)
    if split.scheme not in ("http", "https") or not split.hostname or "_" in split.hostname:
        raise bad_request(21205, f"{name} is not a valid URL: {value}")
    return value


def _method(form: Form, name: str) -> Method:
    value = (last(form, name) or "POST").upper()
    if value == "GET":
        return "GET"
    if value == "POST":
        return "POST"
    raise _invalid(name, value)


def _integer(form: Form, name: str, default: int, low: int, high: int, *,
             clamp: bool = True) -> int:
    """An integer parameter; out of [low, high] it is clamped (as Twilio does with
    Timeout) or, with ``clamp=False``, refused (as Twilio's spec bounds PageSize)."""
    value = last(form, name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise _invalid(name, value) from None
    if not clamp and not low <= number <= high:
        raise bad_request(20001, f"Invalid {name}: {value} (must be {low} to {high})")
    return min(max(number, low), high)


def _boolean(form: Form, name: str) -> bool:
    value = (last(form, name) or "false").lower()
    if value not in ("true", "false"):
        raise _invalid(name, value)
    return value == "true"


def _amd_mode(value: str | None) -> AmdMode:
    if not value:
        return None
    if value == "Enable":
        return "Enable"
    if value == "DetectMessageEnd":
        return "DetectMessageEnd"
    raise _invalid("MachineDetection", value)


@dataclass(frozen=True, slots=True)
class CreateParams:
    """A validated Create Call request; ``form`` keeps every parameter as sent."""

    to: str
    from_: str
    form: Form
    status_callback: str | None
    status_callback_method: Method
    status_callback_events: frozenset[str]
    timeout: int
    machine_detection: AmdMode
    async_amd: bool
    async_amd_status_callback: str | None
    async_amd_status_callback_method: Method
    record: bool
    twiml: str | None = None
    """The inline TwiML, if given (its ``<Gather action>`` is followed: dialer.sim.twiml)."""


# Twilio's test-credential "magic" To numbers, so a client's handling of refused
# numbers can be exercised with numbers that are valid E.164.
REFUSED_NUMBERS = {
    "+15005550001": (21211, "Invalid 'To' Phone Number"),
    "+15005550002": (21214, "'To' phone number cannot be reached"),
    "+15005550003": (21215, "Account not authorized to call this number (geo permissions)"),
    "+15005550004": (21216, "Account not allowed to call this number (blocked)"),
}


def parse_create(form: Form) -> CreateParams:
    to = last(form, "To") or ""
    from_ = last(form, "From") or ""
    if not to:
        raise bad_request(21201, "No 'To' number is specified")
    if not from_:
        raise bad_request(21213, "No 'From' number is specified")
    if not _is_endpoint(to):
        raise bad_request(21211, f"Invalid 'To' Phone Number: {to}")
    if to in REFUSED_NUMBERS:
        code, message = REFUSED_NUMBERS[to]
        raise bad_request(code, f"{message}: {to}")
    if not _is_endpoint(from_) or from_.startswith("sip:") or (
        _is_phone(to) and not _is_phone(from_)
    ):
        raise bad_request(21212, f"Invalid 'From' Phone Number: {from_}")
    given = [name for name in ("Url", "Twiml", "ApplicationSid") if last(form, name)]
    if not given:
        raise bad_request(21205, "Url parameter is required.")
    if len(given) > 1:
        raise bad_request(21205, f"Give only one of Url, Twiml, ApplicationSid (got {given})")
    _url(form, "Url")
    application_sid = last(form, "ApplicationSid")
    if application_sid and not _APPLICATION_SID.match(application_sid):
        raise bad_request(21218, f"Invalid ApplicationSid: {application_sid}")
    for name in ("FallbackUrl", "RecordingStatusCallback"):
        _url(form, name)
    for name in ("Method", "FallbackMethod", "RecordingStatusCallbackMethod"):
        _method(form, name)

    events = {event for value in form.get("StatusCallbackEvent", []) for event in value.split()}
    unknown = events - set(STATUS_CALLBACK_EVENTS)
    if unknown:
        raise _invalid("StatusCallbackEvent", " ".join(sorted(unknown)))
    detection = _amd_mode(last(form, "MachineDetection"))
    if last(form, "SendDigits"):
        detection = None  # Twilio ignores MachineDetection when SendDigits is given
    _integer(form, "MachineDetectionTimeout", 30, 3, 59)  # checked; the fate sets AMD timing
    async_amd = _boolean(form, "AsyncAmd")
    # An application brings its own callbacks: Twilio ignores these with ApplicationSid.
    status_callback = None if application_sid else _url(form, "StatusCallback")
    return CreateParams(
        to=to,
        from_=from_,
        form=form,
        status_callback=status_callback,
        status_callback_method=_method(form, "StatusCallbackMethod"),
        status_callback_events=frozenset(events or {"completed"}),
        timeout=_integer(form, "Timeout", 60, 1, MAX_TIMEOUT),
        machine_detection=detection,
        async_amd=async_amd and detection is not None,
        async_amd_status_callback=_url(form, "AsyncAmdStatusCallback"),
        async_amd_status_callback_method=_method(form, "AsyncAmdStatusCallbackMethod"),
        record=_boolean(form, "Record"),
        twiml=last(form, "Twiml") or None,
    )


@dataclass(frozen=True, slots=True)
class UpdateParams:
    status: Literal["canceled", "completed"] | None
    url: str | None
    twiml: str | None
    status_callback: str | None
    status_callback_method: Method | None


def _end_status(value: str | None) -> Literal["canceled", "completed"] | None:
    if not value:
        return None
    if value == "canceled":
        return "canceled"
    if value == "completed":
        return "completed"
    raise _invalid("Status", value)


def parse_update(form: Form) -> UpdateParams:
    return UpdateParams(
        status=_end_status(last(form, "Status")),
        url=_url(form, "Url"),
        twiml=last(form, "Twiml") or None,
        status_callback=_url(form, "StatusCallback"),
        status_callback_method=(
            _method(form, "StatusCallbackMethod") if last(form, "StatusCallbackMethod") else None
        ),
    )


@dataclass(frozen=True, slots=True)
class DateFilter:
    """Twilio's date filters: ``on`` the date, ``before`` it, or ``on_or_after`` it (UTC)."""

    on: dt.date | None = None
    before: dt.date | None = None
    on_or_after: dt.date | None = None

    def matches(self, day: dt.date | None) -> bool:
        if day is None:
            return self == DateFilter()
        return (
            (self.on is None or day == self.on)
            and (self.before is None or day < self.before)
            and (self.on_or_after is None or day >= self.on_or_after)
        )


@dataclass(frozen=True, slots=True)
class Paging:
    """Which page of a list: ``PageSize`` (1..1000, default 50), ``Page`` and ``PageToken``."""

    page_size: int = DEFAULT_PAGE_SIZE
    page: int = 0
    page_token: str | None = None


def parse_paging(form: Form) -> Paging:
    return Paging(
        page_size=_integer(form, "PageSize", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE, clamp=False),
        page=_integer(form, "Page", 0, 0, 2**31, clamp=False),
        page_token=last(form, "PageToken") or None,
    )


@dataclass(frozen=True, slots=True)
class ListParams:
    """A validated list request; ``filters`` are the filtering pairs as sent, for page URIs."""

    to: str | None
    from_: str | None
    status: str | None
    parent_call_sid: str | None
    start: DateFilter
    end: DateFilter
    paging: Paging
    filters: tuple[tuple[str, str], ...]


def _date(form: Form, name: str) -> dt.date | None:
    value = last(form, name)
    if not value:
        return None
    try:
        # Twilio takes a date; a full timestamp is cut to its date, as Twilio does.
        return dt.date.fromisoformat(value[:10])
    except ValueError:
        raise _invalid(name, value) from None


def _date_filter(form: Form, field: str) -> DateFilter:
    return DateFilter(
        on=_date(form, field),
        before=_date(form, f"{field}<"),
        on_or_after=_date(form, f"{field}>"),
    )


_FILTER_NAMES = (
    "To", "From", "ParentCallSid", "Status", "StartTime", "StartTime<", "StartTime>",
    "EndTime", "EndTime<", "EndTime>",
)


def parse_list(form: Form) -> ListParams:
    status = last(form, "Status") or None
    if status is not None and status not in RESOURCE_STATUSES:
        raise _invalid("Status", status)
    return ListParams(
        to=last(form, "To") or None,
        from_=last(form, "From") or None,
        status=status,
        parent_call_sid=last(form, "ParentCallSid") or None,
        start=_date_filter(form, "StartTime"),
        end=_date_filter(form, "EndTime"),
        paging=parse_paging(form),
        filters=tuple(
            (name, value) for name in _FILTER_NAMES if (value := last(form, name))
        ),
    )
