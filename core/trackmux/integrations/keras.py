"""Keras 3: a ``Callback`` that logs ``model.fit`` to trackmux (any backend: torch, JAX,
TensorFlow).

::

    from trackmux.integrations.keras import TrackmuxCallback

    model.fit(x, y, epochs=5, validation_split=0.2,
              callbacks=[TrackmuxCallback(project="my-project", log_every=10)])

Like wandb's ``WandbMetricsLogger``: at the end of each epoch the epoch's logs as
``epoch/<name>`` (``loss``, ``val_loss``, metrics, and ``epoch/learning_rate`` when the
optimizer has one), and every ``log_every`` batches the batch logs as ``batch/<name>``. The
step is the number of training batches seen, so batch and epoch rows share one axis. The
config gets ``epochs``, ``steps`` (per epoch), the optimizer's class name and the model's
parameter count when training begins. The run stays open after ``fit``; it ends with
``trackmux.finish()`` or at interpreter exit.
"""

from __future__ import annotations

from typing import Any

import keras

from ._common import numeric, use_run

__all__ = ["TrackmuxCallback"]


class TrackmuxCallback(keras.callbacks.Callback):  # type: ignore[misc]
    """Logs ``fit`` to trackmux (see the module docstring).

    :param project: the project; by default the trackers' own setting.
    :param log_every: log batch logs every this many batches; ``None``: epochs only.
    :param init_kwargs: passed to ``trackmux.init`` when no run is current.
    """

    def __init__(self, project: str | None = None, *, log_every: int | None = None,
                 **init_kwargs: Any) -> None:
        super().__init__()
        if log_every is not None and (not isinstance(log_every, int) or log_every < 1):
            raise ValueError(f"log_every must be a positive integer or None, got {log_every!r}")
        self.project = project
        self.log_every = log_every
        self.init_kwargs = init_kwargs
        self.run: Any = None
        self.step = 0

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        """Start (or join) the run and record the training parameters."""
        self.run = use_run(project=self.project, **self.init_kwargs)
        params = dict(self.params or {})
        config: dict[str, Any] = {k: params[k] for k in ("epochs", "steps") if k in params}
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None:
            config["optimizer"] = type(optimizer).__name__
        config["model/num_parameters"] = int(self.model.count_params())
        self.run.config.update(config, allow_val_change=True)

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        """Count the batch; every ``log_every`` batches log its logs."""
        self.step += 1
        if self.log_every and logs and self.step % self.log_every == 0:
            values = {f"batch/{k}": v for k, v in numeric(logs).items()}
            if values:
                self.run.log(values, step=self.step)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        """Log the epoch's logs (and the learning rate) at the current step."""
        values = {f"epoch/{k}": v for k, v in numeric(logs or {}).items()}
        values["epoch/epoch"] = epoch
        rate = getattr(getattr(self.model, "optimizer", None), "learning_rate", None)
        if rate is not None and "epoch/learning_rate" not in values:
            try:
                values["epoch/learning_rate"] = float(keras.ops.convert_to_numpy(rate))
            except (TypeError, ValueError):
                pass
        self.run.log(values, step=self.step)
