"""Lightning: a ``Logger`` that sends a ``Trainer``'s hyperparameters, metrics and
checkpoints to trackmux.

::

    from lightning.pytorch import Trainer
    from trackmux.integrations.lightning import TrackmuxLogger

    trainer = Trainer(logger=TrackmuxLogger(project="my-project", log_model=True))
    trainer.fit(model, datamodule)

Like ``WandbLogger``: ``log_hyperparams`` updates the run's config (also after the run
started: the config changes on every tracker), ``log_metrics`` logs at the trainer's global
step, and with ``log_model=True`` the checkpoints of ``ModelCheckpoint`` are stored as
artifacts (type ``model``) when training ends, or as each is saved with ``log_model="all"``
(or ``save_top_k=-1``). Only global rank 0 starts a run or logs. The run stays open after
``fit`` (a ``test`` may follow); it ends with ``trackmux.finish()`` or at interpreter exit.
"""

from __future__ import annotations

from argparse import Namespace
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lightning.fabric.utilities.logger import (
    _add_prefix,
    _convert_params,
    _sanitize_callable_params,
)
from lightning.pytorch.loggers.logger import Logger, rank_zero_experiment
from lightning.pytorch.loggers.utilities import _scan_checkpoints
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from ._common import storable, use_run

__all__ = ["TrackmuxLogger"]


class TrackmuxLogger(Logger):  # type: ignore[misc]
    """Logs a Lightning ``Trainer`` to trackmux (see the module docstring).

    :param project: the project (``logger.name``); by default the trackers' own setting.
    :param name: the run's name.
    :param version: the run's id (resumed if it is in the journal); ``logger.version``.
    :param log_model: ``False``, ``True`` (checkpoints when training ends) or ``"all"``
        (each checkpoint as it is saved).
    :param prefix: put before every metric name (``prefix-loss``).
    :param init_kwargs: passed to ``trackmux.init`` when no run is current (``trackers``,
        ``tags``, ``config``...).
    """

    LOGGER_JOIN_CHAR = "-"

    def __init__(self, project: str | None = None, name: str | None = None,
                 version: str | None = None, *, log_model: bool | str = False,
                 prefix: str = "", **init_kwargs: Any) -> None:
        super().__init__()
        if log_model not in (False, True, "all"):
            raise ValueError(f"log_model must be False, True or 'all', got {log_model!r}")
        self._project = project
        self._name = name
        self._id = version
        self._log_model = log_model
        self._prefix = prefix
        self._init_kwargs = init_kwargs
        self._run: Any = None
        self._logged_model_time: dict[str, float] = {}
        self._checkpoint_callbacks: dict[int, Any] = {}

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        """The ``trackmux.Run`` this logger writes to (started on first use, rank 0 only)."""
        if self._run is None or self._run._finished:
            self._run = use_run(project=self._project, name=self._name, id=self._id,
                                **self._init_kwargs)
        return self._run

    @property
    def name(self) -> str | None:
        """The project."""
        return self._project

    @property
    def version(self) -> str | None:
        """The run's id (the one given to the constructor until the run exists)."""
        return self._run.id if self._run is not None else self._id

    @rank_zero_only  # type: ignore[misc]
    def log_hyperparams(self, params: dict[str, Any] | Namespace, *args: Any,
                        **kwargs: Any) -> None:
        """Add ``params`` to the run's config (changed values too: the last call wins)."""
        values: dict[str, Any] = _sanitize_callable_params(_convert_params(params))
        self.experiment.config.update(storable(values, "lightning"), allow_val_change=True)

    @rank_zero_only  # type: ignore[misc]
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Log ``metrics`` at the trainer's global ``step``."""
        metrics = _add_prefix(dict(metrics), self._prefix, self.LOGGER_JOIN_CHAR)
        self.experiment.log(metrics, step=step)

    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        """Store checkpoints now (``log_model="all"``) or remember them for the end."""
        if self._log_model == "all" or (
                self._log_model is True and getattr(checkpoint_callback, "save_top_k", 0) == -1):
            self._log_checkpoints(checkpoint_callback)
        elif self._log_model is True:
            self._checkpoint_callbacks[id(checkpoint_callback)] = checkpoint_callback

    @rank_zero_only  # type: ignore[misc]
    def finalize(self, status: str) -> None:
        """On success, store the checkpoints remembered with ``log_model=True``."""
        if status != "success" or self._run is None:
            return
        for checkpoint_callback in self._checkpoint_callbacks.values():
            self._log_checkpoints(checkpoint_callback)

    @rank_zero_only  # type: ignore[misc]
    def _log_checkpoints(self, checkpoint_callback: Any) -> None:
        for mtime, path, score, tag in _scan_checkpoints(checkpoint_callback,
                                                          self._logged_model_time):
            metadata = {
                "score": score.item() if hasattr(score, "item") else score,
                "tag": tag,
                "best": path == getattr(checkpoint_callback, "best_model_path", None),
                "original_filename": Path(path).name,
                "monitor": getattr(checkpoint_callback, "monitor", None),
            }
            self.experiment.log_artifact(path, name=f"model-{self.experiment.id}",
                                         type="model", metadata=metadata)
            self._logged_model_time[path] = mtime
