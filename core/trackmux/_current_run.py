"""The module-level API for scripts and notebooks: ``trackmux.init``, ``log``, ``finish``.

::

    import trackmux

    run = trackmux.init(project="mnist", config={"lr": 3e-4, "batch_size": 64})
    for step, batch in enumerate(loader):
        trackmux.log({"loss": train_step(batch)}, step=step)
    run.config.update({"best_epoch": 7})
    trackmux.finish()

The names mirror ``wandb``'s where they mean the same (see docs/module-api.md for exactly
which parts of wandb's API are covered). Underneath is one :class:`~trackmux.Tracker` per
process, shared by every run ``init`` starts, so its guarantees hold unchanged: the journal,
background delivery, ``trackmux sync``, rank handling, and what happens at interpreter exit
(the current run is finished, failed if an uncaught exception ended the script) and in a
forked child (lifecycle of :class:`~trackmux.Tracker`; the child does not see the parent's
current run: ``trackmux.run`` is ``None`` there until it calls ``init``).

Every call is synchronous and never needs the caller's event loop, so the API works in a
notebook whose loop is running.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from trackmux_spec import TrainingConfig

from ._api import Tracker
from ._engine import DeliveryReport, merged_config
from ._journal import RunJournal
from ._metrics import normalize_metrics

__all__ = ["Config", "Run", "Summary", "current_run", "finish", "init", "log", "log_artifact"]

_REINIT = ("finish_previous", "return_previous")
_RESUME = ("allow", "must", "never")


class _State:
    """The process's one tracker and current run."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.tracker: Tracker | None = None
        self.key: tuple[Any, ...] | None = None
        self.run: Run | None = None
        self.failed = False
        self.hooked = False
        self.pid = os.getpid()
        #: in a forked child: the parent's pid and the run it had, for the error message
        self.parent: tuple[int, str] | None = None


_STATE = _State()


def _forget_in_child() -> None:
    # The parent's tracker and run belong to the parent; the child starts with none.
    global _STATE
    parent = _STATE
    _STATE = _State()
    if parent.run is not None:
        _STATE.parent = (parent.pid, parent.run.id)


os.register_at_fork(after_in_child=_forget_in_child)


def _excepthook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
    _STATE.failed = True
    _previous_excepthook(kind, value, tb)


_previous_excepthook = sys.excepthook


def _finish_at_exit() -> None:
    state = _STATE
    run = state.run
    if run is not None and state.pid == os.getpid() and not run._finished:
        # the final state only (and a held row): the Tracker's own exit hook, which runs
        # next, delivers everything within its one deadline
        try:
            run.finish(exit_code=1 if state.failed else 0, timeout=0)
        except Exception:  # that hook still finishes the run and delivers what it can
            pass


def _install_hooks(state: _State) -> None:
    global _previous_excepthook
    if state.hooked:
        return
    state.hooked = True
    # registered after trackmux._lifecycle's hook, so it runs first (last in, first out):
    # the run is finished (or failed) before the tracker closes
    atexit.register(_finish_at_exit)
    if sys.excepthook is not _excepthook:
        _previous_excepthook = sys.excepthook
        sys.excepthook = _excepthook


class Config(MutableMapping[str, Any]):
    """``run.config``: the run's configuration, a mapping with attribute access (as wandb's).

    Setting or updating entries after the run started works as in wandb: the change is
    journaled and every tracker gets the merged config. Changing the value of an existing
    key raises :class:`ValueError` unless ``allow_val_change=True`` (wandb's rule).
    """

    def __init__(self, run: Run) -> None:
        object.__setattr__(self, "_run", run)

    # -- reading --------------------------------------------------------------------------

    def _items(self) -> dict[str, Any]:
        return self._run._training_config().hyperparameters()

    def __getitem__(self, key: str) -> Any:
        return self._items()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items())

    def __len__(self) -> int:
        return len(self._items())

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_"):
            raise AttributeError(key)
        try:
            return self._items()[key]
        except KeyError:
            raise AttributeError(f"config has no key {key!r}") from None

    def __repr__(self) -> str:
        return f"Config({self._items()!r})"

    def as_dict(self) -> dict[str, Any]:
        """A copy of the config as a plain dict."""
        return self._items()

    # -- changing -------------------------------------------------------------------------

    def __setitem__(self, key: str, value: Any) -> None:
        self.update({key: value})

    def __setattr__(self, key: str, value: Any) -> None:
        self.update({key: value})

    def __delitem__(self, key: str) -> None:
        raise TypeError(f"config entries cannot be removed (key {key!r}); set a new value")

    def update(  # type: ignore[override]
        self,
        values: Mapping[str, Any] | Any = None,
        allow_val_change: bool = False,
        **kwargs: Any,
    ) -> None:
        """Add entries (or change them, with ``allow_val_change=True``); every tracker gets
        the merged config.

        ``values`` is a mapping, a dataclass, an ``argparse.Namespace``... (what a run's
        config accepts); keyword arguments are entries too.

        :raises ValueError: a key would change value without ``allow_val_change``.
        """
        changes = _as_mapping(values)
        changes.update(kwargs)
        if not changes:
            return
        self._run._update_config(changes, allow_val_change)

    def setdefaults(self, values: Mapping[str, Any]) -> None:
        """Add the entries of ``values`` whose keys the config does not hold yet."""
        current = self._items()
        missing = {k: v for k, v in _as_mapping(values).items() if k not in current}
        if missing:
            self._run._update_config(missing, False)


