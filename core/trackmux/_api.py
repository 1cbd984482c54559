"""The two public APIs over one engine: :class:`AsyncTracker` and :class:`Tracker`.

Both own an :class:`~trackmux._engine.Engine` running on an event loop in a background
thread (``trackmux-engine``). ``log_metrics`` goes straight to the engine's hot path from the
caller's thread; everything else is a coroutine run on the engine's loop, awaited
(``AsyncTracker``) or waited for (``Tracker``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Coroutine, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pluggy
from trackmux_spec import (
    ArtifactSpec,
    JobStatus,
    TrackerClosedError,
    TrainingConfig,
)

from . import _lifecycle
from ._artifacts import parse_artifact_id
from ._config import Settings, load_settings, unknown_keys
from ._plugins import get_plugin_manager, tracker_caller, tracker_names

if TYPE_CHECKING:
    import concurrent.futures

    from ._engine import DeliveryReport
    from ._loop_thread import EngineThread
    from ._plugins import TrackerHooks

__all__ = ["AsyncTracker", "Tracker"]

logger = logging.getLogger("trackmux")

T = TypeVar("T")

#: Seconds ``disconnect()`` (and interpreter exit) waits for delivery by default; also
#: the default bound of ``flush()``, ``finish()`` and ``cancel_job()``.
DEFAULT_CLOSE_TIMEOUT = 30.0

#: Seconds any other call waits for its answer (a tracker's hook: ``submit_job``,
#: ``get_job_status``, ``get_history``...) before raising ``TimeoutError``: every wait has a
#: deadline, so a hook that hangs never hangs the training script.
DEFAULT_CALL_TIMEOUT = 120.0

#: Seconds a bounded wait allows beyond its own timeout for the engine to answer.
_GRACE = 5.0

#: The states ``finish(status=...)`` accepts: the final states of the ``finish_job`` hook.
_FINISH_STATUSES = (JobStatus.FINISHED, JobStatus.FAILED, JobStatus.KILLED, JobStatus.PREEMPTED)


def _no_answer(seconds: float) -> str:
    return (
        f"trackmux got no answer within {seconds:.0f} s: a tracker's backend or hook does not "
        f"respond (the call was abandoned; records already logged stay in the journal)"
    )


_SAID_OFFLINE: set[str] = set()
_WARNED_KEYS: set[str] = set()


def warn_unknown_keys(settings: Settings, pm: pluggy.PluginManager,
                      hooks: Sequence[TrackerHooks]) -> None:
    """Warn once per process about each key of the configuration file that nothing reads
    (see :func:`trackmux._config.unknown_keys`)."""
    if settings.config_file is None:
        return
    declared = {hook.name: hook.info().settings for hook in hooks}
    installed = tracker_names(pm)
    for name, table in settings.file_table.items():
        if isinstance(table, dict) and name in installed and name not in declared:
            try:  # a table of a tracker not selected now (WANDB_MODE=offline...): check too
                declared[name] = tracker_caller(pm, name).info().settings
            except Exception:  # a broken plugin is reported where it is selected
                declared[name] = None
    for warning in unknown_keys(settings, installed, declared):
        if warning not in _WARNED_KEYS:
            _WARNED_KEYS.add(warning)
            logger.warning("%s", warning)


def _say_kept_offline(trackers: Sequence[str]) -> None:
    """Tell once per process that ``WANDB_MODE=offline`` keeps a tracker offline, and how
    to send its runs later."""
    for name in trackers:
        if name in _SAID_OFFLINE:
            continue
        _SAID_OFFLINE.add(name)
        logger.warning(
            "WANDB_MODE=offline: W&B is kept offline; runs stay in the local journal, "
            "marked as pending for %s. Send them later with: trackmux sync --tracker %s",
            name, name,
        )


def _no_report() -> DeliveryReport:
    """An empty delivery report (nothing sent, nothing pending)."""
    from ._engine import DeliveryReport  # loaded with the tracker's engine already

    return DeliveryReport()


class _TrackerBase:
    """What both APIs share: configuration, the engine, its thread, argument checking."""

    #: A tracker whose backend is down at ``connect()`` starts anyway and connects in the
    #: background (records are journaled meanwhile). ``False`` raises ``ConnectionError``.
    _retry_unreachable = True

    def __init__(
        self,
        trackers: Sequence[str] | str | None = None,
        *,
        data_dir: str | os.PathLike[str] | None = None,
        settings: Mapping[str, Mapping[str, Any]] | None = None,
        durability: str = "default",
        batch_size: int = 100,
        batch_interval: float = 5.0,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
        plugin_manager: pluggy.PluginManager | None = None,
        ranks: str | None = None,
    ) -> None:
        self.settings: Settings = load_settings(
            trackers, data_dir=data_dir, tracker_settings=settings, ranks=ranks
        )
        # the engine (and asyncio) load here, when the first tracker is made, not at import
        from ._engine import Engine
        from ._ranks import make_engine, rank_policy

        pm = plugin_manager or get_plugin_manager()
        hooks = [tracker_caller(pm, name) for name in self.settings.trackers]
        warn_unknown_keys(self.settings, pm, hooks)
        self._engine = make_engine(
            rank_policy(self.settings.ranks),
            self.settings.trackers,
            pm,
            hooks,
            self.settings.data_dir,
            tracker_settings=self.settings.tracker_settings,
            durability=durability,
            batch_size=batch_size,
            batch_interval=batch_interval,
        )
        if self.settings.offline and isinstance(self._engine, Engine):
            self._engine.kept_offline = self.settings.offline
            _say_kept_offline(self.settings.offline)
        if type(self) is Tracker:
            # the hot path without a wrapper call: Tracker.log_metrics is the engine's
            self.log_metrics = self._engine.log  # type: ignore[method-assign]
        self._close_timeout = close_timeout
        self._thread: EngineThread | None = None
        self._connected = False
        self._closed = False
        self._closed_reason: str | None = None
        self._closing: concurrent.futures.Future[DeliveryReport] | None = None
        self._state_lock = threading.Lock()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "connected" if self._connected else "new"
        return (
            f"<{type(self).__name__} trackers={list(self.settings.trackers)} "
            f"data_dir={str(self.settings.data_dir)!r} {state}>"
        )

    @property
    def trackers(self) -> tuple[str, ...]:
        """The trackers this session delivers to, in configuration order."""
        return self.settings.trackers

    # -- plumbing ----------------------------------------------------------------------

    def _ensure_thread(self) -> EngineThread:
        if self._closed:
            raise TrackerClosedError(
                self._closed_reason or "this tracker is disconnected; create a new one"
            )
        if self._thread is None:
            from ._loop_thread import EngineThread

            self._thread = EngineThread()
        return self._thread

    def _wait(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the engine's loop; wait at most ``timeout`` seconds (default
        :data:`DEFAULT_CALL_TIMEOUT`), then cancel it and raise ``TimeoutError``."""
        limit = DEFAULT_CALL_TIMEOUT if timeout is None else timeout
        future = self._ensure_thread().submit(coro)
        try:
            return future.result(limit)
        except TimeoutError:
            if future.done():  # the call itself raised TimeoutError
                raise
            future.cancel()
            raise TimeoutError(_no_answer(limit)) from None

    def _delivery_timeout(self, timeout: float | None) -> float:
        """The bound of a delivery wait: ``timeout``, or the tracker's ``close_timeout``."""
        return self._close_timeout if timeout is None else timeout

    async def _connect(self, credentials: Mapping[str, Any] | None) -> None:
        await self._engine.start(credentials, retry_unreachable=self._retry_unreachable)

    def _after_connect(self) -> None:
        self._connected = True
        _lifecycle.register(self)

    # -- process life cycle (see _lifecycle.py) ------------------------------------------

    def _close_at_exit(self) -> None:
        self._close_blocking(DEFAULT_CLOSE_TIMEOUT, JobStatus.FINISHED)

    def _commit_blocking(self, timeout: float, final: JobStatus | None = None) -> None:
        """Put what is buffered into the journal (and give every open run the state
        ``final``, if given), waiting at most ``timeout`` seconds."""
        thread = self._thread
        if self._closed or thread is None or not self._connected:
            return
        with contextlib.suppress(Exception):
            thread.submit(self._commit(final)).result(timeout)

    async def _commit(self, final: JobStatus | None) -> None:
        engine = self._engine
        await engine.commit_now()
        if final is not None:
            for run_id, run in list(engine.runs.items()):
                if run.final_status is None:
                    await engine.finish(run_id, final, 0)

    def _locks_free(self, timeout: float) -> bool:
        """Whether no thread holds this tracker's locks for ``timeout`` seconds."""
        if not self._state_lock.acquire(timeout=timeout):
            return False
        self._state_lock.release()
        return self._engine.locks_free(timeout)

    def _abandon_after_fork(self, parent_pid: int) -> None:
        """In a forked child: leave everything to the parent; every call says so."""
        self._state_lock = threading.Lock()
        self._closed = True
        self._closing = None  # a close under way at the fork is the parent's
        self._closed_reason = (
            f"this tracker belongs to process {parent_pid}; process {os.getpid()} is a "
            f"forked child of it and cannot use its runs. Log from the parent (send the "
            f"values back, e.g. through a multiprocessing queue), or create a new "
            f"trackmux.Tracker() in the child for a run of its own"
        )
        self._engine.abandon_after_fork(self._closed_reason)

    def _close_blocking(self, timeout: float | None, status: JobStatus) -> DeliveryReport:
        """Finish open runs, deliver what can be delivered within ``timeout``, stop the thread.

        After SIGTERM, runs end as ``PREEMPTED`` and the wait is bounded (``_lifecycle``).
        """
        with self._state_lock:
            closing = self._closing
            if self._closed or self._thread is None:
                self._closed = True
                if closing is None:
                    return _no_report()
            else:
                self._closed = True
                thread = self._thread
                closing = None
                if self._connected:
                    status = _lifecycle.closing_status(status)
                    timeout = _lifecycle.closing_timeout(timeout)
                    self._closing = thread.submit(self._close(timeout, status))
        if closing is not None:  # another thread (or a SIGTERM) closes it: wait for that
            try:
                return closing.result(timeout)
            except Exception:
                return _no_report()
        try:
            if self._closing is None:
                return _no_report()
            return self._closing.result(None if timeout is None else timeout + _GRACE)
        except TimeoutError:
            logger.error(
                "trackmux did not close within %.0f s (its engine is stuck); what was not "
                "delivered stays in the journal for `trackmux sync`",
                timeout,
            )
            return _no_report()
        finally:
            thread.stop()
            _lifecycle.unregister(self)

    async def _close(self, timeout: float | None, status: JobStatus) -> DeliveryReport:
        import asyncio

        engine = self._engine
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        # every open run gets its final state at once, then they all deliver side by side
        # (runs ended before, by finish() or SIGTERM, are waited for too)
        await asyncio.gather(*(engine.finish(run_id, status, timeout) for run_id in engine.runs))
        remaining = None if deadline is None else max(0.0, deadline - loop.time())
        return await engine.close(remaining)

    @staticmethod
    def _config(config: Any, fields: dict[str, Any]) -> TrainingConfig:
        return TrainingConfig.from_any(config, **fields)

    def _artifact(
        self, path: str | os.PathLike[str], metadata: Mapping[str, Any] | None, job_id: str | None
    ) -> tuple[str, Path, ArtifactSpec]:
        target = Path(path)
        if not target.exists():
            raise FileNotFoundError(f"artifact path does not exist: {str(target)!r}")
        meta = dict(metadata or {})
        job = job_id or meta.pop("job_id", None)
        meta.pop("job_id", None)
        if job is None:
            runs = list(self._engine.runs)
            if len(runs) != 1:
                raise ValueError(
                    "upload_artifact needs the run: pass job_id= (or metadata['job_id']); "
                    f"this session has {len(runs)} runs"
                )
            job = runs[0]
        self._engine._run(job)  # UnknownJobError for a job of another session
        name = meta.pop("name", None) or target.name
        kind = meta.pop("type", None) or "artifact"
        description = meta.pop("description", None)
        spec = ArtifactSpec(
            name=str(name),
            type=str(kind),
            description=None if description is None else str(description),
            metadata=meta,
        )
        return job, target.resolve(), spec

    async def _add_artifact(
        self, job_id: str, entry: dict[str, Any], wait: bool, timeout: float | None
    ) -> str:
        artifact_id = await self._engine.add_artifact(job_id, entry)
        if wait and artifact_id:
            await self._engine.wait_artifact(artifact_id, timeout)
        return artifact_id

    async def _list_artifacts(self, job_id: str) -> list[dict[str, Any]]:
        return self._engine.list_artifacts(job_id)

    async def _download(self, artifact_id: str, target: Path, tracker: str | None) -> Path:
        engine = self._engine
        worker = engine.worker(tracker)
        remote = artifact_id
        if parse_artifact_id(artifact_id) is not None:
            try:
                remote = (await engine.wait_artifact(artifact_id, None, [worker.name]))[
                    worker.name
                ]
            except LookupError:
                remote = _delivered_id(engine.journal_root, artifact_id, worker.name)
        return await engine.call(  # type: ignore[no-any-return]
            worker.name, "download_artifact", artifact_id=remote, target_dir=target
        )

    async def _compare(self, job_ids: Sequence[str], tracker: str | None) -> dict[str, Any]:
        engine = self._engine
        worker = engine.worker(tracker)
        jobs = {engine.job_id_for(worker, job): job for job in job_ids}
        comparison = await engine.call(worker.name, "compare", job_ids=list(jobs))
        result = comparison.to_dict()
        for run in result["runs"]:  # the ids the caller knows, not the tracker's job ids
            run["id"] = jobs.get(run["id"], run["id"])
        return result

    async def _job_call(self, hook: str, job_id: str, tracker: str | None) -> Any:
        engine = self._engine
        worker = engine.worker(tracker)
        return await engine.call(worker.name, hook, job_id=engine.job_id_for(worker, job_id))

    def _run_url(self, job_id: str, tracker: str | None) -> str:
        engine = self._engine
        if not self._connected:
            raise TrackerClosedError("connect() first")
        worker = engine.worker(tracker)
        worker.check_connected()
        caller = worker.hooks.caller("get_run_url")
        return str(caller(session=worker.session, job_id=engine.job_id_for(worker, job_id)))

    @staticmethod
    def _final(exit_code: int, status: JobStatus | str | None = None) -> JobStatus:
        if not isinstance(exit_code, int) or isinstance(exit_code, bool):
            raise TypeError(f"exit_code must be an integer, got {exit_code!r}")
        if status is None:  # after SIGTERM, a run ended by its exit code was preempted
            return _lifecycle.closing_status(
                JobStatus.FINISHED if exit_code == 0 else JobStatus.FAILED
            )
        try:
            final = JobStatus(status)
        except ValueError:
            final = None
        if final not in _FINISH_STATUSES:
            allowed = ", ".join(s.name for s in _FINISH_STATUSES)
            raise ValueError(f"status must be one of {allowed}, got {status!r}")
        if exit_code != 0 and final is JobStatus.FINISHED:
            raise ValueError(f"exit_code {exit_code} contradicts status FINISHED")
        return final


