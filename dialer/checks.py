"""The verdicts of ``dialer check`` (and of the checks ``dialer run`` logs at start):
from facts gathered elsewhere (``preflight`` does the I/O) to ok, warn or fail with
what to do. Pure, so every verdict is tested without a network or a database.

Most campaigns that go wrong with Twilio go wrong through configuration, and the
operator otherwise learns of it from a burnt list: a rotated auth token, a caller ID
the account does not own (21210 on every create), a public URL Twilio cannot reach
(11200 on every status callback, outcomes 15 minutes late through reconciliation),
a CPS setting above the account's (calls pile up in Twilio's queue).
"""

from __future__ import annotations

import collections
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from dialer import personalise

# A call that waited longer than this in Twilio's queue was created faster than the
# account's CPS (Twilio queues what exceeds it and reports the wait as queue_time).
QUEUED_MS = 1000
RECENT_HOURS = 24
CREDENTIALS = "credentials"


class Verdict(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class Finding:
    """One line of ``dialer check``: which check, its verdict, what was found and, when
    something is wrong, what to do. ``subject`` names the campaign it is about."""

    check: str
    verdict: Verdict
    message: str
    fix: str | None = None
    subject: str | None = None
    stops_start: bool = False
    """``dialer run`` refuses to start (exit 2): only refused credentials, since every
    request would fail; anything else is logged and the daemon starts."""

    def line(self) -> str:
        about = f"{self.subject}: " if self.subject else ""
        fix = f" Fix: {self.fix}" if self.fix and self.verdict is not Verdict.OK else ""
        return f"{self.verdict.value:<5} {self.check:<11} {about}{self.message}{fix}"


def not_checked(check: str, reason: str, *, subject: str | None = None) -> Finding:
    return Finding(check, Verdict.WARN, f"not checked: {reason}", subject=subject)


def exit_code(findings: Iterable[Finding]) -> int:
    """1 when anything failed (the operation "check" failed), else 0."""
    return 1 if any(f.verdict is Verdict.FAIL for f in findings) else 0


def summary(findings: Iterable[Finding]) -> str:
    counts = collections.Counter(f.verdict for f in findings)
    parts = ", ".join(f"{counts[v]} {v.value}" for v in (Verdict.FAIL, Verdict.WARN, Verdict.OK))
    return f"checks: {parts}"


# ---- the database ----------------------------------------------------------------------

def database_unreachable(error: str) -> Finding:
    return Finding("database", Verdict.FAIL, f"cannot connect: {error}",
                   fix="check DIALER_DATABASE_URL and that the server runs.")


def schema(known: set[int], applied: set[int]) -> Finding:
    """``known``: the migrations this version ships; ``applied``: the database's."""
    missing, unknown = sorted(known - applied), sorted(applied - known)
    if missing:
        return Finding("database", Verdict.FAIL,
                       f"reachable, but the schema lacks migrations {missing}",
                       fix="run `dialer migrate`.")
    if unknown:
        return Finding("database", Verdict.WARN,
                       f"reachable, with migrations {unknown} this version does not know "
                       "(a newer dialer migrated it)",
                       fix="upgrade this installation to the version that migrated it.")
    return Finding("database", Verdict.OK, f"reachable, schema current ({len(known)} migrations)")


# ---- the account -----------------------------------------------------------------------

TOKEN_FIX = ("set DIALER_TWILIO_AUTH_TOKEN (or the dialer_twilio_auth_token credential) to "
             "the account's current auth token, from the Twilio Console's account info; "
             "the daemon reads it at start.")


def credentials_missing() -> Finding:
    return Finding(CREDENTIALS, Verdict.FAIL,
                   "DIALER_TWILIO_ACCOUNT_SID and DIALER_TWILIO_AUTH_TOKEN are not both set",
                   fix="set both (see config/dialer.env.example).")


def credentials_refused(account_sid: str, status: int | None, code: int | None) -> Finding:
    answer = "/".join(str(part) for part in (status, code) if part is not None)
    return Finding(CREDENTIALS, Verdict.FAIL,
                   f"Twilio refused the credentials of {account_sid} ({answer})",
                   fix=TOKEN_FIX, stops_start=True)


def twilio_unreachable(api_base: str, error: str) -> Finding:
    return Finding(CREDENTIALS, Verdict.FAIL, f"no answer from {api_base}: {error}",
                   fix="check the network and DIALER_TWILIO_API_BASE.")


def credentials_accepted(account_sid: str) -> Finding:
    return Finding(CREDENTIALS, Verdict.OK, f"Twilio accepted the credentials of {account_sid}")


def account(status: str, account_type: str | None) -> Finding:
    """The Account resource's ``status`` (active, suspended, closed) and ``type``."""
    if status == "suspended":
        return Finding("account", Verdict.FAIL,
                       "suspended: Twilio refuses every call (20005 Account not active)",
                       fix="settle the balance or ask Twilio Support (a suspended subaccount "
                           "is reactivated by its parent with Status=active).")
    if status == "closed":
        return Finding("account", Verdict.FAIL, "closed: it can never place calls again",
                       fix="use the credentials of an active account.")
    if status != "active":
        return Finding("account", Verdict.FAIL, f"status {status!r}, not active",
                       fix="ask Twilio Support what the status means.")
    if account_type == "Trial":
        return Finding("account", Verdict.WARN,
                       "active, but a Trial account: it calls only verified numbers and "
                       "plays a trial notice first",
                       fix="upgrade the account in the Twilio Console before a real list.")
    return Finding("account", Verdict.OK, f"active ({account_type or 'type not given'})")


# ---- the caller ID ---------------------------------------------------------------------

def caller_id(campaign: str, number: str, *, owned: bool, verified: bool) -> Finding:
    if owned:
        return Finding("caller-id", Verdict.OK, f"{number} is a number of the account",
                       subject=campaign)
    if verified:
        return Finding("caller-id", Verdict.OK, f"{number} is a verified caller ID of the account",
                       subject=campaign)
    return Finding(
        "caller-id", Verdict.FAIL,
        f"{number} is neither a number of the account nor a verified caller ID: Twilio "
        "would refuse every call (21210)",
        fix=f"buy or port the number, verify it as a caller ID, or change the campaign's "
            f"--from (`dialer campaign edit {campaign} --from ...`).",
        subject=campaign)


# ---- the public URL --------------------------------------------------------------------

CALLBACKS_LOST = ("Twilio's status callbacks would fail (11200) and outcomes would arrive "
                  "only through reconciliation")
PUBLIC_URL_FIX = ("set DIALER_PUBLIC_BASE_URL to the address at which Twilio reaches this "
                  "daemon's DIALER_CALLBACK_BIND (through your proxy).")


def public_url(url: str, *, live_workers: set[str], worker: str | None, status: int | None,
               error: str | None) -> Finding:
    """What ``GET {url}/healthz`` gave (``worker``: the dialer worker id it named, the
    nonce of one running daemon; ``error``: why there was no answer) against the
    daemons running on this database (``live_workers``)."""
    healthz = f"{url}/healthz"
    if not live_workers:
        seen = error or (f"answers as worker {worker}" if worker else f"answers {status}")
        return Finding("public-url", Verdict.WARN,
                       f"no daemon runs, so nothing shows whether {url} reaches one "
                       f"({healthz}: {seen})",
                       fix="start `dialer run`, then run `dialer check` again.")
    if error is not None:
        return Finding("public-url", Verdict.FAIL, f"{healthz}: {error}: {CALLBACKS_LOST}",
                       fix=PUBLIC_URL_FIX)
    if worker is None:
        return Finding("public-url", Verdict.FAIL,
                       f"{healthz} answered {status} without a dialer worker id: another "
                       f"server answers there, so {CALLBACKS_LOST}", fix=PUBLIC_URL_FIX)
    if worker not in live_workers:
        return Finding("public-url", Verdict.FAIL,
                       f"{healthz} is answered by worker {worker}, which is no daemon running "
                       f"on this database (another host or database): {CALLBACKS_LOST}",
                       fix=PUBLIC_URL_FIX)
    return Finding("public-url", Verdict.OK, f"{url} reaches the running daemon {worker}")


# ---- the TwiML -------------------------------------------------------------------------

def unfilled_placeholders(template: str, values: Mapping[str, object]) -> list[str]:
    """``${column}`` placeholders the contact has no value for (they are left empty);
    ``values`` as ``personalise.contact_fields`` makes them."""
    return personalise.missing(template, {str(k): str(v) for k, v in values.items()})


def twiml_problem(document: str) -> str | None:
    """Why ``document`` is no TwiML Twilio can run, or None. Parsed with the standard
    library: with expat 2.4.1 or newer (Python 3.11 ships it) neither entity expansion
    nor external entities are a danger (see the xml module's vulnerability table)."""
    try:
        root = ElementTree.fromstring(document)
    except ElementTree.ParseError as exc:
        return f"is not well-formed XML ({exc})"
    if root.tag != "Response":
        return f"has root element <{root.tag}>, not <Response>"
    return None


def twiml(campaign: str, source: str, *, problem: str | None, unfilled: list[str],
          sample: str | None) -> Finding:
    """``source``: the TwiML URL (as configured, without a contact's data) or "the inline
    TwiML"; ``problem``: what was wrong with fetching or parsing it; ``sample``: whose
    placeholders were filled (None: the campaign has no contacts yet)."""
    if problem is not None:
        return Finding("twiml", Verdict.FAIL,
                       f"{source} {problem}: every answered call would hear Twilio's "
                       "application error", fix="fix the document or --twiml-url/--twiml "
                       f"(`dialer campaign edit {campaign} ...`).", subject=campaign)
    filled = f"with the placeholders of {sample}" if sample else "(no contacts yet)"
    if unfilled:
        names = ", ".join("${" + name + "}" for name in unfilled)
        return Finding("twiml", Verdict.WARN,
                       f"{source} is TwiML, but {names} match no column of {sample or 'a contact'}"
                       " and would be left empty",
                       fix="add the columns to the CSV or correct the placeholders.",
                       subject=campaign)
    return Finding("twiml", Verdict.OK, f"{source} is TwiML {filled}", subject=campaign)


# ---- the CPS ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PacingStats:
    """How the account's recent calls fared at Twilio's queue (see ``QUEUED_MS``)."""

    calls: int
    queued: int
    max_queue_ms: int | None
    busiest_minute: int
    """Calls sent in the busiest minute of the period."""


def cps(configured: float, stats: PacingStats) -> Finding:
    period = f"the last {RECENT_HOURS} h"
    if stats.calls == 0:
        return Finding("cps", Verdict.OK,
                       f"no calls in {period} to compare DIALER_TWILIO_CPS={configured:g} with")
    busiest = (f"busiest minute {_count(stats.busiest_minute, 'call')} "
               f"({stats.busiest_minute / 60:.1f}/s)")
    if stats.queued:
        waited = (stats.max_queue_ms or 0) / 1000
        return Finding(
            "cps", Verdict.WARN,
            f"{stats.queued} of {stats.calls} calls in {period} waited in Twilio's queue (up "
            f"to {waited:.1f} s; {busiest}): the account's CPS is below "
            f"DIALER_TWILIO_CPS={configured:g}",
            fix="set DIALER_TWILIO_CPS to the CPS the Twilio Console shows for the account, "
                "or have the account's CPS raised.")
    return Finding("cps", Verdict.OK,
                   f"{_count(stats.calls, 'call')} in {period}, none queued at Twilio ({busiest}, "
                   f"DIALER_TWILIO_CPS={configured:g})")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def no_campaigns() -> Finding:
    return Finding("campaigns", Verdict.OK, "no draft, running or paused campaign to check")



# ---- compliance ------------------------------------------------------------------------
# A contact is called only when the calling window is open in every zone it may be in:
# its row's timezone column, else every zone of its number. A number that gives none
# (satellite, some international services) and a row without a zone leave only the
# campaign's default zone; without one such contacts are skipped, never called at a
# guessed hour (47 CFR 64.1200(c)(1): local time at the called party's location).


def default_zone(campaign: str, zone: str | None, zoneless: int) -> Finding:
    """``zoneless``: contacts still to call whose row and number give no zone."""
    if zoneless == 0:
        return Finding("compliance", Verdict.OK,
                       "every contact still to call has a time zone (its row's or its "
                       "number's)", subject=campaign)
    if zone is None:
        return Finding(
            "compliance", Verdict.WARN,
            f"{_count(zoneless, 'contact')} without a time zone (none in the CSV, none from "
            "the number) will not be called: the campaign has no default zone",
            fix=f"give them a timezone column, or the campaign a default zone (`dialer "
                f"campaign edit {campaign} --timezone America/New_York`).",
            subject=campaign)
    return Finding("compliance", Verdict.OK,
                   f"{_count(zoneless, 'contact')} without a zone of their own: called in the "
                   f"default zone {zone}", subject=campaign)