class Summary(Mapping[str, Any]):
    """``run.summary``: the last value logged for every metric, in this process.

    Read-only: the trackers compute their own summaries from the metrics (W&B's is the last
    value of each key, as here). To record a value that is not a time series, log it or put
    it in the config.
    """

    def __init__(self) -> None:
        self._values: dict[str, float | int] = {}

    def __getitem__(self, key: str) -> float | int:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __setitem__(self, key: str, value: Any) -> None:
        raise TypeError(
            f"run.summary is read-only (key {key!r}): it holds the last value logged for each "
            f"metric; log the value with trackmux.log or put it in run.config"
        )

    def __repr__(self) -> str:
        return f"Summary({self._values!r})"


class Run:
    """The run :func:`init` started: ``id``, ``name``, ``project``, ``config``, ``summary``,
    ``url``, and ``log``, ``log_artifact``, ``finish``. A context manager: leaving the
    ``with`` block finishes it (failed if an exception escaped)."""

    def __init__(self, tracker: Tracker, run_id: str, config: TrainingConfig) -> None:
        self._tracker = tracker
        self._engine = tracker._engine
        self._log = self._engine.log
        self.id = run_id
        self.name = config.name
        self.project = config.project_name
        self.tags = tuple(config.tags)
        self.notes = config.notes
        self.group = config.group
        self.job_type = config.job_type
        self._config = Config(self)
        self._summary = Summary()
        self._pending: dict[str, Any] | None = None
        self._pending_step: int | None = None
        self._finished = False

    def __repr__(self) -> str:
        state = "finished" if self._finished else "running"
        return f"<trackmux.Run id={self.id!r} name={self.name!r} {state}>"

    # -- what the run is ------------------------------------------------------------------

    @property
    def config(self) -> Config:
        """The run's configuration (see :class:`Config`)."""
        return self._config

    @property
    def summary(self) -> Summary:
        """The last value logged for every metric (see :class:`Summary`)."""
        return self._summary

    @property
    def url(self) -> str:
        """Where to look at the run: the first configured tracker's URL."""
        return self._tracker.get_run_url(self.id)

    @property
    def urls(self) -> dict[str, str]:
        """Every tracker's URL of the run, by tracker name."""
        return {name: self._tracker.get_run_url(self.id, tracker=name)
                for name in self._tracker.trackers}

    def get_url(self) -> str:
        """The same as :attr:`url` (wandb's method)."""
        return self.url

    @property
    def tracker(self) -> Tracker:
        """The :class:`~trackmux.Tracker` underneath (one per process)."""
        return self._tracker

    def _training_config(self) -> TrainingConfig:
        return self._engine.runs[self.id].config  # type: ignore[no-any-return]

    def _update_config(self, changes: Mapping[str, Any], allow_val_change: bool) -> None:
        if not allow_val_change:
            current = self._training_config()
            before = current.hyperparameters()
            after = merged_config(current, changes).hyperparameters()
            changed = [k for k in changes if k in before and before[k] != after[k]]
            if changed:
                key = changed[0]
                raise ValueError(
                    f"config key {key!r} would change from {before[key]!r} to {after[key]!r}; "
                    f"pass allow_val_change=True to change it"
                )
        self._tracker.update_config(self.id, changes)

    # -- logging --------------------------------------------------------------------------

    def log(self, data: Mapping[str, Any], step: int | None = None,
            commit: bool | None = None) -> None:
        """Record ``data`` (metric names to numbers; nested dicts flatten with ``/``) at
        ``step`` (the last step + 1 if omitted). Returns at once: delivery is in the
        background.

        ``commit=False`` holds the values and merges them into the next call's row (as
        wandb's); a held row whose step differs from the next call's is logged first.
        """
        if commit is False or self._pending is not None:
            self._log_held(data, step, commit)
            return
        values = normalize_metrics(data)
        self._log(self.id, values, step)
        self._summary._values.update(values)

    def _log_held(self, data: Mapping[str, Any], step: int | None, commit: bool | None) -> None:
        values = normalize_metrics(data)
        if self._pending is not None and step is not None and step != self._pending_step:
            self._commit_held()
        if self._pending is None:
            self._pending, self._pending_step = {}, step
        self._pending.update(values)
        if step is not None:
            self._pending_step = step
        if commit is not False:
            self._commit_held()

    def _commit_held(self) -> None:
        held, step = self._pending, self._pending_step
        self._pending = self._pending_step = None
        if held:
            self._log(self.id, held, step)
            self._summary._values.update(held)

    def log_artifact(
        self,
        path: str | os.PathLike[str],
        name: str | None = None,
        type: str | None = None,
        description: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> str:
        """Store a file or a directory as one artifact of the run, on every tracker: the
        bytes are copied at once, the upload happens in the background (see
        :meth:`trackmux.Tracker.upload_artifact`).

        :returns: the artifact's id, ``<run id>:<name>:<index>``.
        :raises FileNotFoundError: ``path`` does not exist.
        """
        meta = dict(metadata or {})
        meta.update({"name": name or Path(path).name, "type": type or "artifact"})
        if description is not None:
            meta["description"] = description
        return self._tracker.upload_artifact(path, meta, job_id=self.id)

    def finish(self, exit_code: int | None = None, timeout: float | None = None
               ) -> DeliveryReport:
        """End the run: deliver what was logged (up to ``timeout`` seconds, default 30),
        then mark it finished, or failed for a non-zero ``exit_code``. A second call does
        nothing."""
        with _STATE.lock:
            if self._finished:
                return DeliveryReport()
            self._finished = True
            if _STATE.run is self:
                _STATE.run = None
        if self._pending is not None:
            self._commit_held()
        wait = self._tracker._close_timeout if timeout is None else timeout
        return self._tracker.finish(self.id, exit_code or 0, timeout=wait)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
        self.finish(exit_code=0 if kind is None else 1)


def _as_mapping(values: Any) -> dict[str, Any]:
    """Config entries as the run's config stores them (``TrainingConfig.extra``'s rules)."""
    if values is None:
        return {}
    if isinstance(values, TrainingConfig):
        return values.hyperparameters()
    return dict(TrainingConfig(extra=values).extra)


def init(
    project: str | None = None,
    *,
    config: Mapping[str, Any] | Any = None,
    name: str | None = None,
    tags: Sequence[str] | None = None,
    notes: str | None = None,
    group: str | None = None,
    job_type: str | None = None,
    id: str | None = None,
    resume: bool | str | None = None,
    reinit: str = "finish_previous",
    trackers: Sequence[str] | str | None = None,
    dir: str | os.PathLike[str] | None = None,
    settings: Mapping[str, Mapping[str, Any]] | None = None,
    ranks: str | None = None,
) -> Run:
    """Start a run and make it the current one (``trackmux.run``).

    :param project: the project (W&B project, MLflow experiment); else the tracker's own
        setting (``WANDB_PROJECT``...).
    :param config: the run's configuration: a mapping, a dataclass, an ``argparse.Namespace``
        (every key a config entry, as in wandb).
    :param name, tags, notes, group, job_type: the run's metadata.
    :param id: a run id of your own; a run with that id in the journal is resumed.
    :param resume: with ``id``: ``"allow"``/``True``/``None`` resume it if it exists,
        ``"must"`` fail if it does not, ``"never"`` fail if it does.
    :param reinit: when a run is current: ``"finish_previous"`` (finish it, start a new
        one) or ``"return_previous"`` (return it).
    :param trackers, dir, settings, ranks: as :class:`~trackmux.Tracker`'s ``trackers``,
        ``data_dir``, ``settings`` and ``ranks``; by default the configuration decides.
    """
    if reinit not in _REINIT:
        raise ValueError(f"reinit must be one of {', '.join(_REINIT)}, got {reinit!r}")
    resume_mode = _resume_mode(resume, id)
    training = TrainingConfig(
        project_name=project, name=name, tags=tuple(tags or ()), notes=notes, group=group,
        job_type=job_type, extra=_as_mapping(config),
    )
    with _STATE.lock:
        state = _STATE
        if state.run is not None:
            if reinit == "return_previous":
                return state.run
            state.run.finish()
        tracker = _tracker_for(state, trackers, dir, settings, ranks, id)
        if id is not None and resume_mode != "allow":
            _check_resume(tracker, id, resume_mode)
        run_id = tracker.submit_job(training, run_id=id)
        run = Run(tracker, run_id, training)
        state.run = run
        _install_hooks(state)
        return run


def _resume_mode(resume: bool | str | None, run_id: str | None) -> str:
    if resume is None or resume is True:
        return "allow"
    if resume is False:
        return "never" if run_id is not None else "allow"
    if resume not in _RESUME:
        raise ValueError(f"resume must be one of {', '.join(_RESUME)}, True or False, "
                         f"got {resume!r}")
    if resume != "allow" and run_id is None:
        raise ValueError(f"resume={resume!r} needs the run's id: pass id=...")
    return resume


def _check_resume(tracker: Tracker, run_id: str, mode: str) -> None:
    try:
        RunJournal.peek(tracker.settings.data_dir / "journal", run_id)
        exists = True
    except LookupError:
        exists = False
    if mode == "must" and not exists:
        raise ValueError(f"resume='must' but there is no run {run_id!r} in the journal at "
                         f"{tracker.settings.data_dir}")
    if mode == "never" and exists:
        raise ValueError(f"resume='never' but run {run_id!r} already exists in the journal at "
                         f"{tracker.settings.data_dir}")


def _tracker_for(state: _State, trackers: Any, data_dir: Any, settings: Any,
                 ranks: Any, run_id: str | None) -> Tracker:
    key = (trackers if isinstance(trackers, str | None) else tuple(trackers),
           None if data_dir is None else str(data_dir), settings, ranks)
    if state.tracker is not None and not state.tracker._closed:
        if state.key == key and run_id not in state.tracker._engine.runs:
            return state.tracker
        # other settings, or a run of this session resumed by id: a fresh engine
        state.tracker.disconnect()
    state.tracker = Tracker(trackers, data_dir=data_dir, settings=settings, ranks=ranks)
    state.key = key
    state.tracker.connect()
    return state.tracker


def current_run() -> Run | None:
    """The run :func:`init` started and that is not finished, or ``None``."""
    return _STATE.run


def _require_run(what: str) -> Run:
    run = _STATE.run
    if run is None and _STATE.parent is not None:
        pid, run_id = _STATE.parent
        raise RuntimeError(
            f"trackmux.{what}() in a forked child (pid {os.getpid()}): run {run_id!r} "
            f"belongs to the parent process (pid {pid}), which logs it. Send the values to "
            f"the parent (a DataLoader worker: return them with the batch), or call "
            f"trackmux.init() here for a run of this process's own"
        )
    if run is None:
        raise RuntimeError(f"trackmux.{what}() needs a run: call trackmux.init() first")
    return run


def log(data: Mapping[str, Any], step: int | None = None, commit: bool | None = None) -> None:
    """Log to the current run (see :meth:`Run.log`)."""
    run = _STATE.run
    if run is None:
        _require_run("log")
    else:
        run.log(data, step, commit)


def log_artifact(
    path: str | os.PathLike[str],
    name: str | None = None,
    type: str | None = None,
    description: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> str:
    """Store a file or directory as an artifact of the current run (see
    :meth:`Run.log_artifact`)."""
    return _require_run("log_artifact").log_artifact(path, name, type, description, metadata)


def finish(exit_code: int | None = None, timeout: float | None = None) -> DeliveryReport:
    """Finish the current run (see :meth:`Run.finish`); nothing if there is none."""
    run = _STATE.run
    if run is None:
        return DeliveryReport()
    return run.finish(exit_code, timeout)
