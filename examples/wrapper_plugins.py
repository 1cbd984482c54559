"""Wrapper plugins: code that runs around a hook of every tracker (docs/writing-a-plugin.md).

A wrapper is a pluggy new-style hook wrapper, ``@trackmux.hookimpl(wrapper=True)``: a
generator that runs up to ``yield`` before the tracker's hook, gets its result from the
``yield``, and returns the result. Register one on a plugin manager (or ship it in a
distribution with an entry point in the ``trackmux.wrappers`` group)::

    pm = trackmux.get_plugin_manager()
    pm.register(PrefixMetricKeys("train/"))
    tracker = trackmux.Tracker(plugin_manager=pm)

Two rules follow from the contract:

* A wrapper cannot pass other arguments on; it can change a mutable argument in place.
  The engine hands ``log_metrics`` a fresh ``list`` per tracker and resends the *same*
  list after a failure, so an in-place change must be idempotent.
* Every hook is ``firstresult`` and may return a coroutine (an async tracker). Passing the
  result on unchanged (``return (yield)``) is always right; a wrapper that acts on the
  outcome must await an awaitable result, as :class:`AcknowledgedRecords` does.
"""

from __future__ import annotations

import inspect
import os
import re
from collections import Counter
from collections.abc import Generator
from typing import Any

import attrs
import trackmux
from trackmux_spec import MetricRecord

__all__ = ["AcknowledgedRecords", "DropMetrics", "MainRankMetricsOnly", "PrefixMetricKeys"]


def _replace(records: Any, new: list[MetricRecord]) -> None:
    if not isinstance(records, list):
        raise TypeError(f"log_metrics records must be a list to be rewritten, got {type(records)}")
    records[:] = new


class PrefixMetricKeys:
    """Prefix every metric key (``loss`` → ``train/loss``), for every tracker."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def _key(self, key: str) -> str:
        return key if key.startswith(self.prefix) else self.prefix + key

    @trackmux.hookimpl(wrapper=True)
    def log_metrics(self, session: object, job_id: str,
                    records: list[MetricRecord]) -> Generator[None, Any, Any]:
        """Rewrite the batch in place (idempotent: a resent batch is not prefixed twice)."""
        _replace(records, [attrs.evolve(r, values={self._key(k): v for k, v in r.values.items()})
                           for r in records])
        return (yield)


class DropMetrics:
    """Redact: metrics whose name matches ``pattern`` never reach any tracker."""

    def __init__(self, pattern: str) -> None:
        self.pattern = re.compile(pattern)

    @trackmux.hookimpl(wrapper=True)
    def log_metrics(self, session: object, job_id: str,
                    records: list[MetricRecord]) -> Generator[None, Any, Any]:
        """Remove matching keys from every record (a record may end up with no values)."""
        _replace(records, [attrs.evolve(r, values={k: v for k, v in r.values.items()
                                                   if not self.pattern.search(k)})
                           for r in records])
        return (yield)


class MainRankMetricsOnly:
    """Send metrics from rank 0 only, while every rank still creates and finishes its run.

    Useful with ``ranks="all"`` when every rank should record its config and artifacts but
    only rank 0 its metrics. The rank is read as trackmux reads it (``RANK``, ...). The
    batch is emptied, not skipped (a wrapper must let the call through): an empty batch
    stores nothing and acknowledges the records, so they are dropped for good.
    """

    def __init__(self, rank: int | None = None) -> None:
        from trackmux._ranks import detect_rank

        self.rank = detect_rank(os.environ) if rank is None else rank

    @trackmux.hookimpl(wrapper=True)
    def log_metrics(self, session: object, job_id: str,
                    records: list[MetricRecord]) -> Generator[None, Any, Any]:
        """Empty the batch on a non-zero rank."""
        if self.rank:
            _replace(records, [])
        return (yield)


class AcknowledgedRecords:
    """Counts the records each job's tracker acknowledged: acts *after* the hook returned.

    The tracker's result may be a coroutine (an async tracker): the count must wait for it,
    so the wrapper returns a new coroutine that awaits it first (the pattern of
    ``trackmux.testing.FaultInjector``).
    """

    def __init__(self) -> None:
        self.acknowledged: Counter[str] = Counter()

    @trackmux.hookimpl(wrapper=True)
    def log_metrics(self, session: object, job_id: str,
                    records: list[MetricRecord]) -> Generator[None, Any, Any]:
        """Count the batch once the tracker accepted it (a raised error counts nothing)."""
        count = len(records)
        result = yield
        if inspect.isawaitable(result):
            awaitable = result

            async def then() -> Any:
                value = await awaitable
                self.acknowledged[job_id] += count
                return value

            return then()
        self.acknowledged[job_id] += count
        return result