class AsyncTracker(_TrackerBase):
    """Experiment tracking for asyncio code, with the reference document's API.

    ::

        async with trackmux.AsyncTracker() as tracker:      # trackers from the configuration
            job_id = await tracker.submit_job(TrainingConfig(project_name="demo"))
            await tracker.log_metrics(job_id, {"loss": 0.5}, step=1)

    :param trackers: tracker names (``["wandb", "null"]``) or a comma list; ``None`` reads
        ``TRACKMUX_TRACKERS``, then ``trackmux.toml`` / ``[tool.trackmux]``, then ``null``.
    :param data_dir: where the journal and local trackers live (``TRACKMUX_DIR``).
    :param settings: per-tracker settings, merged over the configuration file's tables.
    :param durability: ``"default"`` (group commit every 50 ms: a killed process loses at
        most what it logged in its last ~100 ms) or ``"fsync"`` (every call is on disk
        before it returns; slower, see the README).
    :param batch_size: records that trigger a batch (100).
    :param batch_interval: seconds after which a batch leaves even if not full (5).
    :param close_timeout: seconds ``disconnect()`` waits for delivery by default (30).
    :param ranks: in distributed training, ``"main"`` (only rank 0 sends; other ranks
        validate and drop everything, creating no run) or ``"all"`` (one run per rank, in
        one group, named ``rank-N``); ``None`` reads ``TRACKMUX_RANKS``, then ``ranks`` in
        the configuration file, then ``"main"``. See :mod:`trackmux._ranks`.
    """

    async def __aenter__(self) -> AsyncTracker:
        if not self._connected:
            await self.connect()
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        status = JobStatus.FINISHED if exc_type is None else JobStatus.FAILED
        await self._aclose(None, status)

    async def _on_loop(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the engine's loop; await it at most ``timeout`` seconds (default
        :data:`DEFAULT_CALL_TIMEOUT`), then cancel it and raise ``TimeoutError``."""
        import asyncio

        limit = DEFAULT_CALL_TIMEOUT if timeout is None else timeout
        future = asyncio.wrap_future(self._ensure_thread().submit(coro))
        bound = asyncio.timeout(limit)
        try:
            async with bound:
                return await future
        except TimeoutError:
            if not bound.expired():  # the call itself raised TimeoutError
                raise
            raise TimeoutError(_no_answer(limit)) from None

    async def connect(self, credentials: Mapping[str, Any] | None = None) -> None:
        """Connect every configured tracker and check the credentials.

        :param credentials: e.g. ``{"api_key": ..., "entity": ...}``, given to every tracker,
            or one mapping per tracker name (``{"wandb": {...}}``).
        :raises ValueError: invalid or rejected credentials.
        :raises ConnectionError: a backend cannot be reached.
        """
        if self._connected:
            return
        await self._on_loop(self._connect(credentials))
        self._after_connect()

    async def submit_job(
        self,
        config: TrainingConfig | Mapping[str, Any] | Any | None = None,
        *,
        run_id: str | None = None,
        **fields: Any,
    ) -> str:
        """Create a run on every tracker and return its job id.

        ``config`` is what ``wandb.init(config=...)`` takes: a :class:`TrainingConfig`, a
        mapping (``vars(args)``), an ``argparse.Namespace``, a dataclass or an attrs
        instance; keyword arguments add fields (``name="run-3"``, ``tags=[...]``) and
        free-form keys (``momentum=0.9``), winning over the same keys of ``config``. Values
        are checked here: a value no config can hold raises ``TypeError`` naming its key.
        ``run_id`` resumes or names a run; by default a fresh 8-character id.
        """
        training = self._config(config, fields)
        if not self._connected:
            await self.connect()
        return await self._on_loop(self._engine.submit(training, run_id))

    async def log_metrics(
        self, job_id: str, metrics: Mapping[str, Any], step: int | None = None
    ) -> None:
        """Record ``metrics`` at ``step`` (the run's last step + 1 if omitted).

        Returns as soon as the values are validated and queued; delivery is batched in the
        background. Raises ``TypeError``/``ValueError`` naming the offending key and value.
        """
        self._engine.log(job_id, metrics, step)

    async def update_config(self, job_id: str, values: Mapping[str, Any]) -> None:
        """Add or change entries of a started run's config; every tracker gets the result.

        Each key of ``values`` becomes a config entry, replacing an earlier value of that
        key (``TrainingConfig`` field names included: they are plain entries here). The
        change is journaled before this returns and delivered in the background, like
        metrics: W&B updates the run's config, MLflow logs the new params (an MLflow param
        keeps its first value), the offline tracker stores it.

        :raises ValueError: the run is finished. :raises TypeError: a value a config
            cannot hold, naming the key.
        """
        if not self._connected:
            await self.connect()
        await self._on_loop(self._engine.update_config(job_id, values))

    async def flush(self, timeout: float | None = None) -> DeliveryReport:
        """Send everything logged so far; wait until delivered, at most ``timeout`` seconds
        (default: ``close_timeout``, 30 s). The report says what is still pending."""
        bound = self._delivery_timeout(timeout)
        return await self._on_loop(self._engine.flush(bound), bound + _GRACE)

    async def get_job_status(self, job_id: str, *, tracker: str | None = None) -> JobStatus:
        """The run's state on ``tracker`` (the first configured one by default)."""
        return await self._on_loop(self._job_call("get_job_status", job_id, tracker))  # type: ignore[no-any-return]

    async def get_history(self, job_id: str, *, tracker: str | None = None) -> list[dict[str, Any]]:
        """Every row the tracker stored for the run, with ``_step`` and ``_timestamp``."""
        return await self._on_loop(self._job_call("get_history", job_id, tracker))  # type: ignore[no-any-return]

    async def upload_artifact(
        self,
        path: str | os.PathLike[str],
        metadata: Mapping[str, Any] | None = None,
        *,
        job_id: str | None = None,
        copy: bool = True,
        wait: bool = False,
        timeout: float | None = None,
    ) -> str:
        """Journal a file or a directory as one artifact; every tracker gets it in the
        background. Returns its id (``<run id>:<name>:<index>``) once the bytes are safe.

        ``metadata`` may carry ``job_id``, ``name``, ``type`` and ``description``; the rest is
        stored with the artifact. The files are copied into trackmux's store (a reflink
        where the filesystem can) before this returns, so the script may delete or
        overwrite them at once; ``copy=False`` keeps a reference instead, checked by
        SHA-256 when each tracker uploads it (a changed file fails that artifact).

        Each tracker's worker uploads it once the tracker holds the records logged before
        it, with the records' retries; ``flush()``, ``finish()`` and ``disconnect()`` wait
        for it. A refusal is reported by ``status()`` and the returned reports, never
        raised here, unless ``wait=True``: then this waits until every tracker holds it
        and raises ``RuntimeError`` naming the tracker that refused it (``TimeoutError``
        after ``timeout`` seconds; delivery goes on).

        :raises FileNotFoundError: ``path`` does not exist.
        """
        job, target, spec = self._artifact(path, metadata, job_id)
        import asyncio

        entry = await asyncio.to_thread(self._engine.store_artifact, target, spec, copy=copy)
        bound = None if timeout is None else timeout + _GRACE
        return await self._on_loop(self._add_artifact(job, entry, wait, timeout), bound)

    async def list_artifacts(self, job_id: str) -> list[dict[str, Any]]:
        """The run's artifacts from the journal, in upload order: ``id``, ``name``, ``type``,
        ``description``, ``metadata``, ``size``, ``digest`` (SHA-256), ``files`` (path, size,
        sha256) and ``delivery``: per tracker ``{"state": "delivered", "remote_id": ...}``,
        ``{"state": "pending"}`` or ``{"state": "refused", "error": ...}``."""
        return await self._on_loop(self._list_artifacts(job_id))

    async def download_artifact(
        self,
        artifact_id: str,
        target_dir: str | os.PathLike[str] = ".",
        *,
        tracker: str | None = None,
    ) -> Path:
        """Download an artifact into ``target_dir`` (created if missing), checksums verified."""
        target = Path(target_dir)
        target.mkdir(parents=True, exist_ok=True)
        return await self._on_loop(self._download(artifact_id, target.resolve(), tracker))

    async def compare_experiments(
        self, job_ids: Sequence[str], *, tracker: str | None = None
    ) -> dict[str, Any]:
        """``{"runs": [{"id", "name", "state", "config", "summary", "url"}...], "url": ...}``."""
        return await self._on_loop(self._compare(list(job_ids), tracker))

    def get_run_url(self, job_id: str, *, tracker: str | None = None) -> str:
        """Where to look at the run (no I/O, so no ``await``)."""
        return self._run_url(job_id, tracker)

    async def finish(
        self,
        job_id: str,
        exit_code: int = 0,
        *,
        status: JobStatus | str | None = None,
        timeout: float | None = None,
    ) -> DeliveryReport:
        """End the run: deliver every record, then mark it finished (or failed if non-zero).

        ``status`` names the final state instead: ``JobStatus.KILLED`` (``"killed"``) stops
        the run as the backend's stop button does (W&B: ``stopRun``, state ``killed``).
        """
        final = self._final(exit_code, status)
        bound = self._delivery_timeout(timeout)
        return await self._on_loop(self._engine.finish(job_id, final, bound), bound + _GRACE)

    async def cancel_job(self, job_id: str, *, timeout: float | None = None) -> DeliveryReport:
        """End the run as the reference document does ("Mark as finished"): deliver every
        record, then state ``FINISHED``. Kill a run with ``finish(job_id, status="killed")``.
        """
        bound = self._delivery_timeout(timeout)
        return await self._on_loop(
            self._engine.finish(job_id, JobStatus.FINISHED, bound), bound + _GRACE
        )

    async def status(self) -> DeliveryReport:
        """Where every tracker's delivery stands, without waiting."""
        if not self._connected:
            return _no_report()
        return await self._on_loop(self._report())

    async def _report(self) -> DeliveryReport:
        return self._engine.report()

    async def disconnect(self, timeout: float | None = None) -> DeliveryReport:
        """Finish open runs, deliver everything (up to ``timeout``, default 30 s), close.

        What could not be delivered stays in the journal; ``trackmux sync`` sends it later.
        """
        return await self._aclose(timeout, JobStatus.FINISHED)

    async def _aclose(self, timeout: float | None, status: JobStatus) -> DeliveryReport:
        wait = self._close_timeout if timeout is None else timeout
        import asyncio

        return await asyncio.to_thread(self._close_blocking, wait, status)


