"""The exceptions trackers raise and trackmux users catch.

The tree::

    TrackmuxError
    ├── DeliveryError                 a tracker's backend refused or failed a request
    │   ├── RetryableError            transient: the engine tries again (retry_after honoured)
    │   └── PermanentError            the request will never succeed: that tracker stops
    ├── UnknownJobError (LookupError) a job id no tracker of this session knows
    ├── TrackerNotFoundError (LookupError)  a tracker name that no installed plugin provides
    │   └── PluginLoadError           the tracker is installed but its plugin failed to load
    ├── TrackerClosedError (RuntimeError)   a call after ``disconnect()``
    └── DataDirectoryError (OSError)  the local data directory cannot be created or written

Plugins raise :class:`RetryableError` or :class:`PermanentError` from the delivery hooks
(``log_metrics``, ``finish_job``) so that the engine knows whether to try again. From
``connect`` they raise the built-in :class:`ValueError` (bad or rejected credentials) and
:class:`ConnectionError` (the backend cannot be reached), as the reference API documents.
"""

from __future__ import annotations

__all__ = [
    "DataDirectoryError",
    "DeliveryError",
    "PermanentError",
    "PluginLoadError",
    "RetryableError",
    "TrackerClosedError",
    "TrackerNotFoundError",
    "TrackmuxError",
    "UnknownJobError",
]


class TrackmuxError(Exception):
    """Base class of every exception trackmux defines."""


class DeliveryError(TrackmuxError):
    """A tracker's backend did not accept a request."""


class RetryableError(DeliveryError):
    """A transient failure: the same request may succeed later.

    :param retry_after: seconds the backend asked the client to wait (``Retry-After``),
        or ``None`` to let the engine's backoff decide.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        if retry_after is not None and retry_after < 0:
            retry_after = 0.0
        self.retry_after = retry_after


class PermanentError(DeliveryError):
    """A failure that retrying cannot fix (bad credentials, a rejected request).

    The engine stops delivering to that tracker and keeps everything in the journal, so
    ``trackmux sync`` can finish the job once the cause is fixed.
    """


class UnknownJobError(TrackmuxError, LookupError):
    """A job id that this tracker session did not create or resume."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"unknown job id {job_id!r}")
        self.job_id = job_id


class TrackerNotFoundError(TrackmuxError, LookupError):
    """A tracker was asked for by name but no installed plugin provides it."""

    def __init__(self, name: str, installed: list[str]) -> None:
        import difflib  # only when a name is wrong: not on import's path

        listed = ", ".join(sorted(installed)) or "none"
        message = f"tracker {name!r} is not installed; installed trackers: {listed}"
        close = difflib.get_close_matches(str(name).lower(), installed, n=1, cutoff=0.6)
        if close and close[0] != name:
            message += f" (did you mean {close[0]!r}?)"
        super().__init__(message)
        self.name = name
        self.installed = sorted(installed)


class TrackerClosedError(TrackmuxError, RuntimeError):
    """A call on a tracker session after ``disconnect()``."""


class PluginLoadError(TrackerNotFoundError):
    """A tracker's entry point is installed, but importing or registering its plugin failed.

    The message names the entry point, its distribution and the cause; the other installed
    plugins are unaffected.

    :param name: the tracker's entry-point name.
    :param installed: the trackers that are installed (whether or not they load).
    :param problem: what went wrong, naming the entry point and its distribution.
    """

    def __init__(self, name: str, installed: list[str], problem: str) -> None:
        super().__init__(name, installed)
        self.args = (f"tracker {name!r} is installed but its plugin failed to load: {problem}",)
        self.problem = problem


class DataDirectoryError(TrackmuxError, OSError):
    """trackmux cannot create or write its local data directory (read-only, full,
    permission denied...); the message names the directory and ``TRACKMUX_DIR``."""
