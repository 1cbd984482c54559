"""Distributed training: which processes send, and what each rank's run is called.

The rank of this process is the first of these environment variables that is set:
``RANK`` (torchrun, Accelerate, DeepSpeed), ``LOCAL_RANK`` (only when ``RANK`` is absent),
``SLURM_PROCID``, ``OMPI_COMM_WORLD_RANK``, ``PMI_RANK``. None set, or ``0``, is the main
process.

Two modes (``ranks=`` argument, ``TRACKMUX_RANKS``, ``ranks`` in the configuration file):

``"main"`` (the default)
    Only the main process sends. On any other rank the tracker is *silent*: it creates no
    run, writes no journal, connects no tracker and sends nothing, while the training
    script's calls keep working (see :class:`SilentEngine` for what each returns).
``"all"``
    Every rank gets its own run. The runs share a group (the config's ``group``, else
    ``TRACKMUX_GROUP``, ``TORCHELASTIC_RUN_ID`` or ``SLURM_JOB_ID``); each run's name is
    suffixed ``rank-N``, its tags include ``rank:N``, and a run id the user chose is
    suffixed ``-rank-N`` so that ranks sharing a data directory do not collide.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import attrs
from attrs import define
from trackmux_spec import (
    Comparison,
    JobStatus,
    TrackerClosedError,
    TrainingConfig,
    UnknownJobError,
)

from ._engine import DeliveryReport, Engine, check_run_id, merged_config, new_run_id
from ._metrics import normalize_metrics, normalize_step
from ._retry import Backoff

__all__ = ["MODES", "RankPolicy", "RankedEngine", "SilentEngine", "detect_rank", "make_engine",
           "parse_mode", "rank_policy"]

logger = logging.getLogger("trackmux")

#: The values of ``ranks``.
MODES = ("main", "all")

#: Environment variables holding the shared id of a distributed job, in order of preference.
GROUP_VARIABLES = ("TRACKMUX_GROUP", "TORCHELASTIC_RUN_ID", "SLURM_JOB_ID")


def parse_mode(value: Any, where: str) -> str:
    """Check a ``ranks`` value (``"main"`` or ``"all"``) read from ``where``."""
    mode = value.strip().lower() if isinstance(value, str) else value
    if mode not in MODES:
        raise ValueError(f"ranks in {where} must be 'main' or 'all', got {value!r}")
    return str(mode)


def detect_rank(environ: Mapping[str, str] | None = None) -> int | None:
    """This process's rank from the launcher's environment, or ``None`` if none is set."""
    env = os.environ if environ is None else environ
    names = ["RANK"] if env.get("RANK", "").strip() else ["LOCAL_RANK"]
    names += ["SLURM_PROCID", "OMPI_COMM_WORLD_RANK", "PMI_RANK"]
    for name in names:
        value = env.get(name, "").strip()
        if value:
            try:
                rank = int(value)
            except ValueError:
                raise ValueError(f"{name}={value!r} is not a process rank (an integer)") from None
            if rank < 0:
                raise ValueError(f"{name}={value!r} is not a process rank (negative)")
            return rank
    return None


@define(frozen=True)
class RankPolicy:
    """What this process does: its rank, the mode, and the group shared by the ranks."""

    mode: str
    rank: int | None
    group: str | None = None

    @property
    def silent(self) -> bool:
        """True on a non-main rank in ``"main"`` mode: nothing is created or sent."""
        return self.mode == "main" and bool(self.rank)

    def adapt(self, config: TrainingConfig,
              run_id: str | None) -> tuple[TrainingConfig, str | None]:
        """The config and run id of this rank's own run (unchanged unless mode ``"all"``)."""
        if self.mode != "all" or self.rank is None:
            return config, run_id
        suffix = f"rank-{self.rank}"
        tag = f"rank:{self.rank}"
        config = attrs.evolve(
            config,
            name=f"{config.name}-{suffix}" if config.name else suffix,
            group=config.group or self.group,
            tags=config.tags if tag in config.tags else (*config.tags, tag),
        )
        return config, None if run_id is None else f"{run_id}-{suffix}"


