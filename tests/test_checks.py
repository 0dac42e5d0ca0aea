"""The verdicts of ``dialer check`` (dialer.checks), from facts to ok / warn / fail."""

from __future__ import annotations

import pytest

from dialer import checks
from dialer.checks import Finding, PacingStats, Verdict

OK, WARN, FAIL = Verdict.OK, Verdict.WARN, Verdict.FAIL


def test_a_line_names_verdict_check_subject_message_and_fix() -> None:
    finding = Finding("caller-id", FAIL, "+1 is not ours", fix="buy it.", subject="spring")
    assert finding.line() == "fail  caller-id   spring: +1 is not ours Fix: buy it."
    assert Finding("cps", OK, "fine", fix="never shown").line() == "ok    cps         fine"


def test_exit_code_and_summary_count_fails() -> None:
    findings = [Finding("a", OK, ""), Finding("b", WARN, ""), Finding("c", WARN, "")]
    assert checks.exit_code(findings) == 0
    assert checks.summary(findings) == "checks: 0 fail, 2 warn, 1 ok"
    assert checks.exit_code([*findings, Finding("d", FAIL, "")]) == 1


@pytest.mark.parametrize(("known", "applied", "verdict", "text"), [
    ({1, 2}, {1, 2}, OK, "schema current (2 migrations)"),
    ({1, 2}, {1}, FAIL, "lacks migrations [2]"),
    ({1, 2}, set(), FAIL, "lacks migrations [1, 2]"),
    ({1, 2}, {1, 2, 3}, WARN, "migrations [3] this version does not know"),
])
def test_schema(known: set[int], applied: set[int], verdict: Verdict, text: str) -> None:
    finding = checks.schema(known, applied)
    assert finding.verdict is verdict and text in finding.message
    if verdict is FAIL:
        assert finding.fix == "run `dialer migrate`."


@pytest.mark.parametrize(("status", "kind", "verdict", "text"), [
    ("active", "Full", OK, "active (Full)"),
    ("active", "Trial", WARN, "Trial account"),
    ("suspended", "Full", FAIL, "20005"),
    ("closed", "Full", FAIL, "closed"),
    ("frozen", None, FAIL, "'frozen'"),
])
def test_account_status(status: str, kind: str | None, verdict: Verdict, text: str) -> None:
    finding = checks.account(status, kind)
    assert finding.verdict is verdict and text in finding.message
    assert not finding.stops_start


def test_only_refused_credentials_stop_the_daemon() -> None:
    refused = checks.credentials_refused("AC1", 401, 20003)
    assert refused.verdict is FAIL and refused.stops_start
    assert "(401/20003)" in refused.message and "DIALER_TWILIO_AUTH_TOKEN" in (refused.fix or "")
    for other in (checks.twilio_unreachable("https://api.twilio.com", "timed out"),
                  checks.credentials_missing(), checks.account("suspended", "Full"),
                  checks.caller_id("c", "+1", owned=False, verified=False)):
        assert other.verdict is FAIL and not other.stops_start


@pytest.mark.parametrize(("owned", "verified", "verdict", "text"), [
    (True, False, OK, "a number of the account"),
    (False, True, OK, "a verified caller ID"),
    (False, False, FAIL, "21210"),
])
def test_caller_id(owned: bool, verified: bool, verdict: Verdict, text: str) -> None:
    finding = checks.caller_id("spring", "+14155550123", owned=owned, verified=verified)
    assert finding.verdict is verdict and text in finding.message
    assert finding.subject == "spring"


LIVE = {"host:1:aa", "host:2:bb"}


@pytest.mark.parametrize(("live", "worker", "status", "error", "verdict", "text"), [
    (LIVE, "host:2:bb", 200, None, OK, "reaches the running daemon host:2:bb"),
    (LIVE, "host:2:bb", 503, None, OK, "reaches"),  # unhealthy, but it is this daemon
    (LIVE, "elsewhere:9:cc", 200, None, FAIL, "no daemon running on this database"),
    (LIVE, None, 200, None, FAIL, "without a dialer worker id"),
    (LIVE, None, None, "connection refused", FAIL, "connection refused"),
    (set(), None, None, "connection refused", WARN, "no daemon runs"),
    (set(), "elsewhere:9:cc", 200, None, WARN, "as worker elsewhere:9:cc"),
])
def test_public_url(live: set[str], worker: str | None, status: int | None,
                    error: str | None, verdict: Verdict, text: str) -> None:
    finding = checks.public_url("https://dialer.example.com", live_workers=live,
                                worker=worker, status=status, error=error)
    assert finding.verdict is verdict and text in finding.message, finding.message
    if verdict is FAIL:
        assert "11200" in finding.message and "DIALER_PUBLIC_BASE_URL" in (finding.fix or "")


