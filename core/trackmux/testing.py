"""Tools for testing trackers and the engine: virtual time and injected faults.

* :class:`VirtualTimeLoop` — an asyncio event loop whose clock jumps to the next timer when
  nothing else is ready, so an engine run of minutes of timeouts, batch intervals and
  backoffs takes milliseconds and is exactly reproducible.
* :func:`run_on_virtual_clock` — build an engine for one tracker on such a loop, connect
  it, run a scenario against it, and close it.
* :class:`FaultInjector` — a pluggy wrapper plugin that makes a tracker's delivery hooks
  fail (before the call reaches the tracker, or after it was applied and only the
  acknowledgement is lost) according to a plan, and records when each record was
  delivered.
"""

from __future__ import annotations

import asyncio
import inspect
import random
import selectors
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trackmux_spec import MetricRecord, RetryableError, hookimpl

if TYPE_CHECKING:
    import pluggy

    from ._engine import Engine

__all__ = ["FaultInjector", "VirtualTimeLoop", "run_on_virtual_clock"]


class _VirtualSelector:
    """Wraps a real selector: real events first; otherwise advance virtual time, don't sleep."""

    def __init__(self, selector: selectors.BaseSelector, loop: VirtualTimeLoop) -> None:
        self._selector = selector
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[Any]:
        events = self._selector.select(0)
        if events or timeout == 0:
            return events
        if timeout is None:
            return self._selector.select(None)  # only another thread can wake us
        self._loop.advance(timeout)
        return []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._selector, name)


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop on a virtual clock (starts at 0.0).

    When no callback is ready, the clock jumps to the earliest timer instead of sleeping.
    Use it with an engine built with ``blocking="inline"`` and in-process transports, so
    that nothing happens outside the loop.
    """

    def __init__(self) -> None:
        super().__init__()
        self._now = 0.0
        self._selector = _VirtualSelector(self._selector, self)  # type: ignore[has-type,arg-type]

    def time(self) -> float:
        """The virtual time, in seconds."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self._now += max(0.0, seconds)


def run_on_virtual_clock(
    pm: pluggy.PluginManager,
    tracker: str,
    data_dir: Path,
    scenario: Callable[[Engine, VirtualTimeLoop], Awaitable[Any]],
    *,
    credentials: Mapping[str, Any] | None = None,
    settings: Mapping[str, Any] | None = None,
    seed: int = 0,
    loop: VirtualTimeLoop | None = None,
) -> Any:
    """Run ``scenario(engine, loop)`` against a connected engine delivering to ``tracker``.

    The engine runs blocking hooks inline and backs off with a seeded jitter, so a run is
    exactly reproducible; it is closed (without waiting) when the scenario returns. Pass
    ``loop`` to hand its clock to something built before the engine (a transport).
    """
    from ._engine import Engine
    from ._plugins import tracker_caller
    from ._retry import Backoff

    loop = loop or VirtualTimeLoop()

    async def main() -> Any:
        engine = Engine(pm, [tracker_caller(pm, tracker)], data_dir,
                        tracker_settings={tracker: dict(settings or {})},
                        blocking="inline", backoff=Backoff(rng=random.Random(seed)))
        await engine.start(credentials)
        try:
            return await scenario(engine, loop)
        finally:
            await engine.close(0)

    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


Plan = Callable[[str, "list[MetricRecord] | None"], str | float | None]


class FaultInjector:
    """A wrapper plugin injecting failures into ``log_metrics``, ``finish_job``, ``submit_job``
    and ``upload_artifact``.

    ``plan(hook, records)`` returns ``None`` (let the call through), ``"before"`` (fail
    with :class:`RetryableError` without calling the tracker), ``"after"`` (call the
    tracker, then fail: the data arrived but the acknowledgement was lost) or a number of
    seconds (rate limited: fail before the call with that ``retry_after``).

    ``delivered[seq]`` holds ``clock()`` at the first acknowledged delivery of each record,
    ``reached[seq]`` at the first call that the tracker handled (acknowledged or not);
    ``acknowledged`` counts acknowledged records (a record delivered twice counts twice).
    ``artifact_ids`` lists ``(artifact.key, returned id)`` for every ``upload_artifact`` call
    that reached the tracker, acknowledged or not.
    """

    def __init__(self, plan: Plan, clock: Callable[[], float]) -> None:
        self.plan = plan
        self.clock = clock
        self.delivered: dict[tuple[str, int], float] = {}
        self.reached: dict[tuple[str, int], float] = {}
        self.acknowledged = 0
        self.injected = 0
        self.artifact_ids: list[tuple[str | None, str]] = []

    def _fail(self, hook: str, retry_after: float | None = None) -> RetryableError:
        self.injected += 1
        return RetryableError(f"injected failure in {hook}", retry_after=retry_after)

    def _wrap(self, hook: str, records: list[MetricRecord] | None, job_id: str,
              artifact_key: Any = False) -> Any:
        mode = self.plan(hook, records)
        if mode == "before":
            raise self._fail(hook)
        if isinstance(mode, int | float):
            raise self._fail(hook, float(mode))
        result = yield

        def acknowledge(value: Any) -> None:
            if artifact_key is not False:
                self.artifact_ids.append((artifact_key, value))
            if records is not None:
                now = self.clock()
                for record in records:
                    self.reached.setdefault((job_id, record.seq), now)
            if mode == "after":
                raise self._fail(hook)
            if records is not None:
                now = self.clock()
                self.acknowledged += len(records)
                for record in records:
                    self.delivered.setdefault((job_id, record.seq), now)

        if inspect.isawaitable(result):
            awaitable = result

            async def then() -> Any:
                value = await awaitable
                acknowledge(value)
                return value

            return then()
        acknowledge(result)
        return result

    @hookimpl(wrapper=True)
    def log_metrics(self, session: object, job_id: str, records: list[MetricRecord]) -> Any:
        """Fail or pass a batch according to the plan; record delivery times."""
        return (yield from self._wrap("log_metrics", list(records), job_id))

    @hookimpl(wrapper=True)
    def finish_job(self, session: object, job_id: str, status: Any) -> Any:
        """Fail or pass the end of a run according to the plan."""
        return (yield from self._wrap("finish_job", None, job_id))

    @hookimpl(wrapper=True)
    def submit_job(self, session: object, run_id: str, config: Any) -> Any:
        """Fail or pass the creation of a run according to the plan."""
        return (yield from self._wrap("submit_job", None, run_id))

    @hookimpl(wrapper=True)
    def upload_artifact(self, session: object, job_id: str, path: Path, artifact: Any) -> Any:
        """Fail or pass an artifact upload according to the plan; record the ids returned."""
        return (yield from self._wrap("upload_artifact", None, job_id, artifact.key))
