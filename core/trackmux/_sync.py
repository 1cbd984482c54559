"""``trackmux sync``: deliver what a tracker never acknowledged, from the journal, exactly once.

A run's journal keeps every record and, per tracker, a cursor of what that tracker
acknowledged. Syncing a run to a tracker resumes the run there (``submit_job`` is
idempotent), asks it where the run ends (the ``resume_point`` hook), sends everything after
both that and the cursor, and, if the run had ended, tells the tracker its final state.
Records the tracker already holds (a lost acknowledgement) are counted as already there,
not as sent; a tracker without ``resume_point`` skips them itself through their ``seq``, so
syncing twice changes nothing.

Artifacts go the same way: every journaled artifact the tracker does not hold (by its
delivery marks) is uploaded from trackmux's artifact store, with its stable key, so a
tracker that already stored it (a lost acknowledgement) stores nothing new; W&B's digest
deduplication commits no second version. A run is finished on the tracker only once its
artifacts are there.

The sources this covers: a process that crashed or was killed, a run logged offline (for
instance with ``WANDB_MODE=offline``), a tracker that stopped on a permanent error, and an
outage longer than ``disconnect()`` waited.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pluggy
from attrs import define, field

from ._api import DEFAULT_CALL_TIMEOUT, _no_answer, warn_unknown_keys
from ._config import load_settings
from ._engine import Engine
from ._journal import RunJournal, iter_run_ids
from ._loop_thread import EngineThread
from ._plugins import get_plugin_manager, tracker_caller

__all__ = ["RunSync", "SyncReport", "meant_for", "pending_records", "pending_runs", "sync"]

T = TypeVar("T")

#: ``progress(run_id, delivered, total)`` is called while a run is being synced.
Progress = Callable[[str, int, int], None]


@define
class RunSync:
    """What syncing one run did."""

    run_id: str
    total: int
    already: int
    delivered: int
    finished: bool
    state: str  # "synced", "up to date", "incomplete", "failed"
    error: str | None = None
    #: artifacts the tracker got in this sync, and those it still lacks
    artifacts_delivered: int = 0
    artifacts_pending: int = 0


@define
class SyncReport:
    """The result of :func:`sync`: one :class:`RunSync` per run."""

    tracker: str
    runs: list[RunSync] = field(factory=list)

    @property
    def ok(self) -> bool:
        """True when every run is now fully delivered."""
        return all(run.state in ("synced", "up to date") for run in self.runs)


def _needs_sync(journal: RunJournal, tracker: str) -> bool:
    if journal.read_cursor(tracker) < journal.count():
        return True
    if len(journal.artifact_marks(tracker)) < len(journal.artifacts()):
        return True
    if not journal.tracker_job(tracker):
        return True
    return bool(journal.meta.get("final_status")) and not journal.tracker_finished(tracker)


def meant_for(journal: RunJournal, tracker: str) -> bool:
    """Whether the run was meant for ``tracker``: its tracker list named it, or
    ``WANDB_MODE=offline`` kept it offline (runs from before this was recorded: whether the
    tracker ever took the run)."""
    destinations = journal.meta.get("destinations")
    if destinations is None:
        return tracker in (journal.meta.get("trackers") or {})
    return tracker in destinations


def pending_runs(
    data_dir: os.PathLike[str] | str, tracker: str, *, meant_only: bool = False
) -> list[str]:
    """The runs in the journal that ``tracker`` does not fully hold yet; with
    ``meant_only``, only those that were meant for it (see :func:`meant_for`)."""
    journal_root = Path(data_dir) / "journal"
    found = []
    for run_id in iter_run_ids(journal_root):
        journal = RunJournal.peek(journal_root, run_id)
        if (not meant_only or meant_for(journal, tracker)) and _needs_sync(journal, tracker):
            found.append(run_id)
    return found


def pending_records(data_dir: os.PathLike[str] | str, run_id: str, tracker: str) -> int:
    """How many of the run's records ``tracker`` has not acknowledged."""
    journal = RunJournal.peek(Path(data_dir) / "journal", run_id)
    return max(0, journal.count() - journal.read_cursor(tracker))


#: Seconds an interrupted sync (Ctrl-C) takes to store the cursors the tracker acknowledged.
INTERRUPT_GRACE = 5.0