@pytest.mark.parametrize(("document", "problem"), [
    ("<Response><Say>Hi</Say></Response>", None),
    ("<?xml version='1.0'?>\n<Response/>", None),
    ("<Response><Say>Hi</Say>", "not well-formed"),
    ("Hello", "not well-formed"),
    ("<html><body>404</body></html>", "root element <html>"),
    ("", "not well-formed"),
])
def test_twiml_problem(document: str, problem: str | None) -> None:
    found = checks.twiml_problem(document)
    assert (found is None) if problem is None else (found is not None and problem in found)


def test_an_entity_bomb_is_refused_not_expanded() -> None:
    bomb = ('<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">'
            + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">'
                      for i in range(8))
            + ']><Response><Say>&i;</Say></Response>')
    problem = checks.twiml_problem(bomb)
    assert problem is not None and "not well-formed" in problem


def test_unfilled_placeholders() -> None:
    template = "https://x/t.xml?n=${first_name}&d=${date}&c=$$5"
    assert checks.unfilled_placeholders(template, {"first_name": "Ann"}) == ["date"]
    assert checks.unfilled_placeholders(template, {"first_name": "A", "date": "1"}) == []


def test_twiml_verdicts() -> None:
    ok = checks.twiml("spring", "the inline TwiML", problem=None, unfilled=[],
                      sample="contact #4")
    assert ok.verdict is OK and "contact #4" in ok.message
    empty = checks.twiml("spring", "the inline TwiML", problem=None, unfilled=[], sample=None)
    assert empty.verdict is OK and "no contacts yet" in empty.message
    unfilled = checks.twiml("spring", "https://x", problem=None, unfilled=["date"],
                            sample="contact #4")
    assert unfilled.verdict is WARN and "${date}" in unfilled.message
    broken = checks.twiml("spring", "https://x", problem="answered 404 to a GET", unfilled=[],
                          sample=None)
    assert broken.verdict is FAIL and broken.message.startswith("https://x answered 404")


@pytest.mark.parametrize(("stats", "verdict", "text"), [
    (PacingStats(calls=0, queued=0, max_queue_ms=None, busiest_minute=0), OK, "no calls"),
    (PacingStats(calls=600, queued=0, max_queue_ms=0, busiest_minute=300), OK,
     "600 calls in the last 24 h, none queued at Twilio (busiest minute 300 calls (5.0/s), "
     "DIALER_TWILIO_CPS=10)"),
    (PacingStats(calls=600, queued=42, max_queue_ms=12_500, busiest_minute=600), WARN,
     "42 of 600 calls in the last 24 h waited in Twilio's queue (up to 12.5 s"),
])
def test_cps(stats: PacingStats, verdict: Verdict, text: str) -> None:
    finding = checks.cps(10, stats)
    assert finding.verdict is verdict and text in finding.message, finding.message


@pytest.mark.parametrize(("zone", "zoneless", "verdict", "text"), [
    (None, 0, OK, "every contact still to call has a time zone"),
    ("America/Chicago", 12, OK, "12 contacts without a zone of their own"),
    ("America/Chicago", 1, OK, "1 contact without a zone of their own"),
    ("UTC", 3, OK, "called in the default zone UTC"),  # chosen: there is no silent default
    (None, 12, WARN, "12 contacts without a time zone (none in the CSV, none from the "
                     "number) will not be called"),
])
def test_default_zone(zone: str | None, zoneless: int, verdict: Verdict, text: str) -> None:
    finding = checks.default_zone("spring", zone, zoneless)
    assert finding.verdict is verdict and text in finding.message
    if verdict is WARN:
        assert "--timezone" in (finding.fix or "")
