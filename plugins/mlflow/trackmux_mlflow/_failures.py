"""How the MLflow tracking server's answers map onto trackmux's error classes.

MLflow answers errors with an HTTP status and a JSON body ``{"error_code", "message"}``
(``mlflow/protos/databricks.proto``). The policy mirrors MLflow's own client
(``mlflow/utils/rest_utils.py``, which retries 429 and 5xx): connection failures,
timeouts, 408, 429 and 5xx are worth retrying; other 4xx answers are not (400
``INVALID_PARAMETER_VALUE``, 401/403, 404 ``RESOURCE_DOES_NOT_EXIST``…).
"""

from __future__ import annotations

import httpx
from trackmux_spec import PermanentError, RetryableError
from trackmux_spec.http import parse_retry_after

__all__ = [
    "MLflowError",
    "MLflowRetryableError",
    "error_for_response",
    "error_for_transport",
    "parse_retry_after",
]

_RETRYABLE_STATUSES = frozenset({408, 429})


class MLflowError(PermanentError):
    """A request the server refused; carries its HTTP status and MLflow ``error_code``."""

    def __init__(self, message: str, *, status_code: int, error_code: str | None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error_code = error_code


class MLflowRetryableError(RetryableError):
    """A transient failure; carries the HTTP status (``None`` for a transport failure)."""

    def __init__(
        self, message: str, *, status_code: int | None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, retry_after=retry_after)
        self.status_code = status_code


def _error_body(response: httpx.Response) -> tuple[str | None, str]:
    try:
        body = response.json()
    except ValueError:
        return None, response.text[:200]
    if isinstance(body, dict):
        code = body.get("error_code")
        return (str(code) if code else None), str(body.get("message", ""))[:300]
    return None, ""


def error_for_response(
    response: httpx.Response, operation: str
) -> MLflowError | MLflowRetryableError:
    """The exception to raise for a non-2xx ``response`` to ``operation``."""
    status = response.status_code
    code, detail = _error_body(response)
    message = f"MLflow {operation} failed: HTTP {status}"
    if code:
        message = f"{message} {code}"
    if detail:
        message = f"{message}: {detail}"
    if status in _RETRYABLE_STATUSES or status >= 500:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        return MLflowRetryableError(message, status_code=status, retry_after=retry_after)
    return MLflowError(message, status_code=status, error_code=code)


def error_for_transport(exc: httpx.TransportError, operation: str) -> MLflowRetryableError:
    """A timeout or a failed/dropped connection: always worth retrying."""
    kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "connection failed"
    return MLflowRetryableError(
        f"MLflow {operation} {kind}: {type(exc).__name__}", status_code=None
    )