def sync(
    run_ids: Sequence[str] | None = None,
    *,
    tracker: str,
    credentials: Mapping[str, Any] | None = None,
    data_dir: os.PathLike[str] | str | None = None,
    settings: Mapping[str, Mapping[str, Any]] | None = None,
    plugin_manager: pluggy.PluginManager | None = None,
    timeout: float | None = None,
    progress: Progress | None = None,
) -> SyncReport:
    """Deliver the journal's unacknowledged records of ``run_ids`` to ``tracker``.

    :param run_ids: the runs to sync; by default every run ``tracker`` does not fully hold
        (``trackmux sync`` without run names narrows this to the runs meant for it).
    :param tracker: the tracker's name (``"wandb"``...).
    :param credentials: what that tracker's ``connect`` needs (else its environment).
    :param timeout: seconds to wait per run before leaving it ``incomplete``.
    :param progress: called as ``progress(run_id, delivered, total)``.
    :raises ValueError: / ``ConnectionError`` from connecting, as ``Tracker.connect``.
    """
    resolved = load_settings([tracker], data_dir=data_dir, tracker_settings=settings)
    pm = plugin_manager or get_plugin_manager()
    hooks = tracker_caller(pm, tracker)
    warn_unknown_keys(resolved, pm, [hooks])
    engine = Engine(
        pm,
        [hooks],
        resolved.data_dir,
        tracker_settings=resolved.tracker_settings,
    )
    if run_ids is None:
        run_ids = pending_runs(resolved.data_dir, tracker)
    report = SyncReport(tracker)
    thread = EngineThread()
    try:
        try:
            _answer(thread, engine.start(credentials))
        except TimeoutError as exc:
            raise ConnectionError(f"tracker {tracker!r}: {exc}") from None
        try:
            for run_id in run_ids:
                report.runs.append(
                    _sync_run(thread, engine, tracker, run_id, timeout, progress))
        except KeyboardInterrupt:
            # Ctrl-C: store what the tracker acknowledged so far (the cursors), so that
            # the next sync sends only the rest, then let the interrupt go on
            with contextlib.suppress(Exception):
                thread.submit(engine.close(0.0)).result(INTERRUPT_GRACE)
            raise
        _answer(thread, engine.close(5.0))
    finally:
        thread.stop()
    return report


def _answer(thread: EngineThread, coro: Coroutine[Any, Any, T]) -> T:
    """``coro``'s result, waited for at most :data:`DEFAULT_CALL_TIMEOUT` seconds."""
    future = thread.submit(coro)
    try:
        return future.result(DEFAULT_CALL_TIMEOUT)
    except TimeoutError:
        if future.done():
            raise
        future.cancel()
        raise TimeoutError(_no_answer(DEFAULT_CALL_TIMEOUT)) from None


def _sync_run(
    thread: EngineThread,
    engine: Engine,
    tracker: str,
    run_id: str,
    timeout: float | None,
    progress: Progress | None,
) -> RunSync:
    try:
        peeked = RunJournal.peek(engine.journal_root, run_id)
        already = peeked.read_cursor(tracker)
        artifacts_before = len(peeked.artifact_marks(tracker))
    except LookupError as exc:
        return RunSync(run_id, 0, 0, 0, False, "failed", str(exc))
    try:
        _answer(thread, engine.resume(run_id))
    except (LookupError, RuntimeError, ValueError) as exc:
        return RunSync(run_id, 0, 0, 0, False, "failed", str(exc))
    except Exception as exc:  # the tracker refused the run (permanent error)
        return RunSync(run_id, 0, 0, 0, False, "failed", f"{type(exc).__name__}: {exc}")

    async def progress_of() -> tuple[int, int, str, str | None, bool, int, list[str], int]:
        worker = engine.workers[tracker]
        run = engine.runs[run_id]
        lane = worker.lanes[run_id]
        status = worker.status(engine.loop.time())
        return (
            lane.cursor,
            run.next_seq,
            "failed" if lane.failed else worker.state,
            lane.failed or worker.error,
            lane.finished or run.final_status is None,
            len(lane.artifact_marks),
            [e for e in status.artifact_errors if e.startswith(f"{run_id}:")],
            lane.skipped,
        )

    done_event = threading.Event()

    async def deliver() -> None:
        try:
            await engine.flush(timeout, [run_id])
            run = engine.runs[run_id]
            if run.final_status is not None:
                await engine.finish(run_id, run.final_status, timeout)
        finally:
            done_event.set()

    future = thread.submit(deliver())
    while not done_event.wait(0.1):
        if progress is not None:
            delivered, total, *_ = _answer(thread, progress_of())
            progress(run_id, delivered, total)
    future.result()
    delivered, total, state, error, finished, artifacts_held, refused, skipped = _answer(
        thread, progress_of()
    )
    if progress is not None:
        progress(run_id, delivered, total)
    # records the tracker reported holding (resume_point) were already there, not sent
    already += skipped
    artifacts_total = len(engine.runs[run_id].artifacts)
    artifacts_new = artifacts_held - artifacts_before
    if state == "failed" or refused:
        outcome = "failed"
        error = error or "; ".join(f"artifact {e}" for e in refused)
    elif delivered < total or not finished or artifacts_held < artifacts_total:
        outcome = "incomplete"
    elif delivered == already and not artifacts_new:
        outcome = "up to date"
    else:
        outcome = "synced"
    _answer(thread, engine.detach(run_id))
    return RunSync(run_id, total, already, delivered - already, finished, outcome, error,
                   artifacts_new, artifacts_total - artifacts_held)

