"""How W&B's HTTP answers map onto trackmux's error classes.

The policy is the SDK's ``RetryMostFailures`` (``core/internal/clients/retry_policy.go``):
connection errors, timeouts, 408, 429, 5xx and unlisted 4xx are worth retrying; 400,
401, 403, 404, 409, 410, 413, 422 and 501 are not. 413 gets its own class so that
``log_metrics`` can split the batch and resend smaller requests.
"""

from __future__ import annotations

import httpx
from trackmux_spec import PermanentError, RetryableError
from trackmux_spec.http import parse_retry_after

__all__ = [
    "PERMANENT_STATUSES",
    "PayloadTooLargeError",
    "error_for_response",
    "error_for_transport",
    "parse_retry_after",
]

PERMANENT_STATUSES = frozenset({400, 401, 403, 404, 409, 410, 413, 422, 501})


class PayloadTooLargeError(PermanentError):
    """HTTP 413: this request is too big; a smaller one may pass."""


def _server_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return str(errors[0].get("message", ""))[:200]
        if "error" in body:
            return str(body["error"])[:200]
    return ""


def error_for_response(response: httpx.Response, operation: str) -> RetryableError | PermanentError:
    """The exception to raise for a non-2xx ``response`` to ``operation``.

    The HTTP status is kept on the exception as ``status_code``.
    """
    status = response.status_code
    detail = _server_message(response)
    message = f"W&B {operation} failed: HTTP {status} {response.reason_phrase}".rstrip()
    if detail:
        message = f"{message}: {detail}"
    error: RetryableError | PermanentError
    if status == 413:
        error = PayloadTooLargeError(message)
    elif status in PERMANENT_STATUSES:
        error = PermanentError(message)
    else:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        error = RetryableError(message, retry_after=retry_after)
    error.status_code = status  # type: ignore[union-attr]
    return error


def error_for_transport(exc: httpx.TransportError, operation: str) -> RetryableError:
    """A timeout or a failed/dropped connection: always worth retrying."""
    kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "connection failed"
    return RetryableError(f"W&B {operation} {kind}: {type(exc).__name__}")
