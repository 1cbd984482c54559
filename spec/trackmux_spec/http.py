"""HTTP details every remote tracker shares: reading ``Retry-After``, and naming the request
of a multi-request operation (an artifact upload) that failed."""

from __future__ import annotations

import datetime as dt
import email.utils
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ._errors import PermanentError, RetryableError

__all__ = ["parse_retry_after", "request_step"]

T = TypeVar("T")


async def request_step(step: str, call: Callable[[], Awaitable[T]]) -> T:
    """Await ``call()``, one request of a larger operation: a ``RetryableError`` or
    ``PermanentError`` it raises is raised again naming ``step``, keeping its class and its
    ``retry_after`` (so the engine still retries what is retryable)."""
    try:
        return await call()
    except RetryableError as exc:
        raise RetryableError(f"{step} failed: {exc}", retry_after=exc.retry_after) from None
    except PermanentError as exc:
        raise PermanentError(f"{step} failed: {exc}") from None


def parse_retry_after(value: str | None, *, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date.

    :returns: ``None`` for a missing or unreadable header; never negative.
    """
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    now = now or dt.datetime.now(dt.UTC)
    return max(0.0, (when - now).total_seconds())