def rank_policy(mode: str, environ: Mapping[str, str] | None = None) -> RankPolicy:
    """The policy of this process under ``mode`` (``"main"`` or ``"all"``)."""
    env = os.environ if environ is None else environ
    mode = parse_mode(mode, "the ranks argument")
    rank = detect_rank(env)
    group = next((env[name].strip() for name in GROUP_VARIABLES if env.get(name, "").strip()),
                 None)
    if mode == "all" and rank is not None and group is None:
        logger.warning("ranks='all' but no shared group id: set the config's group or "
                       "TRACKMUX_GROUP so that the ranks' runs are grouped")
    return RankPolicy(mode, rank, group)


class RankedEngine(Engine):
    """The engine of one rank in ``"all"`` mode: its runs are named and grouped by rank."""

    def __init__(self, policy: RankPolicy, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.policy = policy

    async def submit(self, config: TrainingConfig, run_id: str | None) -> str:
        """Create this rank's run (see :meth:`RankPolicy.adapt`)."""
        config, run_id = self.policy.adapt(config, run_id)
        return await super().submit(config, run_id)


class _SilentRun:
    """What a silent rank remembers of a run: enough to validate calls."""

    def __init__(self, config: TrainingConfig) -> None:
        self.final_status: JobStatus | None = None
        self.config = config


class _SilentWorker:
    """Stands in for one tracker's worker and hooks on a silent rank."""

    def __init__(self, name: str, engine: SilentEngine) -> None:
        self.name = name
        self.state = "ok"
        self.session: object = None
        self.connected = True
        self.hooks = self
        self._engine = engine

    def check_connected(self) -> None:
        """Always connected: nothing to connect to."""

    def caller(self, hook: str) -> Callable[..., Any]:
        """``get_run_url``: an empty string (there is no run to look at)."""
        return lambda **kwargs: ""

    async def call(self, hook: str, *, session: object = None, **kwargs: Any) -> Any:
        """Answer a hook from what this rank knows, without any tracker."""
        engine = self._engine
        if hook == "get_job_status":
            return engine._run(kwargs["job_id"]).final_status or JobStatus.RUNNING
        if hook == "get_history":
            engine._run(kwargs["job_id"])
            return []
        if hook == "compare":
            return Comparison(runs=[])
        if hook == "upload_artifact":
            return ""
        raise RuntimeError(f"{hook} is not available on rank {engine.rank}: with ranks='main' "
                           f"only the main process talks to the trackers (use ranks='all', "
                           f"or call it on rank 0)")


class SilentEngine:
    """The engine of a non-main rank in ``"main"`` mode: validates calls, sends nothing.

    What the public API's calls do on such a rank:

    * ``connect()``: nothing (credentials are not checked, no tracker is contacted).
    * ``submit_job()``: validates the config and run id, returns a run id; no run is created.
    * ``log_metrics()``: validates the metrics and the step exactly as on the main rank,
      then drops them.
    * ``flush()``, ``finish()``, ``cancel_job()``, ``status()``, ``disconnect()``: an empty,
      fully delivered :class:`~trackmux.DeliveryReport`.
    * ``update_config()``: validates the change, sends nothing.
    * ``get_job_status()``: ``RUNNING``, or the status ``finish()``/``cancel_job()`` set.
    * ``get_history()``: ``[]``; ``compare_experiments()``: no runs; ``get_run_url()`` and
      ``upload_artifact()``: ``""`` (the path is still checked).
    * ``download_artifact()``: ``RuntimeError`` (there is no tracker to download from).
    """

    def __init__(self, trackers: Sequence[str], rank: int) -> None:
        self.rank = rank
        self.runs: dict[str, _SilentRun] = {}
        self.workers = {name: _SilentWorker(name, self) for name in trackers}
        self.backoff = Backoff()
        self._lock = threading.Lock()
        self._closed = False

    async def start(
        self, credentials: Mapping[str, Any] | None, *, retry_unreachable: bool = False
    ) -> None:
        """Nothing to connect."""

    async def submit(self, config: TrainingConfig, run_id: str | None) -> str:
        """A run id for the script to use; nothing is created."""
        self._check_open()
        if run_id is None:
            run_id = new_run_id()
        else:
            check_run_id(run_id)
            if run_id in self.runs:
                raise ValueError(f"run_id {run_id!r} is already active in this session")
        self.runs[run_id] = _SilentRun(config)
        return run_id

    async def update_config(self, run_id: str, values: Mapping[str, Any]) -> None:
        """Validate the change like :meth:`Engine.update_config`; nothing is sent."""
        self._check_open()
        run = self._run(run_id)
        config = merged_config(run.config, values)
        if run.final_status is not None:
            raise ValueError(
                f"run {run_id!r} is {run.final_status.value}; its config can no longer change")
        run.config = config

    def _run(self, run_id: str) -> _SilentRun:
        run = self.runs.get(run_id)
        if run is None:
            raise UnknownJobError(run_id)
        return run

    def _check_open(self) -> None:
        if self._closed:
            raise TrackerClosedError("this tracker is disconnected; create a new one")

    def locks_free(self, timeout: float) -> bool:
        """Whether the lock is free (see :meth:`Engine.locks_free`)."""
        if not self._lock.acquire(timeout=timeout):
            return False
        self._lock.release()
        return True

    def abandon_after_fork(self, reason: str) -> None:
        """In a forked child: a fresh lock; calls go on validating and dropping."""
        self._lock = threading.Lock()

    def log(self, run_id: str, metrics: Any, step: Any = None) -> None:
        """Validate the metrics and the step like :meth:`Engine.log`, then drop the record."""
        normalize_metrics(metrics)
        if step is not None:
            normalize_step(step)
        run = self._run(run_id)
        with self._lock:
            if self._closed:
                raise TrackerClosedError(
                    f"cannot log to run {run_id!r}: the tracker is disconnected")
            if run.final_status is not None:
                raise ValueError(
                    f"run {run_id!r} is {run.final_status.value}; it takes no more metrics")

    async def flush(self, timeout: float | None = None,
                    run_ids: list[str] | None = None) -> DeliveryReport:
        """Nothing to deliver."""
        return self.report()

    async def finish(self, run_id: str, status: JobStatus, timeout: float | None) -> DeliveryReport:
        """Remember the final status (the first one wins)."""
        run = self._run(run_id)
        with self._lock:
            if run.final_status is None:
                run.final_status = status
        return self.report()

    async def close(self, timeout: float | None) -> DeliveryReport:
        """No more calls."""
        self._closed = True
        return self.report()

    def report(self) -> DeliveryReport:
        """Empty: nothing is pending anywhere."""
        return DeliveryReport()

    def store_artifact(self, path: Any, spec: Any, *, copy: bool) -> dict[str, Any]:
        """Nothing is stored (the path was checked by the caller)."""
        return {}

    async def add_artifact(self, run_id: str, entry: dict[str, Any]) -> str:
        """No artifact: ``""``."""
        self._check_open()
        self._run(run_id)
        return ""

    def list_artifacts(self, run_id: str) -> list[dict[str, Any]]:
        """No artifacts on this rank."""
        self._run(run_id)
        return []

    async def wait_artifact(self, artifact_id: str, timeout: float | None,
                            trackers: list[str] | None = None) -> dict[str, str]:
        """Nothing to wait for."""
        return {}

    def worker(self, tracker: str | None) -> _SilentWorker:
        """The stand-in of ``tracker`` (the first configured one if ``None``)."""
        if tracker is None:
            return next(iter(self.workers.values()))
        try:
            return self.workers[tracker]
        except KeyError:
            raise ValueError(f"tracker {tracker!r} is not active in this session; active: "
                             f"{', '.join(self.workers)}") from None

    def job_id_for(self, worker: _SilentWorker, run_id: str) -> str:
        """Run ids are job ids here."""
        return run_id

    async def call(self, tracker: str | None, hook: str, **kwargs: Any) -> Any:
        """Answer ``hook`` as :class:`_SilentWorker` does."""
        self._check_open()
        return await self.worker(tracker).call(hook, **kwargs)


def make_engine(policy: RankPolicy, trackers: Sequence[str], *args: Any,
                **kwargs: Any) -> Engine:
    """The engine this process needs: silent, ranked, or the plain :class:`Engine`.

    ``args`` and ``kwargs`` are :class:`Engine`'s. A :class:`SilentEngine` is typed as an
    :class:`Engine`: it provides the part of the interface the public API uses.
    """
    if policy.silent:
        assert policy.rank is not None
        return cast(Engine, SilentEngine(trackers, policy.rank))
    if policy.mode == "all" and policy.rank is not None:
        return RankedEngine(policy, *args, **kwargs)
    return Engine(*args, **kwargs)
