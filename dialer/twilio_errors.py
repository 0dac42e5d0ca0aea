"""Whom a refused Create Call concerns, decided from Twilio's error code: the one table.

A refusal is about one of four things, and each calls for a different reaction:

- **the contact** (``CONTACT``): this number can never be called as it is. The
  contact fails with the code; the campaign goes on.
- **the campaign** (``CAMPAIGN``): its settings are wrong (URL, caller ID, a
  parameter), so every other contact would be refused the same way. The campaign
  pauses with the reason stored; the contact's attempt is given back.
- **the account** (``ACCOUNT``): credentials refused, account suspended or closed.
  Every campaign of the account pauses; no attempt is counted.
- **not now**: ``RATE_LIMITED`` (429/20429: back off and resend the same attempt),
  ``RETRY_LATER`` (refused before anything was created, e.g. 10004 concurrency:
  try again in a while), ``AMBIGUOUS`` (a 5xx: the call may exist, so it is
  reconciled, never resent blindly).

The comment above each code quotes the title of its page in Twilio's error
dictionary (https://www.twilio.com/docs/api/errors/NNNNN) and sums up its
description; the titles marked "(not checked)" come from Twilio's error list as
other clients use them, their pages could not be read when this table was written.
A code missing from the table is decided by the HTTP status: 401/403 concern the
account, 429 is a rate limit, 5xx is ambiguous, and any other 4xx is taken to
concern the campaign, because pausing loudly is the mistake that costs least: a
wrong guess of "contact" would fail the whole list one contact at a time, and of
"retry later" would retry it for ever.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["CODES", "Concern", "Refusal", "classify"]


class Concern(enum.Enum):
    CONTACT = "contact"
    CAMPAIGN = "campaign"
    ACCOUNT = "account"
    RATE_LIMITED = "rate_limited"
    RETRY_LATER = "retry_later"
    AMBIGUOUS = "ambiguous"


@dataclass(frozen=True, slots=True)
class Refusal:
    concern: Concern
    title: str


C, P, A = Concern.CONTACT, Concern.CAMPAIGN, Concern.ACCOUNT

CODES: dict[int, Refusal] = {
    # ---- the contact --------------------------------------------------------------
    # "Dial: Invalid phone number format": numbers must be E.164, at most 15 digits.
    13223: Refusal(C, "Invalid phone number format"),
    # "Dial: Twilio does not support calling this number or the number is invalid":
    # not E.164, a country code, area code or exchange that does not exist, or no
    # carrier partner can deliver the call.
    13224: Refusal(C, "Twilio does not support calling this number or the number is invalid"),
    # "Dial: Forbidden phone number" (not checked).
    13225: Refusal(C, "Forbidden phone number"),
    # "Dial: Invalid country code": the country code of the number is unknown.
    13226: Refusal(C, "Invalid country code"),
    # "Dial: No International Authorization" (not checked); Twilio's support pages
    # list it with 21215 among the codes of calls blocked by Geo Permissions.
    13227: Refusal(C, "No international authorization for this destination"),
    # "Invalid 'To' Phone Number": not a valid number or not in E.164 format.
    21211: Refusal(C, "Invalid 'To' phone number"),
    # "'To' phone number cannot be reached": a number that cannot be reached.
    21214: Refusal(C, "'To' phone number cannot be reached"),
    # "Geo Permission configuration is not permitting call" (not checked): the
    # account's Voice Geographic Permissions do not allow this destination.
    21215: Refusal(C, "Geo Permissions do not allow calling this number"),
    # "API: Call blocked by Twilio": the destination is blocked (high fraud risk,
    # regulatory reasons, or a +1 destination without a Primary Customer Profile).
    21216: Refusal(C, "Call blocked by Twilio"),
    # "Phone number does not appear to be valid": an outbound call to an invalid number.
    21217: Refusal(C, "Phone number does not appear to be valid"),
    # "'To' phone number not verified" (not checked): a trial account may call only
    # its verified numbers.
    21219: Refusal(C, "'To' phone number not verified (trial account)"),
    # ---- the campaign -------------------------------------------------------------
    # "Unknown parameters": a parameter was not recognised (the simulator also uses
    # it for a malformed value, as Twilio does for some).
    20001: Refusal(P, "Unknown or malformed parameter"),
    # "Url is not a valid URL" (the Url of a Create Call request).
    21205: Refusal(P, "The TwiML URL is not a valid URL"),
    # "Invalid Method": Method must be GET or POST.
    21209: Refusal(P, "Invalid method"),
    # "'From' phone number not verified": the caller ID is neither a Twilio number of
    # the account nor one of its verified caller IDs.
    21210: Refusal(P, "Caller ID (From) not verified for this account"),
    # "Invalid 'From' Phone Number" (not checked): the caller ID is not a valid number.
    21212: Refusal(P, "Invalid caller ID (From)"),
    # "Caller phone number is required": the From parameter is missing.
    21213: Refusal(P, "Caller ID (From) missing"),
    # "Invalid ApplicationSid": the application does not exist or is not available
    # within the account.
    21218: Refusal(P, "Invalid ApplicationSid"),
    # ---- the account --------------------------------------------------------------
    # "Account is not active": disabled (lack of funds, terms of service) until it is
    # reactivated.
    10001: Refusal(A, "Account is not active"),
    # "Permission Denied": wrong Account SID and Auth Token, a deleted token or key,
    # test credentials, or an account suspended or closed.
    20003: Refusal(A, "Permission denied (credentials refused)"),
    # "Account not active": out of funds or a free trial not yet activated.
    20005: Refusal(A, "Account not active"),
    # "Access Denied": insufficient privileges for the requested resource.
    20006: Refusal(A, "Access denied"),
    # "403 Forbidden": the account lacks permission to use the API, typically
    # because it was suspended or closed.
    20403: Refusal(A, "Account suspended or closed"),
    # "Not Found" on Create Call: the Calls list of this Account SID does not exist
    # (a wrong SID or API base URL).
    20404: Refusal(A, "Account not found"),
    # ---- not now ------------------------------------------------------------------
    # "Too Many Requests": too many concurrent REST API requests; a request answered
    # 429 is never processed and is always safe to retry.
    20429: Refusal(Concern.RATE_LIMITED, "Too many requests"),
    # "Call concurrency limit exceeded": the account's limit of concurrent calls.
    10004: Refusal(Concern.RETRY_LATER, "Call concurrency limit exceeded"),
    # "Internal Server Error": on a POST that creates a call, retrying may place the
    # call twice, so the attempt is reconciled first.
    20500: Refusal(Concern.AMBIGUOUS, "Internal server error"),
    # "Service unavailable": temporarily unavailable; try again with back-off.
    20503: Refusal(Concern.AMBIGUOUS, "Service unavailable"),
}


def classify(status: int, code: int | None) -> Refusal:
    """Whom an error answer to Create Call concerns (see the module docstring)."""
    known = CODES.get(code) if code is not None else None
    if status == 429:
        return CODES[20429]
    if status >= 500:  # whatever the code says, the call may exist
        return known if known and known.concern is Concern.AMBIGUOUS else Refusal(
            Concern.AMBIGUOUS, f"HTTP {status}")
    if known is not None:
        return known
    if status in (401, 403):
        return Refusal(Concern.ACCOUNT, f"HTTP {status} (credentials or account refused)")
    if status == 404:
        return CODES[20404]
    return Refusal(Concern.CAMPAIGN, f"unrecognised Twilio error (HTTP {status})")
