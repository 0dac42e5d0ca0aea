"""Twilio's REST error answers: an HTTP status plus a JSON body with Twilio's error code.

Clients decide what to do from the code (a permanent refusal, an auth problem, a
rate limit), so the codes are the ones Twilio uses for the same situations.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """Raised by request handling; the app turns it into Twilio's error JSON."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "more_info": f"https://www.twilio.com/docs/errors/{self.code}",
            "status": self.status,
        }


def bad_request(code: int, message: str) -> ApiError:
    return ApiError(400, code, message)


def unauthorized() -> ApiError:
    return ApiError(401, 20003, "Authenticate")


def account_not_active() -> ApiError:
    """A create on a suspended or closed account (the status is the simulator's choice,
    see ``accounts``)."""
    return ApiError(401, 20005, "Account not active")


def not_found(path: str) -> ApiError:
    return ApiError(404, 20404, f"The requested resource {path} was not found")


def method_not_allowed(method: str, path: str) -> ApiError:
    return ApiError(405, 20004, f"Method {method} not allowed on {path}")


def unsupported_media_type(content_type: str) -> ApiError:
    """Twilio documents no code of its own for this; 20001 is its generic bad request."""
    return ApiError(
        415, 20001, f"Unsupported Content-Type {content_type[:80]!r}: "
        "send application/x-www-form-urlencoded"
    )


def malformed_request(detail: str) -> ApiError:
    """The HTTP request itself could not be parsed (the server's 400, before any route)."""
    return ApiError(400, 20001, f"Malformed HTTP request: {detail}")


def for_status(status: int, method: str, path: str) -> ApiError:
    """The Twilio error for a status the web framework chose (no route, wrong method...)."""
    if status == 404:
        return not_found(path)
    if status == 405:
        return method_not_allowed(method, path)
    if status >= 500:
        return server_error(status)
    return ApiError(status, 20001, f"Bad request ({status}) for {method} {path}")


def too_many_requests() -> ApiError:
    return ApiError(429, 20429, "Too Many Requests")


def concurrent_calls_exceeded(limit: int) -> ApiError:
    return ApiError(400, 10004, f"Call concurrency limit exceeded: at most {limit} calls")


def server_error(status: int) -> ApiError:
    """A 5xx the way Twilio reports them: code 20500 / 20503."""
    message = "Service Unavailable" if status == 503 else "Internal Server Error"
    return ApiError(status, 20000 + status, message)
