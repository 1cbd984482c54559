"""The delivery engine: journal every record, then deliver it to each tracker exactly once.

Shape (see docs/architecture.md)::

    log()  ──validate, append──▶  run buffer (memory)
                                      │  committer: group commit every 50 ms
                                      ▼
                                 journal (journal.db, SQLite)     one per run
                                      │
               ┌──────────────────────┼──────────────────────┐
               ▼                      ▼                      ▼
        worker "null"          worker "wandb"           worker ...     one per tracker
        cursor, batches,       cursor, batches,                        (own cursor, own
        backoff                backoff                                  retry state)

* The hot path (:meth:`Engine.log`) validates, numbers and appends to a list under a lock. It
  never waits on disk or network, except for backpressure when more than
  ``max_buffer`` (100,000) records wait for the committer, and with ``durability="fsync"``.
  The committer runs every ``commit_interval`` (50 ms), and at once when ``commit_batch``
  (4,096) records wait, so a fast loop keeps little in memory.
* Workers and the committer run on one asyncio loop (in a background thread for the public
  APIs). Blocking hooks run on one dedicated thread per tracker.
* A batch leaves when ``batch_size`` records wait or the oldest waited ``batch_interval``
  seconds; ``flush()``, ``finish()`` and ``close()`` send at once. A request carries all that
  waits, up to the tracker's ``max_batch_records``.
* Retryable errors back off (capped, jittered, ``retry_after`` honoured) and retry the same
  batch; records carry their ``seq`` so a resent batch is not stored twice. A permanent
  error stops that tracker only; its cursor stays where it was, for ``trackmux sync``.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import inspect
import logging
import secrets
import sqlite3
import string
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import attrs
import pluggy
from attrs import define, field
from trackmux_spec import (
    ArtifactSpec,
    ConnectContext,
    JobStatus,
    MetricRecord,
    PermanentError,
    ResumePoint,
    RetryableError,
    TrackerClosedError,
    TrackerInfo,
    TrainingConfig,
    UnknownJobError,
)
from trackmux_spec.journal import JournalRecords

from ._artifacts import ArtifactChangedError, ArtifactStore, build_entry, parse_artifact_id
from ._blocking import BlockingRunner, InlineRunner
from ._files import check_data_dir, make_private_dir
from ._hints import sync_command
from ._journal import (
    FRAME_RECORDS,
    RECORD_FIELDS,
    Cursor,
    Frame,
    RecordReader,
    RunJournal,
    encode_frame,
    frame_records,
)
from ._metrics import normalize_metrics, normalize_step
from ._plugins import TrackerHooks
from ._retry import Backoff

__all__ = ["DeliveryReport", "Engine", "TrackerStatus", "merged_config", "new_run_id"]

logger = logging.getLogger("trackmux")

_RUN_ID_ALPHABET = string.ascii_lowercase + string.digits

#: Seconds within which a scheduled moment counts as now (asyncio fires timers up to a clock
#: resolution early; without a tolerance a worker could wake just before its due time forever).
_EPSILON = 1e-3

#: Seconds a tracker's first connection attempt may take before the tracker starts
#: unconnected and goes on connecting in the background (``start(retry_unreachable=True)``).
CONNECT_WAIT = 10.0


#: Buffer entries of a full frame: the hot path encodes the buffer into a frame there.
_FRAME_FIELDS = RECORD_FIELDS * FRAME_RECORDS

#: Frames per journal transaction (8,192 records). The committer takes this many at a time,
#: freeing room for a caller that waits for it, and SQLite writes them in about 1 ms: behind
#: a training loop that outruns the journal, no caller waits for room longer than one such
#: transaction. (Smaller pieces cost more hand-offs of the interpreter lock.)
_COMMIT_FRAMES = 16

#: Commit time marks kept per run (see :meth:`_Run.note_commit`).
_MAX_COMMIT_MARKS = 256

#: Seconds each tracker's ``disconnect`` hook gets when ``close()``'s timeout is used up.
DISCONNECT_GRACE = 1.0


def new_run_id() -> str:
    """A fresh run id: 8 characters of ``[a-z0-9]`` (the format W&B generates)."""
    return "".join(secrets.choice(_RUN_ID_ALPHABET) for _ in range(8))


_RUN_ID_FORBIDDEN = set(":;,#?/'\\ \t\n")


def merged_config(config: TrainingConfig, values: Mapping[str, Any]) -> TrainingConfig:
    """``config`` with every key of ``values`` set as a config entry (``extra``)."""
    if not isinstance(values, Mapping):
        raise TypeError(f"config values must be a mapping, got {values!r}")
    return attrs.evolve(config, extra={**config.extra, **values})


def check_run_id(run_id: Any) -> str:
    """Validate a user-chosen run id (W&B's rules, plus no path separators)."""
    if (
        not isinstance(run_id, str)
        or not run_id
        or run_id != run_id.strip()
        or _RUN_ID_FORBIDDEN & set(run_id)
        or run_id in (".", "..")
        or len(run_id) > 128
    ):
        raise ValueError(
            f"run_id must be 1-128 characters without whitespace or any of :;,#?/'\\, "
            f"got {run_id!r}"
        )
    return run_id


def split_run_path(run_id: str, config: TrainingConfig) -> tuple[str, TrainingConfig]:
    """A run path (``project/run_id``, ``entity/project/run_id``, or W&B's
    ``entity/project/runs/run_id``) as the run id and a config naming its project and entity.

    :raises ValueError: an empty part, too many parts, or a project or entity that differs
        from the one ``config`` names.
    """
    if not isinstance(run_id, str) or "/" not in run_id:
        return run_id, config
    parts = run_id.split("/")
    if len(parts) == 4 and parts[2] == "runs":
        parts = [parts[0], parts[1], parts[3]]
    try:
        if len(parts) > 3:
            raise ValueError
        for part in parts:
            check_run_id(part)
    except ValueError:
        raise ValueError(
            f"run_id {run_id!r} is not a run id or a run path (project/run_id or "
            "entity/project/run_id, each part without whitespace, '.', '..' or :;,#?'\\)"
        ) from None
    entity = parts[0] if len(parts) == 3 else None
    project = parts[-2]
    changes: dict[str, str] = {}
    for name, value in (("project_name", project), ("entity", entity)):
        given = getattr(config, name)
        if value is None:
            continue
        if given is not None and given != value:
            raise ValueError(
                f"run_id {run_id!r} names {name} {value!r}, but the config says {given!r}"
            )
        changes[name] = value
    return parts[-1], attrs.evolve(config, **changes)


@define
class TrackerStatus:
    """How far one tracker's delivery has come."""

    name: str
    state: str  # "ok", "retrying", "connecting", "failed" (the tracker, or all its runs)
    pending: int
    behind_seconds: float
    error: str | None = None
    #: Artifacts this tracker does not hold yet (refused ones included).
    artifacts_pending: int = 0
    #: One line per artifact the tracker refused for good: ``"<artifact id>: <error>"``.
    artifact_errors: list[str] = field(factory=list)
    #: Runs this tracker refused for good (run id: error); the others go on.
    failed_runs: dict[str, str] = field(factory=dict)


@define
class DeliveryReport:
    """The state of every tracker after ``flush()``, ``finish()`` or ``disconnect()``."""

    trackers: list[TrackerStatus] = field(factory=list)
    #: Why the journal cannot be written right now (a full disk...), or ``None``.
    journal_error: str | None = None
    #: Records ``log_metrics`` could not keep: the journal failed and memory was full.
    dropped: int = 0

    @property
    def delivered(self) -> bool:
        """True when every tracker holds every record and every artifact logged so far."""
        return not self.dropped and all(
            status.pending == 0 and status.artifacts_pending == 0 for status in self.trackers
        )

    def __str__(self) -> str:
        parts = []
        if self.journal_error or self.dropped:
            parts.append(
                f"journal: {self.journal_error or 'ok'}, {self.dropped} records dropped"
            )
        for status in self.trackers:
            text = f"{status.name}: {status.state}, {status.pending} pending"
            if status.pending:
                text += f" ({status.behind_seconds:.1f} s behind)"
            if status.artifacts_pending:
                text += f", {status.artifacts_pending} artifact(s) pending"
            if status.error:
                text += f" - {status.error}"
            for error in status.artifact_errors:
                text += f" - artifact {error}"
            for run_id, error in status.failed_runs.items():
                if error != status.error:
                    text += f"; run {run_id} stopped - {error}"
            parts.append(text)
        return "; ".join(parts)


class _Run:
    """One run's state in the engine. Fields under ``# hot`` are guarded by the engine lock."""

    def __init__(self, journal: RunJournal, now: float) -> None:
        self.run_id = journal.run_id
        self.journal = journal
        # hot
        #: records waiting for the committer: first whole ``frames`` (journal rows, encoded
        #: by the hot path as each fills, so the committer's own share of the interpreter
        #: lock stays small), then ``buffer``, the records of the frame being filled, flat:
        #: ``[step, timestamp, values, step, ...]`` (:data:`RECORD_FIELDS` entries each);
        #: numbered up to ``next_seq - 1`` without gaps. No object per record: bytes, ints,
        #: floats and a dict of numbers are not tracked by the cyclic GC, so waiting records
        #: never trigger or slow a collection.
        self.frames: list[Frame] = []
        self.framed = 0  # RECORD_FIELDS per record in frames: compared with len(buffer)
        self.buffer: list[Any] = []
        self.next_seq = journal.record_count
        self.last_step = journal.last_step
        self.warned_step = False
        self.final_status: JobStatus | None = (
            JobStatus(journal.meta["final_status"]) if journal.meta.get("final_status") else None
        )
        self.shed = 0  # records refused while the journal could not take them
        self.acked: dict[str, Cursor] = {}  # cursors to store with the next commit
        # loop side
        self.committed = journal.record_count
        self.released = False
        # records below commit_seqs[i] were committed at loop time commit_times[i]; records
        # journaled by an earlier process count as committed when the run was attached
        self.commit_seqs: list[int] = [self.committed] if self.committed else []
        self.commit_times: list[float] = [now] if self.committed else []
        self.config = TrainingConfig.from_dict(journal.meta.get("config") or {})
        self.config_version = journal.config_version
        #: artifact entries, in upload order (appended under the engine's artifact lock)
        self.artifacts: list[dict[str, Any]] = journal.artifacts()

    @property
    def buffered(self) -> int:
        """How many records wait for the committer (read under the engine lock)."""
        return (self.framed + len(self.buffer)) // RECORD_FIELDS

    def committed_at(self, seq: int, default: float) -> float:
        """Loop time at which record ``seq`` was committed."""
        index = bisect.bisect_right(self.commit_seqs, seq)
        if index >= len(self.commit_times):
            return default
        return self.commit_times[index]

    def forget_commits_before(self, seq: int) -> None:
        """Drop commit times of records below ``seq`` (every tracker has them)."""
        index = bisect.bisect_right(self.commit_seqs, seq)
        if index:
            del self.commit_seqs[:index]
            del self.commit_times[:index]

    def note_commit(self, committed: int, now: float) -> None:
        """Records below ``committed`` are in the journal since ``now``.

        The bookkeeping stays bounded whatever the run's length or a failed tracker's lag:
        past :data:`_MAX_COMMIT_MARKS` marks, neighbouring commits merge pairwise (a merged
        range keeps the earlier time, so a batch is due sooner, never later).
        """
        self.committed = committed
        self.commit_seqs.append(committed)
        self.commit_times.append(now)
        if len(self.commit_seqs) > _MAX_COMMIT_MARKS:
            odd = len(self.commit_seqs) % 2
            seqs, times = self.commit_seqs, self.commit_times
            self.commit_seqs = seqs[1::2] + (seqs[-1:] if odd else [])
            self.commit_times = times[0 : len(times) - odd : 2] + (times[-1:] if odd else [])


class _Lane:
    """One run as seen by one tracker's worker."""

    def __init__(self, run: _Run, worker_name: str, cursor: Cursor) -> None:
        self.run = run
        self.job_id: str | None = None
        self.submitted = False
        self.submit_waiter: asyncio.Future[None] | None = None
        self.cursor = cursor
        # added to each record's seq on delivery: the records the tracker held for this job
        # before this journal first delivered to it (a run resumed on a fresh node)
        self.seq_base = run.journal.tracker_seq_base(worker_name)
        # records acknowledged by the tracker's resume point rather than sent
        self.skipped = 0
        self.reader: RecordReader | None = None
        # the last batch sent was not acknowledged: the next send is a retry, due at once
        # (after the backoff) and re-read from the cursor
        self.resend = False
        self.last_send = float("-inf")
        self.flush_until = 0
        self.finished = False
        self.config_version = 0  # the config version this tracker stored
        self.failed: str | None = None  # this tracker refused the run for good
        #: index -> mark of the artifacts this tracker holds (persisted in the journal)
        self.artifact_marks: dict[int, dict[str, Any]] = {}
        #: index -> error of the artifacts this tracker refused in this session
        self.artifact_failed: dict[int, str] = {}

    def artifact_done(self, index: int) -> bool:
        """Whether the artifact needs no more attempts in this session."""
        return index in self.artifact_marks or index in self.artifact_failed

    def artifacts_done(self, upto: int | None = None) -> bool:
        """Whether every artifact (below ``upto``) is delivered or refused."""
        count = len(self.run.artifacts) if upto is None else upto
        return all(self.artifact_done(index) for index in range(count))

    def close_reader(self) -> None:
        """Release the reader's connection (reopened if the lane reads again)."""
        if self.reader is not None:
            self.reader.close()
            self.reader = None


class _Worker:
    """Delivers every run's records to one tracker."""

    def __init__(self, engine: Engine, hooks: TrackerHooks, info: TrackerInfo) -> None:
        self.engine = engine
        self.name = hooks.name
        self.hooks = hooks
        self.info = info
        self.session: object = None
        self.connected = False
        self.connect_args: dict[str, Any] = {}  # credentials and context, for reconnecting
        self.lanes: dict[str, _Lane] = {}
        self.state = "ok"
        self.error: str | None = None
        self.attempt = 0
        self.retry_at = float("-inf")
        self.stopping = False
        self.warned_config = False
        self.wake = asyncio.Event()
        self.progress = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.runner: BlockingRunner | InlineRunner = engine._make_runner(f"trackmux-{self.name}")
        # artifacts: uploaded beside the records, one at a time, by a task of their own
        self.artifact_task: asyncio.Task[None] | None = None
        self.artifact_wake = asyncio.Event()
        self.artifact_attempt = 0
        self._artifact_runner: BlockingRunner | InlineRunner | None = None

    # -- calling hooks ------------------------------------------------------------

    async def call(
        self, hook: str, *, runner: BlockingRunner | InlineRunner | None = None, **kwargs: Any
    ) -> Any:
        """Call this tracker's ``hook`` (with wrappers); blocking hooks run on its thread
        (or on ``runner``)."""
        caller = self.hooks.caller(hook)
        if self.hooks.is_async(hook):
            result = caller(**kwargs)
        else:
            result = await (runner or self.runner).run(self.engine.loop, partial(caller, **kwargs))
        if inspect.isawaitable(result):
            result = await result
        return result

    # -- runs -------------------------------------------------------------------------

    def add_run(self, run: _Run) -> _Lane:
        lane = _Lane(run, self.name, run.journal.read_cursor(self.name))
        lane.finished = run.journal.tracker_finished(self.name)
        lane.artifact_marks = run.journal.artifact_marks(self.name)
        lane.job_id = run.journal.tracker_job(self.name)
        lane.config_version = run.journal.tracker_config_version(self.name)
        lane.submit_waiter = self.engine.loop.create_future()
        if not self.connected:  # connecting in the background: submitted once connected
            lane.submit_waiter.set_result(None)
        self.lanes[run.run_id] = lane
        self.wake.set()
        return lane

    def pending(self, lane: _Lane) -> int:
        return max(0, lane.run.committed - lane.cursor)

    def total_pending(self) -> int:
        return sum(max(0, lane.run.next_seq - lane.cursor) for lane in self.lanes.values())

    def behind_seconds(self, now: float) -> float:
        oldest = now
        for lane in self.lanes.values():
            if self.pending(lane):
                oldest = min(oldest, lane.run.committed_at(lane.cursor, now))
        return now - oldest

    def status(self, now: float) -> TrackerStatus:
        pending = 0
        errors = []
        for lane in self.lanes.values():
            for entry in lane.run.artifacts:
                index = entry["index"]
                if index not in lane.artifact_marks:
                    pending += 1
                if index in lane.artifact_failed:
                    errors.append(f"{entry['id']}: {lane.artifact_failed[index]}")
        failed_runs = {run_id: lane.failed for run_id, lane in self.lanes.items() if lane.failed}
        state, error = self.state, self.error
        if failed_runs and len(failed_runs) == len(self.lanes) and state == "ok":
            state, error = "failed", list(failed_runs.values())[-1]
        return TrackerStatus(
            self.name,
            state,
            self.total_pending(),
            self.behind_seconds(now),
            error,
            pending,
            errors,
            failed_runs,
        )

    # -- the loop ---------------------------------------------------------------------

    async def run(self) -> None:
        loop = self.engine.loop
        while self.state != "failed":
            now = loop.time()
            if self.retry_at > now + _EPSILON:
                await self._wait(self.retry_at - now)
                continue
            action, lane, due = self._next_action(now)
            if action is None:
                if self.stopping:
                    return
                await self._wait(None if due is None else max(0.0, due - now))
                continue
            try:
                await action()
            except RetryableError as exc:
                self._retry_later(exc, exc.retry_after)
            except (OSError, sqlite3.Error) as exc:
                # a backend's ConnectionError/TimeoutError, or local trouble (a full disk
                # under run.json, the journal): worth retrying, never a reason to stop
                self._retry_later(exc, None)
            except PermanentError as exc:
                self._fail(exc, lane)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.exception("tracker %r raised an unexpected error", self.name)
                self._fail(exc, lane)
            else:
                if self.attempt and lane is not None:
                    logger.info(
                        "tracker %r recovered after %d failed attempts", self.name, self.attempt
                    )
                self.attempt = 0
                self.state = "ok"
                self.error = None
            self._signal_progress()

    async def _wait(self, timeout: float | None) -> None:
        self.wake.clear()
        if timeout is None:
            await self.wake.wait()
            return
        # Not asyncio.wait_for: on Python 3.11 it swallows a cancel() that arrives in the
        # same loop iteration as wake.set() (close() does both), and a stopping worker would
        # then retry for as long as its backend is down, holding close() and disconnect().
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self.wake.wait()

    def _signal_progress(self) -> None:
        self.artifact_wake.set()
        self.progress.set()
        self.progress = asyncio.Event()
        self.engine._progress_changed()

    def _retry_later(self, exc: BaseException, retry_after: float | None) -> None:
        delay = self.engine.backoff.delay(self.attempt, retry_after)
        self.attempt += 1
        self.state = "retrying"
        self.error = f"{type(exc).__name__}: {exc}"
        self.retry_at = self.engine.loop.time() + delay
        if not self.connected:  # the user was told once, when the tracker started
            self.state = "connecting"
            logger.debug("tracker %r: cannot connect yet: %s; retrying in %.1f s", self.name,
                         self.error, delay)
            return
        log = logger.warning if self.attempt in (1, 5) or self.attempt % 20 == 0 else logger.debug
        log(
            "tracker %r: %s; attempt %d, retrying in %.1f s",
            self.name,
            self.error,
            self.attempt,
            delay,
        )

    def _fail(self, exc: BaseException, lane: _Lane | None = None) -> None:
        if lane is not None:
            self._fail_run(exc, lane)
            return
        self.state = "failed"
        self.error = f"{type(exc).__name__}: {exc}"
        for lane in self.lanes.values():
            if lane.submit_waiter is not None and not lane.submit_waiter.done():
                lane.submit_waiter.set_exception(exc)
                lane.submit_waiter.exception()  # mark retrieved; the caller may not wait
        runs = ", ".join(self.lanes) or "no run"
        logger.error(
            "tracker %r stopped: %s. Nothing is lost: every record stays in the journal "
            "(%s); deliver it later with: %s",
            self.name,
            self.error,
            runs,
            sync_command(self.engine.data_dir, self.name),
        )

    def _fail_run(self, exc: BaseException, lane: _Lane) -> None:
        """Stop delivering one run to this tracker; the tracker goes on with the others."""
        lane.failed = f"{type(exc).__name__}: {exc}"
        lane.resend = False
        if lane.reader is not None:
            lane.reader.close()
            lane.reader = None
        waiter = lane.submit_waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
            waiter.exception()  # mark retrieved; the caller may not wait
        logger.error(
            "tracker %r stopped delivering run %r: %s. The tracker goes on with the other "
            "runs, and nothing is lost: the run's records stay in the journal; deliver them "
            "later with: %s",
            self.name,
            lane.run.run_id,
            lane.failed,
            sync_command(self.engine.data_dir, self.name, lane.run.run_id),
        )

    async def _connect(self) -> None:
        """Connect in the background (the backend was down when the tracker started)."""
        try:
            self.session = await self.call("connect", **self.connect_args)
        except ValueError as exc:  # the backend is back and refuses the credentials
            raise PermanentError(f"{exc}") from exc
        self.connected = True
        logger.warning(
            "tracker %r connected after %d attempts; it now receives what the journal holds",
            self.name,
            self.attempt + 1,
        )

    def _next_action(
        self, now: float
    ) -> tuple[Callable[[], Any] | None, _Lane | None, float | None]:
        engine = self.engine
        soonest: float | None = None
        if not self.connected:
            return self._connect, None, None
        for lane in self.lanes.values():
            if lane.failed is not None:
                continue
            if not lane.submitted:
                return partial(self._submit, lane), lane, None
            run = lane.run
            if lane.config_version < run.config_version:
                return partial(self._update_config, lane), lane, None
            pending = self.pending(lane)
            if pending:
                if (
                    lane.resend
                    or lane.cursor < lane.flush_until
                    or self.stopping
                    or run.final_status is not None
                ):
                    return partial(self._send, lane), lane, None
                oldest = run.committed_at(lane.cursor, now)
                due = oldest + engine.batch_interval
                if pending >= engine.batch_size:
                    due = now
                due = max(due, lane.last_send + self.info.min_batch_interval)
                if due <= now + _EPSILON:
                    return partial(self._send, lane), lane, None
                soonest = due if soonest is None else min(soonest, due)
            elif (
                run.final_status is not None
                and not lane.finished
                and run.committed >= run.next_seq
                and lane.artifacts_done()
            ):
                return partial(self._finish, lane), lane, None
            elif self.info.heartbeat_interval and run.final_status is None and not self.stopping:
                due = lane.last_send + self.info.heartbeat_interval
                if due <= now + _EPSILON:
                    return partial(self._heartbeat, lane), lane, None
                soonest = due if soonest is None else min(soonest, due)
        return None, None, soonest

    async def _heartbeat(self, lane: _Lane) -> None:
        lane.last_send = self.engine.loop.time()
        await self.call("log_metrics", session=self.session, job_id=lane.job_id, records=[])

    async def _submit(self, lane: _Lane) -> None:
        run = lane.run
        waiter = lane.submit_waiter
        try:
            job_id = await self.call(
                "submit_job", session=self.session, run_id=run.run_id, config=run.config
            )
            if not isinstance(job_id, str) or not job_id:
                raise PermanentError(
                    f"submit_job of tracker {self.name!r} returned {job_id!r}, not a job id"
                )
            point = None
            if self.hooks.implements("resume_point"):
                point = await self.call("resume_point", session=self.session, job_id=job_id)
        except BaseException as exc:
            if waiter is not None and not waiter.done():
                if isinstance(exc, RetryableError | ConnectionError | TimeoutError):
                    waiter.set_result(None)  # don't hold the caller: retried in the background
                else:
                    waiter.set_exception(exc)
                    waiter.exception()  # retrieved: the tracker's failure is logged by _fail
            raise
        first = run.journal.tracker_job(self.name) is None
        if isinstance(point, ResumePoint):
            self._resume_at(lane, point, first)
        if lane.job_id != job_id or first:
            run.journal.set_tracker_job(self.name, job_id, seq_base=lane.seq_base)
        lane.job_id = job_id
        lane.submitted = True
        lane.last_send = self.engine.loop.time()
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _update_config(self, lane: _Lane) -> None:
        run = lane.run
        version, config = run.config_version, run.config
        if self.hooks.implements("update_config"):
            await self.call(
                "update_config", session=self.session, job_id=lane.job_id, config=config
            )
        elif not self.warned_config:
            self.warned_config = True
            logger.warning(
                "tracker %r does not implement update_config: config changes made after a "
                "run started do not reach it (they are kept in the journal)",
                self.name,
            )
        lane.config_version = version
        run.journal.set_tracker_config_version(self.name, version)

    def _resume_at(self, lane: _Lane, point: ResumePoint, first: bool) -> None:
        """Line the lane up with what the tracker holds (see the ``resume_point`` hook).

        A journal that never delivered to this job numbers its records after the job's
        last one (``seq_base``). One that did skips what the tracker holds past the cursor
        (an acknowledgement lost in a crash), so nothing is sent, or counted, twice.
        """
        run = lane.run
        if first and lane.cursor == 0:
            lane.seq_base = point.next_seq
            if point.next_seq:
                logger.info(
                    "run %r: tracker %r holds %d records of it; this journal's records follow",
                    run.run_id,
                    self.name,
                    point.next_seq,
                )
        else:
            held = min(point.next_seq - lane.seq_base, run.committed)
            if held > lane.cursor:
                reader = run.journal.reader(lane.cursor)
                try:
                    records, after = reader.read(held - lane.cursor)
                finally:
                    reader.close()
                lane.skipped += len(records)
                lane.cursor = after
                self.engine.acknowledged(run, self.name, after)
                if lane.reader is not None:
                    lane.reader.rewind(after)
        if point.last_step is not None:
            with self.engine._lock:
                run.last_step = max(run.last_step, point.last_step)

    async def _send(self, lane: _Lane) -> None:
        """Send what waits from the cursor, up to ``max_batch_records``.

        A retry reads again from the cursor rather than resending the failed batch as it
        was: it also carries what was committed during the failure, which would otherwise
        wait another ``min_batch_interval`` after the retry succeeds. Records are identified
        by ``seq``, so a larger resend is still delivered exactly once.

        A tracker that keeps journal references (``TrackerInfo.journal_references``) gets
        the range as :class:`~trackmux_spec.journal.JournalRecords`: nothing is decoded here.
        Not while a wrapper plugin wraps its ``log_metrics``: a wrapper may rewrite the
        batch in place, so it and the tracker get a list of the records.
        """
        count = min(self.pending(lane), self.info.max_batch_records)
        records: Sequence[MetricRecord]
        if self.info.journal_references and not self.hooks.wrapped("log_metrics"):
            after = lane.cursor + count
            records = JournalRecords(
                lane.run.journal.records_path, lane.cursor, after, lane.seq_base
            )
        else:
            if lane.reader is None:
                lane.reader = lane.run.journal.reader(lane.cursor)
            elif lane.resend:
                lane.reader.rewind(lane.cursor)
            records, after = lane.reader.read(count)
            if lane.seq_base:
                for record in records:  # this tracker's own copies (MetricRecord docstring)
                    record.seq += lane.seq_base
        if not records:
            lane.resend = False
            return
        lane.resend = True
        lane.last_send = self.engine.loop.time()
        await self.call("log_metrics", session=self.session, job_id=lane.job_id, records=records)
        lane.resend = False
        lane.cursor = after
        self.engine.acknowledged(lane.run, self.name, after)

    async def _finish(self, lane: _Lane) -> None:
        status = lane.run.final_status
        assert status is not None
        await self.call("finish_job", session=self.session, job_id=lane.job_id, status=status)
        lane.finished = True
        lane.run.journal.set_tracker_finished(self.name)
        lane.close_reader()
        self.engine.release_if_done(lane.run)

    # -- artifacts ----------------------------------------------------------------------

    def _next_artifact(self) -> tuple[_Lane, dict[str, Any]] | None:
        """The oldest artifact this tracker should upload now, if any.

        An artifact is due once the tracker holds every record logged before it
        (``after_seq``); records logged after it are not held back by its upload.
        """
        for lane in self.lanes.values():
            if not lane.submitted or lane.failed is not None:
                continue
            run = lane.run
            for entry in run.artifacts:
                if lane.artifact_done(entry["index"]):
                    continue
                if lane.cursor >= min(entry["after_seq"], run.committed):
                    return lane, entry
                break
        return None

    async def run_artifacts(self) -> None:
        """Upload every due artifact, retrying with the engine's backoff (a task per worker)."""
        loop = self.engine.loop
        retry_at = float("-inf")
        while self.state != "failed":
            now = loop.time()
            due = self._next_artifact()
            if due is None or retry_at > now + _EPSILON:
                if self.stopping and due is None:
                    return
                self.artifact_wake.clear()
                timeout = None if due is None else retry_at - now
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await self.artifact_wake.wait()
                continue
            lane, entry = due
            try:
                remote_id = await self._upload(lane, entry)
            except RetryableError as exc:
                retry_at = loop.time() + self._artifact_retry(entry, exc, exc.retry_after)
            except (ConnectionError, TimeoutError) as exc:
                retry_at = loop.time() + self._artifact_retry(entry, exc, None)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # PermanentError, ArtifactChangedError, a plugin's bug
                self.artifact_attempt = 0
                self._artifact_refused(lane, entry, exc)
            else:
                self.artifact_attempt = 0
                lane.artifact_marks[entry["index"]] = {"state": "delivered", "remote_id": remote_id}
                lane.run.journal.mark_artifact(
                    self.name, entry["index"], lane.artifact_marks[entry["index"]]
                )
            self._signal_progress()
            self.wake.set()

    async def _upload(self, lane: _Lane, entry: dict[str, Any]) -> str:
        if self._artifact_runner is None:
            self._artifact_runner = self.engine._make_runner(f"trackmux-{self.name}-artifacts")
        runner = self._artifact_runner
        store = self.engine.artifact_store
        path = await runner.run(self.engine.loop, partial(store.view, lane.run.run_id, entry))
        spec = ArtifactSpec(
            name=entry["name"],
            type=entry["type"],
            description=entry["description"],
            metadata=entry["metadata"],
            key=entry["id"],
        )
        remote_id = await self.call(
            "upload_artifact",
            runner=runner,
            session=self.session,
            job_id=lane.job_id,
            path=path,
            artifact=spec,
        )
        if not isinstance(remote_id, str):
            raise PermanentError(
                f"upload_artifact of tracker {self.name!r} returned {remote_id!r}, not an id"
            )
        return remote_id

    def _artifact_retry(
        self, entry: dict[str, Any], exc: BaseException, retry_after: float | None
    ) -> float:
        delay = self.engine.backoff.delay(self.artifact_attempt, retry_after)
        self.artifact_attempt += 1
        log = logger.warning if self.artifact_attempt in (1, 5) else logger.debug
        log(
            "tracker %r: artifact %r: %s: %s; attempt %d, retrying in %.1f s",
            self.name,
            entry["id"],
            type(exc).__name__,
            exc,
            self.artifact_attempt,
            delay,
        )
        return delay

    def _artifact_refused(self, lane: _Lane, entry: dict[str, Any], exc: BaseException) -> None:
        error = f"{type(exc).__name__}: {exc}"
        lane.artifact_failed[entry["index"]] = error
        if not isinstance(exc, PermanentError | ArtifactChangedError):
            logger.debug("upload_artifact of tracker %r raised", self.name, exc_info=exc)
        logger.error(
            "tracker %r refused artifact %r of run %r: %s. Training goes on and the run is "
            "not marked failed; the artifact stays in the journal, and this tries again: %s",
            self.name,
            entry["id"],
            lane.run.run_id,
            error,
            sync_command(self.engine.data_dir, self.name, lane.run.run_id),
        )

    def check_connected(self) -> None:
        """Raise ``ConnectionError`` if the tracker is still connecting in the background."""
        if not self.connected:
            raise ConnectionError(
                f"tracker {self.name!r} is not connected yet ({self.error}); trackmux keeps "
                f"retrying in the background"
            )

    def close_readers(self) -> None:
        for lane in self.lanes.values():
            lane.close_reader()


class Engine:
    """Journals records and delivers them to every configured tracker (module docstring)."""

    def __init__(
        self,
        pm: pluggy.PluginManager,
        trackers: list[TrackerHooks],
        data_dir: Path,
        *,
        tracker_settings: Mapping[str, Mapping[str, Any]] | None = None,
        durability: str = "default",
        batch_size: int = 100,
        batch_interval: float = 5.0,
        commit_interval: float = 0.05,
        max_buffer: int = 100_000,
        commit_batch: int = 4096,
        max_block: float = 5.0,
        backoff: Backoff | None = None,
        wall_clock: Callable[[], float] = time.time,
        blocking: str = "threads",
    ) -> None:
        if durability not in ("default", "fsync"):
            raise ValueError(f"durability must be 'default' or 'fsync', got {durability!r}")
        if blocking not in ("threads", "inline"):
            raise ValueError(f"blocking must be 'threads' or 'inline', got {blocking!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
        if batch_interval < 0:
            raise ValueError(f"batch_interval must be >= 0, got {batch_interval!r}")
        self.pm = pm
        self.data_dir = data_dir
        self.journal_root = data_dir / "journal"
        self.artifact_store = ArtifactStore(data_dir)
        self.tracker_settings = tracker_settings or {}
        self.fsync = durability == "fsync"
        self.batch_size = batch_size
        self.batch_interval = batch_interval
        self.commit_interval = commit_interval
        self._max_fields = RECORD_FIELDS * max_buffer  # the hot path compares buffer lengths
        self._commit_fields = RECORD_FIELDS * commit_batch
        self.backoff = backoff or Backoff()
        self._wall = wall_clock
        self._blocking = blocking
        self._hooks = trackers
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self.workers: dict[str, _Worker] = {}
        self.runs: dict[str, _Run] = {}
        self._lock = threading.Lock()  # guards the hot fields of every _Run, and _closed
        self._write_lock = threading.Lock()  # one committer at a time, in seq order
        self._room = threading.Condition(self._lock)  # the committer took the buffers
        self._commit_armed = False
        self._closed = False
        self._closed_reason: str | None = None  # why, if not disconnect() (a fork)
        self._committer: BlockingRunner | InlineRunner | None = None
        self._progress = None  # type: asyncio.Event | None
        self.max_block = max_block
        self._full_deadline: float | None = None  # monotonic; set when a buffer is full
        self.journal_error: str | None = None  # the last commit's error, until one succeeds
        self._commit_attempt = 0

    @property
    def max_buffer(self) -> int:
        """Records a run's buffer holds at most; beyond, ``log()`` waits (back-pressure)."""
        return self._max_fields // RECORD_FIELDS

    @max_buffer.setter
    def max_buffer(self, records: int) -> None:
        self._max_fields = RECORD_FIELDS * records

    @property
    def commit_batch(self) -> int:
        """Waiting records at which ``log()`` starts a commit before the timer."""
        return self._commit_fields // RECORD_FIELDS

    @commit_batch.setter
    def commit_batch(self, records: int) -> None:
        self._commit_fields = RECORD_FIELDS * records

    def _make_runner(self, name: str) -> BlockingRunner | InlineRunner:
        return InlineRunner() if self._blocking == "inline" else BlockingRunner(name)

    @property
    def tracker_names(self) -> list[str]:
        """The trackers this engine delivers to, in configuration order."""
        return [hooks.name for hooks in self._hooks]

    # -- life cycle (on the loop) ---------------------------------------------------------

    async def start(
        self, credentials: Mapping[str, Any] | None, *, retry_unreachable: bool = False
    ) -> None:
        """Connect every tracker (concurrently) and start its worker.

        :param retry_unreachable: a tracker whose backend cannot be reached (or does not
            answer within :data:`CONNECT_WAIT` seconds) starts anyway: its runs are
            journaled and it connects in the background, with backoff, telling the user
            once. Without it (``trackmux sync``, the reference ``WandBConnector``), that is
            a ``ConnectionError``.
        :raises ValueError: a tracker rejected the credentials.
        :raises ConnectionError: a tracker's backend cannot be reached (see above).
        """
        self.loop = asyncio.get_running_loop()
        self._progress = asyncio.Event()
        check_data_dir(self.data_dir)
        self._committer = self._make_runner("trackmux-journal")
        workers = [_Worker(self, hooks, hooks.info()) for hooks in self._hooks]
        names = set(self.tracker_names)
        creds = dict(credentials or {})
        per_tracker = (
            bool(creds)
            and set(creds) <= names
            and all(isinstance(v, Mapping) for v in creds.values())
        )

        async def connect(worker: _Worker) -> None:
            context = ConnectContext(
                data_dir=make_private_dir(self.data_dir / "trackers" / worker.name),
                settings=self.tracker_settings.get(worker.name, {}),
            )
            given = creds.get(worker.name, {}) if per_tracker else creds
            worker.connect_args = {"credentials": given, "context": context}
            if retry_unreachable:
                async with asyncio.timeout(CONNECT_WAIT):
                    worker.session = await worker.call("connect", **worker.connect_args)
            else:
                worker.session = await worker.call("connect", **worker.connect_args)
            worker.connected = True

        results = await asyncio.gather(*(connect(w) for w in workers), return_exceptions=True)
        for worker, result in zip(workers, results, strict=True):
            if retry_unreachable and isinstance(
                result, RetryableError | ConnectionError | TimeoutError
            ):
                self._connect_later(worker, result)
            elif isinstance(result, BaseException):
                for other, other_result in zip(workers, results, strict=True):
                    if not isinstance(other_result, BaseException):
                        with contextlib.suppress(Exception):
                            await other.call("disconnect", session=other.session)
                    other.runner.close()
                if isinstance(result, ValueError | ConnectionError):
                    raise result
                raise ConnectionError(
                    f"tracker {worker.name!r} failed to connect: {type(result).__name__}: {result}"
                ) from result
        for worker in workers:
            self.workers[worker.name] = worker
            worker.task = self.loop.create_task(worker.run(), name=f"trackmux-{worker.name}")
            worker.artifact_task = self.loop.create_task(
                worker.run_artifacts(), name=f"trackmux-{worker.name}-artifacts"
            )

    def _connect_later(self, worker: _Worker, exc: BaseException) -> None:
        """``worker``'s backend is down: it starts unconnected and retries in the background."""
        worker.state = "connecting"
        worker.error = (
            f"{type(exc).__name__}: {exc}"
            if str(exc)
            else f"{type(exc).__name__}: no answer within {CONNECT_WAIT:.0f} s"
        )
        worker.retry_at = self.loop.time() + self.backoff.delay(0, None)
        worker.attempt = 1
        logger.warning(
            "tracker %r cannot reach its backend (%s). trackmux goes on: every record is "
            "journaled, the other trackers receive theirs, and %r is retried in the "
            "background (it gets everything once connected). If it never connects, "
            "this delivers later: %s",
            worker.name,
            worker.error,
            worker.name,
            sync_command(self.data_dir, worker.name),
        )

    async def close(self, timeout: float | None) -> DeliveryReport:
        """Deliver what can be delivered within ``timeout`` seconds, then release everything.

        A real bound: the trackers' ``disconnect`` hooks run concurrently and get what is
        left of ``timeout`` (at least :data:`DISCONNECT_GRACE` seconds); a hook still stuck
        after that (a blocking call that never returns) is abandoned, not waited for.
        """
        deadline = None if timeout is None else self.loop.time() + timeout
        report = await self.flush(timeout)
        with self._lock:
            self._closed = True
        for worker in self.workers.values():
            worker.stopping = True
            worker.wake.set()
            for task in (worker.task, worker.artifact_task):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
        grace = None if deadline is None else max(deadline - self.loop.time(), DISCONNECT_GRACE)
        await asyncio.gather(
            *(self._disconnect(w, grace) for w in self.workers.values() if w.connected)
        )
        for worker in self.workers.values():
            worker.close_readers()
            worker.runner.close()
            if worker._artifact_runner is not None:
                worker._artifact_runner.close()
        if self._committer is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    await self.commit_now()  # the last cursors
                    await self._committer.run(self.loop, self._close_journals)
            self._committer.close()
        report = self.report()
        if any(status.pending or status.artifacts_pending for status in report.trackers):
            behind = [t.name for t in report.trackers if t.pending or t.state == "failed"]
            logger.warning(
                "trackmux closed with records not yet delivered (%s). They are kept in the "
                "journal under %s; deliver them with: %s",
                report,
                self.journal_root,
                " ; ".join(sync_command(self.data_dir, name) for name in behind or ["NAME"]),
            )
        if report.dropped:
            logger.error(
                "trackmux dropped %d records in this session: the journal could not take "
                "them and memory was full (%s)",
                report.dropped,
                self.journal_error or "the disk was stalled",
            )
        return report

    async def _disconnect(self, worker: _Worker, timeout: float | None) -> None:
        try:
            async with asyncio.timeout(timeout):
                await worker.call("disconnect", session=worker.session)
        except TimeoutError:
            logger.warning(
                "tracker %r did not disconnect within %.1f s (a hook is stuck); abandoned",
                worker.name,
                timeout,
            )
        except Exception as exc:
            logger.debug("tracker %r: disconnect failed: %s", worker.name, exc)

    def _close_journals(self) -> None:
        """Close every run's journal (the committer's thread, after the last commit)."""
        with self._write_lock:
            lost = 0
            for run in self.runs.values():
                with self._lock:
                    lost += run.buffered
                    run.shed += run.buffered  # counted in the report's dropped
                    run.frames, run.framed, run.buffer = [], 0, []
                run.journal.close()
                run.released = True
        if lost:
            logger.error(
                "trackmux could not write %d records to its journal (%s); they are lost",
                lost,
                self.journal_error,
            )

    # -- runs -------------------------------------------------------------------------

    async def submit(self, config: TrainingConfig, run_id: str | None) -> str:
        """Create a run (journal first), then submit it to every tracker.

        A ``run_id`` already in the journal resumes that run: its steps and records go on
        where they stopped, and a finished run is open again.

        Waits until each tracker created the run, failed for good, or failed once in a way
        worth retrying (the retries go on in the background, so an outage does not hold
        the training loop).

        :raises RunLockedError: another tracker, sync or process writes that run.
        """
        self._check_open()
        if run_id is not None:
            run_id, config = split_run_path(run_id, config)
        if run_id is None:
            while True:
                run_id = new_run_id()
                if not (self.journal_root / run_id).exists():
                    break
            journal = RunJournal.create(
                self.journal_root, run_id, config.to_dict(), fsync=self.fsync
            )
        else:
            check_run_id(run_id)
            if run_id in self.runs:
                raise ValueError(f"run_id {run_id!r} is already active in this session")
            try:
                journal = RunJournal.create(
                    self.journal_root, run_id, config.to_dict(), fsync=self.fsync
                )
            except FileExistsError:
                journal = RunJournal.open(self.journal_root, run_id, fsync=self.fsync)
                try:
                    journal.reopen()
                except BaseException:
                    journal.close()
                    raise
        self._record_destinations(journal)
        return await self._attach(journal)

    #: Trackers this session keeps offline (``WANDB_MODE=offline``): set by the public API.
    kept_offline: tuple[str, ...] = ()

    def _record_destinations(self, journal: RunJournal) -> None:
        """Write down which trackers the run is meant for (those of this session and those
        kept offline), so that ``trackmux sync --tracker T`` picks exactly its runs."""
        meta = journal.meta
        before = (meta.get("destinations"), meta.get("offline"))
        destinations = list(meta.get("destinations") or [])
        for name in (*self.tracker_names, *self.kept_offline):
            if name not in destinations:
                destinations.append(name)
        offline = [n for n in meta.get("offline") or [] if n not in self.tracker_names]
        offline += [n for n in self.kept_offline if n not in offline]
        if (destinations, offline) != before:
            meta["destinations"], meta["offline"] = destinations, offline
            journal.save_meta()

    async def resume(self, run_id: str) -> str:
        """Attach a run already in the journal (another process's, or an offline one).

        :raises RunLockedError: another tracker, sync or process writes that run.
        """
        self._check_open()
        if run_id in self.runs:
            return run_id
        journal = RunJournal.open(self.journal_root, check_run_id(run_id), fsync=self.fsync)
        return await self._attach(journal)

    async def _attach(self, journal: RunJournal) -> str:
        run = _Run(journal, self.loop.time())
        self.runs[run.run_id] = run
        lanes = [
            worker.add_run(run) for worker in self.workers.values() if worker.state != "failed"
        ]
        waiters = [lane.submit_waiter for lane in lanes if lane.submit_waiter is not None]
        results = await asyncio.gather(*waiters, return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors and len(errors) == len(self.workers):
            raise errors[0]
        return run.run_id

    async def update_config(self, run_id: str, values: Mapping[str, Any]) -> None:
        """Merge ``values`` into the run's config (journal first), then tell every tracker.

        Every key becomes a config entry (``TrainingConfig.extra``), replacing an earlier
        value of that key; a value equal to the stored one changes nothing.

        :raises ValueError: the run is finished.
        :raises TypeError: a key or value a config cannot hold.
        """
        self._check_open()
        run = self._run(run_id)
        config = merged_config(run.config, values)
        if run.final_status is not None:
            raise ValueError(
                f"run {run_id!r} is {run.final_status.value}; its config can no longer change"
            )
        if config == run.config:
            return
        run.config_version = run.journal.set_config(config.to_dict())
        run.config = config
        for worker in self.workers.values():
            worker.wake.set()

    async def detach(self, run_id: str) -> None:
        """Stop delivering ``run_id`` and release its journal (sync, between runs)."""
        run = self._run(run_id)
        for worker in self.workers.values():
            lane = worker.lanes.pop(run_id, None)
            if lane is not None:
                lane.close_reader()
        await self._release(run)  # its last cursors are committed while it is in self.runs
        del self.runs[run_id]

    def release_if_done(self, run: _Run) -> None:
        """Release the journal of a run every tracker finished: a sweep of hundreds of
        runs in one process never holds hundreds of files."""
        if run.released or run.final_status is None or run.committed < run.next_seq:
            return
        for worker in self.workers.values():
            lane = worker.lanes.get(run.run_id)
            if lane is not None and not lane.finished:
                return
        self.loop.create_task(self._release(run))

    async def _release(self, run: _Run) -> None:
        if run.released or self._committer is None:
            return
        await self.commit_now()  # the run's last cursors
        await self._committer.run(self.loop, partial(self._close_journal, run))

    def _close_journal(self, run: _Run) -> None:
        with self._write_lock:
            run.released = True
            run.journal.close()

    def _run(self, run_id: str) -> _Run:
        run = self.runs.get(run_id)
        if run is None:
            raise UnknownJobError(run_id)
        return run

    def _check_open(self) -> None:
        if self._closed:
            raise TrackerClosedError(
                self._closed_reason or "this tracker is disconnected; create a new one"
            )

    # -- the process's life cycle (see _lifecycle.py) -------------------------------------

    def locks_free(self, timeout: float) -> bool:
        """Whether the hot path's locks can be taken within ``timeout`` (each); a SIGTERM
        handler asks before it commits, since it may have interrupted ``log()`` itself."""
        for lock in (self._write_lock, self._lock):
            if not lock.acquire(timeout=timeout):
                return False
            lock.release()
        return True

    def abandon_after_fork(self, reason: str) -> None:
        """In a forked child: refuse every call with ``reason``; touch nothing of the
        parent's (journal, loop, threads, sessions). The locks are new: another thread may
        have held the copied ones at the fork."""
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        self._closed = True
        self._closed_reason = reason
        for run in self.runs.values():
            run.journal.abandon_after_fork()

    # -- the hot path (any thread) ------------------------------------------------------

    def log(self, run_id: str, metrics: Any, step: Any = None) -> None:
        """Accept one record: validate, number, append. Thread-safe.

        Never raises an I/O error and never waits on I/O, except: with
        ``durability="fsync"`` the caller writes its own record; and when ``max_buffer``
        records of the run wait for the journal, the caller waits for the committer, at
        most ``max_block`` seconds per episode (back-pressure). If the journal cannot be
        written (a full disk), records wait in memory up to ``max_buffer`` per run and are
        retried; past that they are dropped, counted in :attr:`DeliveryReport.dropped`
        and reported as errors, so the training loop goes on.
        """
        values = normalize_metrics(metrics)
        if step is not None and (type(step) is not int or step < 0):
            step = normalize_step(step)
        timestamp = self._wall()
        run = self.runs.get(run_id)
        if run is None:
            raise UnknownJobError(run_id)
        if self._closed:
            raise TrackerClosedError(
                self._closed_reason or f"cannot log to run {run_id!r}: the tracker is disconnected"
            )
        keep = len(run.buffer) + run.framed < self._max_fields or self._make_room(run)
        warn = False
        with self._lock:
            if self._closed:
                raise TrackerClosedError(
                    self._closed_reason
                    or f"cannot log to run {run_id!r}: the tracker is disconnected"
                )
            if run.final_status is not None:
                raise ValueError(
                    f"run {run_id!r} is {run.final_status.value}; it takes no more metrics"
                )
            if step is None:
                step = run.last_step + 1
            elif step < run.last_step and not run.warned_step:
                run.warned_step = warn = True
                previous = run.last_step
            run.last_step = step
            if keep:
                run.next_seq += 1
                buffer = run.buffer
                buffer.extend((step, timestamp, values))  # see _Run.buffer
                if len(buffer) >= _FRAME_FIELDS:  # a full frame: encode it (~0.15 ms)
                    count = len(buffer) // RECORD_FIELDS
                    run.frames.append(encode_frame(run.next_seq - count, buffer, 0, count))
                    run.framed += len(buffer)
                    buffer = run.buffer = []
                waiting = len(buffer) + run.framed
            else:
                run.shed += 1
                dropped = run.shed
            healthy = self.journal_error is None
            arm = keep and healthy and not self._commit_armed
            if arm:
                self._commit_armed = True
        if warn:
            logger.warning(
                "run %r: step %d is less than the current step %d. The row is kept, in the "
                "order logged; charts that plot by step (W&B) expect steps that never "
                "decrease, so pass a global step. (Warned once per run.)",
                run_id,
                step,
                previous,
            )
        if not keep:
            if dropped == 1 or dropped % 10_000 == 0:
                logger.error(
                    "run %r: %d records dropped so far: the journal cannot take them (%s) "
                    "and %d records already wait in memory. Training goes on; free the disk "
                    "and they are kept again.",
                    run_id,
                    dropped,
                    self.journal_error or f"no commit within {self.max_block} s",
                    run.buffered,
                )
            return
        if self.fsync and healthy:
            result = self._commit()
            with contextlib.suppress(RuntimeError):  # the loop is closed: nothing to wake
                self.loop.call_soon_threadsafe(self._after_commit, result)
            return
        if waiting == self._commit_fields and healthy:
            # a fast loop fills the buffer before the timer: commit now, keep memory flat
            self.loop.call_soon_threadsafe(self._commit_in_background)
        if arm:
            self.loop.call_soon_threadsafe(self._arm_commit)

    def _make_room(self, run: _Run) -> bool:
        """Wait (bounded) until the committer takes ``run``'s full buffer; False if not."""
        if self._blocking == "inline":  # no committer thread: the caller commits
            self._after_commit(self._commit())
            return run.buffered < self.max_buffer
        with self._lock:
            if self.journal_error is not None:
                return False
            if self._full_deadline is None:
                self._full_deadline = time.monotonic() + self.max_block
                with contextlib.suppress(RuntimeError):
                    self.loop.call_soon_threadsafe(self._commit_in_background)
            while run.buffered >= self.max_buffer:
                if self.journal_error is not None:
                    return False
                if self._full_deadline is None:  # the committer took a buffer meanwhile
                    self._full_deadline = time.monotonic() + self.max_block
                remaining = self._full_deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._room.wait(remaining)
            return True

    # -- artifacts ------------------------------------------------------------------------

    def store_artifact(self, path: Path, spec: ArtifactSpec, *, copy: bool) -> dict[str, Any]:
        """Copy ``path`` into the artifact store (any thread; the caller's): the bytes are
        safe when this returns. Returns the entry :meth:`add_artifact` journals.

        :raises FileNotFoundError: ``path`` does not exist.
        """
        return build_entry(
            self.artifact_store,
            path,
            name=spec.name,
            type=spec.type,
            description=spec.description,
            metadata=spec.metadata,
            copy=copy,
            fsync=self.fsync,
        )

    async def add_artifact(self, run_id: str, entry: dict[str, Any]) -> str:
        """Journal a stored artifact after every record logged so far; return its id.

        The records before it are committed first (so the order survives a crash) and made
        due at once; each tracker's worker uploads the artifact once it holds them.
        """
        self._check_open()
        run = self._run(run_id)
        if run.final_status is not None:
            raise ValueError(
                f"run {run_id!r} is {run.final_status.value}; it takes no more artifacts"
            )
        await self.commit_now()
        entry = run.journal.add_artifact({**entry, "after_seq": run.committed})
        run.artifacts.append(entry)
        for worker in self.workers.values():
            lane = worker.lanes.get(run_id)
            if lane is not None:
                lane.flush_until = max(lane.flush_until, entry["after_seq"])
            worker.wake.set()
            worker.artifact_wake.set()
        return str(entry["id"])

    def list_artifacts(self, run_id: str) -> list[dict[str, Any]]:
        """The run's artifacts, in upload order, with each tracker's delivery state:
        ``{"state": "delivered", "remote_id": ...}``, ``{"state": "pending"}`` or, refused
        in this session, ``{"state": "refused", "error": ...}``."""
        run = self.runs.get(run_id)
        try:
            journal = run.journal if run is not None else RunJournal.peek(
                self.journal_root, check_run_id(run_id))
        except (LookupError, ValueError):
            raise UnknownJobError(run_id) from None
        entries = run.artifacts if run is not None else journal.artifacts()
        names = list(dict.fromkeys([*self.workers, *journal.meta.get("trackers", {})]))
        found = []
        for entry in entries:
            index = entry["index"]
            delivery: dict[str, dict[str, Any]] = {}
            for name in names:
                worker = self.workers.get(name)
                lane = worker.lanes.get(run_id) if worker is not None else None
                marks = lane.artifact_marks if lane is not None else journal.artifact_marks(name)
                if index in marks:
                    delivery[name] = dict(marks[index])
                elif lane is not None and index in lane.artifact_failed:
                    delivery[name] = {"state": "refused", "error": lane.artifact_failed[index]}
                else:
                    delivery[name] = {"state": "pending"}
            found.append({
                **{k: entry[k] for k in ("id", "name", "type", "description", "metadata",
                                         "size", "digest")},
                "files": [{k: f[k] for k in ("path", "size", "sha256")} for f in entry["files"]],
                "delivery": delivery,
            })
        return found

    def artifact_entry(self, artifact_id: str) -> tuple[_Run, dict[str, Any]]:
        """The active run and journal entry of a trackmux artifact id.

        :raises LookupError: not an artifact of a run active in this session.
        """
        parsed = parse_artifact_id(artifact_id)
        run = self.runs.get(parsed[0]) if parsed else None
        if parsed is None or run is None or parsed[1] >= len(run.artifacts):
            raise LookupError(f"no artifact {artifact_id!r} in this session")
        entry = run.artifacts[parsed[1]]
        if entry["id"] != artifact_id:
            raise LookupError(f"no artifact {artifact_id!r} in this session")
        return run, entry

    async def wait_artifact(
        self, artifact_id: str, timeout: float | None, trackers: list[str] | None = None
    ) -> dict[str, str]:
        """Wait until ``trackers`` (default: all) hold the artifact; their ids for it.

        :raises RuntimeError: a tracker refused it for good, or stopped (it stays in the
            journal for ``trackmux sync``).
        :raises TimeoutError: not delivered within ``timeout`` seconds (delivery goes on).
        """
        run, entry = self.artifact_entry(artifact_id)
        index = entry["index"]
        workers = [self.worker(name) for name in trackers] if trackers else list(
            self.workers.values()
        )
        for worker in workers:
            lane = worker.lanes.get(run.run_id)
            if lane is not None:
                lane.flush_until = max(lane.flush_until, entry["after_seq"])
            worker.wake.set()

        def done() -> bool:
            return all(
                worker.state == "failed"
                or run.run_id not in worker.lanes
                or worker.lanes[run.run_id].artifact_done(index)
                for worker in workers
            )

        deadline = None if timeout is None else self.loop.time() + timeout
        await self._wait_until(done, deadline)
        if not done():
            waiting = [w.name for w in workers if not w.lanes[run.run_id].artifact_done(index)]
            raise TimeoutError(
                f"artifact {artifact_id!r} is not delivered to {', '.join(waiting)} after "
                f"{timeout} s; delivery goes on in the background"
            )
        errors = []
        retry = []
        ids = {}
        for worker in workers:
            lane = worker.lanes.get(run.run_id)
            if lane is None:
                continue
            if index in lane.artifact_marks:
                ids[worker.name] = str(lane.artifact_marks[index]["remote_id"])
                continue
            if index in lane.artifact_failed:
                errors.append(f"{worker.name}: {lane.artifact_failed[index]}")
            else:
                errors.append(f"{worker.name}: the tracker stopped: {worker.error}")
            retry.append(sync_command(self.data_dir, worker.name, run.run_id))
        if errors:
            raise RuntimeError(
                f"upload of artifact {artifact_id!r} failed: {'; '.join(errors)}. It stays "
                f"in the journal; this tries again: {' ; '.join(retry)}"
            )
        return ids

    # -- the committer ------------------------------------------------------------------

    def _arm_commit(self) -> None:
        self.loop.call_later(self.commit_interval, self._commit_in_background)

    def _commit_in_background(self) -> None:
        if self._committer is not None:
            future = self._committer.run(self.loop, self._commit)
            future.add_done_callback(self._committed_in_background)

    def _committed_in_background(self, future: asyncio.Future[Any]) -> None:
        if future.cancelled():
            return
        if future.exception() is not None:
            logger.error("trackmux's journal committer failed: %r", future.exception())
            return
        self._after_commit(future.result())

    def _commit(self) -> tuple[list[tuple[_Run, int]], BaseException | None]:
        """Append the records waiting when called and the acknowledged cursors to each
        run's journal (any thread, one at a time); return what moved and the first error.

        A run's records go in transactions of :data:`_COMMIT_FRAMES` frames, each taken
        from the run just before it is written, so a caller waiting for room waits for one
        transaction, not for the whole backlog. A failed write (a full disk, an I/O error)
        leaves nothing of its transaction in the journal, and its frames go back to the
        front of the run's, to be retried with the same ``seq``s. No record is ever
        numbered twice or skipped.
        """
        with self._write_lock:
            with self._lock:
                self._commit_armed = False
                targets = [
                    (run, run.next_seq)
                    for run in self.runs.values()
                    if (run.frames or run.buffer or run.acked) and not run.released
                ]
            done = []
            error: BaseException | None = None
            for run, target in targets:
                committed = None
                while committed is None or committed < target:
                    with self._lock:
                        first = run.next_seq - run.buffered
                        frames = run.frames[:_COMMIT_FRAMES]
                        del run.frames[:_COMMIT_FRAMES]
                        taken = frame_records(frames)
                        run.framed -= RECORD_FIELDS * taken
                        fields: list[Any] = []
                        if not run.frames:
                            fields, run.buffer = run.buffer, []
                        acked, run.acked = run.acked, {}
                        self._full_deadline = None
                        self._room.notify_all()
                    if fields:
                        frames.append(encode_frame(
                            first + taken, fields, 0, len(fields) // RECORD_FIELDS))
                    if not frames and not acked:
                        break
                    try:
                        run.journal.append(first, [], acked, frames=frames)
                    except Exception as exc:  # sqlite3.Error, OSError: the disk said no
                        error = error or exc
                        with self._lock:
                            run.frames[:0] = frames
                            run.framed += RECORD_FIELDS * frame_records(frames)
                            for name, seq in acked.items():
                                run.acked[name] = max(seq, run.acked.get(name, 0))
                        break
                    if not frames:
                        break
                    committed = frames[-1][1] + 1
                if committed is not None:
                    done.append((run, committed))
            with self._lock:  # a loop that outran this commit: the next starts now
                again = error is None and any(
                    len(run.buffer) + run.framed >= self._commit_fields for run, _ in targets)
        if again:
            with contextlib.suppress(RuntimeError):  # the loop is closed
                self.loop.call_soon_threadsafe(self._commit_in_background)
        return done, error

    def _after_commit(self, result: tuple[list[tuple[_Run, int]], BaseException | None]) -> None:
        """On the loop: let the workers see what was committed; retry a failed commit."""
        done, error = result
        now = self.loop.time()
        for run, committed in done:
            if committed > run.committed:
                run.note_commit(committed, now)
        if error is not None:
            text = f"{type(error).__name__}: {error}"
            delay = self.backoff.delay(self._commit_attempt, None)
            self._commit_attempt += 1
            with self._lock:
                first = self.journal_error is None
                self.journal_error = text
                self._commit_armed = True
                self._room.notify_all()  # callers waiting for room: stop waiting
            if first:
                logger.error(
                    "trackmux cannot write its journal under %s (%s). Records wait in memory "
                    "(up to %d per run) and the write is retried; nothing is delivered "
                    "before it is journaled.",
                    self.journal_root,
                    text,
                    self.max_buffer,
                )
            if not self._closed:
                self.loop.call_later(delay, self._commit_in_background)
        elif self.journal_error is not None:
            with self._lock:
                self.journal_error = None
            self._commit_attempt = 0
            logger.warning("trackmux can write its journal again; nothing held was lost")
        for worker in self.workers.values():
            worker.wake.set()
        self._progress_changed()

    async def commit_now(self) -> None:
        """Commit the buffers and wait until the workers can see the records."""
        if self._committer is None:
            return
        future = self._committer.run(self.loop, self._commit)
        try:
            result = await asyncio.shield(future)
        except asyncio.CancelledError:  # the caller's deadline: the commit goes on
            future.add_done_callback(self._committed_in_background)
            raise
        self._after_commit(result)

    def acknowledged(self, run: _Run, tracker: str, cursor: Cursor) -> None:
        """``tracker`` holds every record of ``run`` before ``cursor`` (on the loop).

        The cursor is stored with the next commit, in the same journal transaction as
        records, so a stored cursor never points past stored records.
        """
        with self._lock:
            run.acked[tracker] = cursor
            arm = not self._commit_armed and self.journal_error is None
            if arm:
                self._commit_armed = True
        if arm:
            self._arm_commit()
        self.forget_commits(run)

    def forget_commits(self, run: _Run) -> None:
        """Drop the commit times of records every tracker acknowledged."""
        lowest = min(
            (w.lanes[run.run_id].cursor for w in self.workers.values() if run.run_id in w.lanes),
            default=run.committed,
        )
        run.forget_commits_before(lowest)

    # -- flush, finish, status -------------------------------------------------------------

    def _progress_changed(self) -> None:
        if self._progress is not None:
            self._progress.set()
            self._progress = asyncio.Event()

    async def flush(
        self, timeout: float | None = None, run_ids: list[str] | None = None
    ) -> DeliveryReport:
        """Send everything logged so far now; wait until delivered or ``timeout`` passes
        (the journal commit included: a stalled disk does not hold the caller longer)."""
        deadline = None if timeout is None else self.loop.time() + timeout
        try:
            async with asyncio.timeout_at(deadline):
                await self.commit_now()
        except TimeoutError:
            return self.report()
        runs = [self._run(r) for r in run_ids] if run_ids else list(self.runs.values())
        artifacts = {run.run_id: len(run.artifacts) for run in runs}
        # Everything logged before this call, committed or not: a commit that failed above
        # and succeeds on its retry while this waits is waited for too.
        targets = {run.run_id: run.next_seq for run in runs}
        for worker in self.workers.values():
            for run in runs:
                lane = worker.lanes.get(run.run_id)
                if lane is not None:
                    lane.flush_until = max(lane.flush_until, targets[run.run_id])
            worker.wake.set()
            worker.artifact_wake.set()

        def done() -> bool:
            for worker in self.workers.values():
                if worker.state == "failed":
                    continue
                for run in runs:
                    lane = worker.lanes.get(run.run_id)
                    # while the journal refuses writes, what it does not hold can't be sent
                    goal = targets[run.run_id]
                    if self.journal_error is not None:
                        goal = min(goal, run.committed)
                    if (
                        lane is not None
                        and lane.failed is None
                        and (
                            not lane.submitted
                            or lane.cursor < goal
                            or lane.config_version < run.config_version
                            or not lane.artifacts_done(artifacts[run.run_id])
                        )
                    ):
                        return False
            return True

        await self._wait_until(done, deadline)
        return self.report()

    async def finish(self, run_id: str, status: JobStatus, timeout: float | None) -> DeliveryReport:
        """End a run: no more records; deliver the rest, then tell every tracker its state."""
        run = self._run(run_id)
        with self._lock:
            if run.final_status is None:
                run.final_status = status
        deadline = None if timeout is None else self.loop.time() + timeout
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(deadline):
                await self.commit_now()
        try:
            run.journal.set_final_status(run.final_status.value)  # type: ignore[union-attr]
        except OSError as exc:
            logger.error("run %r: could not record its final state: %s", run_id, exc)
        for worker in self.workers.values():
            worker.wake.set()

        def done() -> bool:
            return all(
                worker.state == "failed"
                or run_id not in worker.lanes
                or worker.lanes[run_id].finished
                or worker.lanes[run_id].failed is not None
                for worker in self.workers.values()
            )

        await self._wait_until(done, deadline)
        return self.report()

    async def _wait_until(self, done: Callable[[], bool], deadline: float | None) -> None:
        while not done():
            assert self._progress is not None
            event = self._progress
            remaining = None if deadline is None else deadline - self.loop.time()
            if remaining is not None and remaining <= 0:
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):  # not wait_for: see _Worker._wait
                    await event.wait()

    def report(self) -> DeliveryReport:
        """Where every tracker's delivery stands (and the journal, if it is failing)."""
        now = self.loop.time() if self.loop is not None else 0.0
        return DeliveryReport(
            [worker.status(now) for worker in self.workers.values()],
            journal_error=self.journal_error,
            dropped=sum(run.shed for run in self.runs.values()),
        )

    # -- calls answered by one tracker ----------------------------------------------------

    def worker(self, tracker: str | None) -> _Worker:
        """The worker of ``tracker`` (the first configured one if ``None``).

        :raises TrackerClosedError: no tracker is connected (``connect()`` not called yet).
        """
        if not self.workers:
            raise TrackerClosedError("no tracker is connected yet: call connect() first")
        if tracker is None:
            return next(iter(self.workers.values()))
        try:
            return self.workers[tracker]
        except KeyError:
            raise ValueError(
                f"tracker {tracker!r} is not active in this session; active: "
                f"{', '.join(self.workers)}"
            ) from None

    def job_id_for(self, worker: _Worker, run_id: str) -> str:
        """The job id ``worker``'s tracker knows ``run_id`` by."""
        worker.check_connected()
        lane = worker.lanes.get(run_id)
        if lane is not None and lane.job_id is not None:
            return lane.job_id
        if lane is None:
            with contextlib.suppress(LookupError, ValueError, TypeError, OSError):
                job = RunJournal.peek(
                    self.journal_root, check_run_id(run_id)
                ).tracker_job(worker.name)
                if job:
                    return job
        if lane is not None:
            raise UnknownJobError(run_id)
        return run_id

    async def call(self, tracker: str | None, hook: str, **kwargs: Any) -> Any:
        """Call ``hook`` of one tracker with its session."""
        self._check_open()
        worker = self.worker(tracker)
        worker.check_connected()
        return await worker.call(hook, session=worker.session, **kwargs)