class Tracker(_TrackerBase):
    """Experiment tracking for ordinary (synchronous) training loops.

    ::

        with trackmux.Tracker() as tracker:                 # trackers from the configuration
            run = tracker.submit_job(project_name="demo", learning_rate=3e-4)
            for step in range(1000):
                tracker.log_metrics(run, {"loss": loss}, step=step)

    The same parameters and methods as :class:`AsyncTracker`, without ``await``. It connects
    on first use, so ``Tracker()`` with no arguments works.
    """

    def __enter__(self) -> Tracker:
        self.connect()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        status = JobStatus.FINISHED if exc_type is None else JobStatus.FAILED
        self._close_blocking(self._close_timeout, status)

    def connect(self, credentials: Mapping[str, Any] | None = None) -> None:
        """Connect every configured tracker (see :meth:`AsyncTracker.connect`)."""
        if self._connected:
            return
        self._wait(self._connect(credentials))
        self._after_connect()

    def submit_job(
        self,
        config: TrainingConfig | Mapping[str, Any] | Any | None = None,
        *,
        run_id: str | None = None,
        **fields: Any,
    ) -> str:
        """Create a run on every tracker and return its job id."""
        training = self._config(config, fields)
        self.connect()
        return self._wait(self._engine.submit(training, run_id))

    def log_metrics(
        self, job_id: str, metrics: Mapping[str, Any], step: int | None = None
    ) -> None:
        """Record ``metrics`` at ``step``; returns at once (as
        :meth:`AsyncTracker.log_metrics`)."""
        self._engine.log(job_id, metrics, step)

    def update_config(self, job_id: str, values: Mapping[str, Any]) -> None:
        """Add or change entries of a started run's config (see
        :meth:`AsyncTracker.update_config`)."""
        self.connect()
        self._wait(self._engine.update_config(job_id, values))

    def flush(self, timeout: float | None = None) -> DeliveryReport:
        """Send everything logged so far; wait until delivered, at most ``timeout`` seconds
        (default: ``close_timeout``, 30 s). The report says what is still pending."""
        bound = self._delivery_timeout(timeout)
        return self._wait(self._engine.flush(bound), bound + _GRACE)

    def get_job_status(self, job_id: str, *, tracker: str | None = None) -> JobStatus:
        """The run's state on ``tracker`` (the first configured one by default)."""
        self.connect()
        return self._wait(self._job_call("get_job_status", job_id, tracker))  # type: ignore[no-any-return]

    def get_history(self, job_id: str, *, tracker: str | None = None) -> list[dict[str, Any]]:
        """Every row the tracker stored for the run, with ``_step`` and ``_timestamp``."""
        self.connect()
        return self._wait(self._job_call("get_history", job_id, tracker))  # type: ignore[no-any-return]

    def upload_artifact(
        self,
        path: str | os.PathLike[str],
        metadata: Mapping[str, Any] | None = None,
        *,
        job_id: str | None = None,
        copy: bool = True,
        wait: bool = False,
        timeout: float | None = None,
    ) -> str:
        """Journal a file or directory as one artifact; return its id once the bytes are
        safe (see :meth:`AsyncTracker.upload_artifact`)."""
        job, target, spec = self._artifact(path, metadata, job_id)
        entry = self._engine.store_artifact(target, spec, copy=copy)
        bound = None if timeout is None else timeout + _GRACE
        return self._wait(self._add_artifact(job, entry, wait, timeout), bound)

    def list_artifacts(self, job_id: str) -> list[dict[str, Any]]:
        """The run's artifacts and their delivery per tracker (see
        :meth:`AsyncTracker.list_artifacts`)."""
        return self._wait(self._list_artifacts(job_id))

    def download_artifact(
        self,
        artifact_id: str,
        target_dir: str | os.PathLike[str] = ".",
        *,
        tracker: str | None = None,
    ) -> Path:
        """Download an artifact into ``target_dir``, checksums verified."""
        self.connect()
        target = Path(target_dir)
        target.mkdir(parents=True, exist_ok=True)
        return self._wait(self._download(artifact_id, target.resolve(), tracker))

    def compare_experiments(
        self, job_ids: Sequence[str], *, tracker: str | None = None
    ) -> dict[str, Any]:
        """``{"runs": [{"id", "name", "state", "config", "summary", "url"}...], "url": ...}``."""
        self.connect()
        return self._wait(self._compare(list(job_ids), tracker))

    def get_run_url(self, job_id: str, *, tracker: str | None = None) -> str:
        """Where to look at the run."""
        self.connect()
        return self._run_url(job_id, tracker)

    def finish(
        self,
        job_id: str,
        exit_code: int = 0,
        *,
        status: JobStatus | str | None = None,
        timeout: float | None = None,
    ) -> DeliveryReport:
        """End the run: deliver every record, then mark it finished (or failed if non-zero);
        ``status`` names the final state instead (see :meth:`AsyncTracker.finish`)."""
        final = self._final(exit_code, status)
        bound = self._delivery_timeout(timeout)
        return self._wait(self._engine.finish(job_id, final, bound), bound + _GRACE)

    def cancel_job(self, job_id: str, *, timeout: float | None = None) -> DeliveryReport:
        """End the run as finished after delivering every record (the reference document's
        "Mark as finished"); kill it with ``finish(job_id, status="killed")``."""
        bound = self._delivery_timeout(timeout)
        return self._wait(self._engine.finish(job_id, JobStatus.FINISHED, bound), bound + _GRACE)

    def status(self) -> DeliveryReport:
        """Where every tracker's delivery stands, without waiting."""
        if not self._connected:
            return _no_report()
        return self._wait(self._report())

    async def _report(self) -> DeliveryReport:
        return self._engine.report()

    def disconnect(self, timeout: float | None = None) -> DeliveryReport:
        """Finish open runs, deliver everything (up to ``timeout``, default 30 s), close."""
        return self._close_blocking(
            self._close_timeout if timeout is None else timeout, JobStatus.FINISHED
        )


def _delivered_id(journal_root: Path, artifact_id: str, tracker: str) -> str:
    """The id ``tracker`` gave a journaled artifact of a run not active in this session."""
    from ._journal import RunJournal

    parsed = parse_artifact_id(artifact_id)
    assert parsed is not None
    try:
        journal = RunJournal.peek(journal_root, parsed[0])
    except LookupError:
        return artifact_id  # not ours: the tracker's own id
    mark = journal.artifact_marks(tracker).get(parsed[1])
    if mark is None:
        from ._hints import sync_command

        raise RuntimeError(
            f"artifact {artifact_id!r} is not delivered to {tracker!r} yet; this delivers "
            f"it: {sync_command(journal_root.parent, tracker, parsed[0])}"
        )
    return str(mark["remote_id"])
