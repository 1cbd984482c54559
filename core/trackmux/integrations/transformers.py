"""Hugging Face Transformers: a ``TrainerCallback`` that logs a ``Trainer`` run to trackmux.

::

    from trackmux.integrations.transformers import TrackmuxCallback

    trainer = Trainer(model=model, args=TrainingArguments(..., report_to="none"),
                      callbacks=[TrackmuxCallback(project="my-project")])
    trainer.train()

What it records, as ``report_to="wandb"`` does:

* **config**, when training begins: the model's config, then the ``TrainingArguments``
  (``args.to_dict()``; an argument wins over a model key of the same name) and
  ``model/num_parameters``, through ``run.config.update`` (so a run started earlier with
  ``trackmux.init`` gets them too);
* **metrics** at ``state.global_step``: training logs as ``train/<name>``, evaluation as
  ``eval/<name>``, prediction as ``test/<name>`` (W&B shows one row per step);
* **checkpoints** as artifacts (type ``model``) when ``log_checkpoints="checkpoint"`` (every
  save) or ``"end"`` (the final model, saved with ``save_pretrained``).

Only the world's main process (``state.is_world_process_zero``) starts a run or logs. The
run stays open after ``train()`` (an ``evaluate()`` may follow); it ends with
``trackmux.finish()`` or at interpreter exit.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from transformers import TrainerCallback

from ._common import numeric, storable, use_run

__all__ = ["TrackmuxCallback"]

_CHECKPOINTS = (False, "checkpoint", "end")


def _rewrite(logs: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in logs.items():
        if key.startswith("eval_"):
            out["eval/" + key[5:]] = value
        elif key.startswith("test_"):
            out["test/" + key[5:]] = value
        else:
            out["train/" + key] = value
    return out


class TrackmuxCallback(TrainerCallback):  # type: ignore[misc]
    """Logs a ``Trainer`` run to trackmux (see the module docstring).

    :param project: the project; by default the trackers' own setting.
    :param log_checkpoints: ``False``, ``"checkpoint"`` (each saved checkpoint directory) or
        ``"end"`` (the final model).
    :param init_kwargs: passed to ``trackmux.init`` when no run is current (``trackers``,
        ``tags``, ``group``...); the run's name defaults to ``args.run_name``.
    """

    def __init__(self, project: str | None = None, *, log_checkpoints: bool | str = False,
                 **init_kwargs: Any) -> None:
        if log_checkpoints is True:
            log_checkpoints = "end"
        if log_checkpoints not in _CHECKPOINTS:
            raise ValueError(f"log_checkpoints must be False, 'checkpoint' or 'end', "
                             f"got {log_checkpoints!r}")
        self.project = project
        self.log_checkpoints = log_checkpoints
        self.init_kwargs = init_kwargs
        self.run: Any = None

    def _setup(self, args: Any, state: Any, model: Any) -> None:
        if not state.is_world_process_zero:
            return
        kwargs = {"project": self.project, **self.init_kwargs}
        if args.run_name is not None and args.run_name != args.output_dir:
            kwargs.setdefault("name", args.run_name)
        self.run = use_run(**kwargs)
        combined: dict[str, Any] = {}
        config = getattr(model, "config", None)
        if config is not None:
            combined.update(config if isinstance(config, dict) else config.to_dict())
        combined.update(args.to_dict())
        num_parameters = getattr(model, "num_parameters", None)
        if callable(num_parameters):
            combined["model/num_parameters"] = num_parameters()
        self.run.config.update(storable(combined, "transformers"), allow_val_change=True)

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None,
                       **kwargs: Any) -> None:
        """Start (or join) the run and record the config."""
        if self.run is None or self.run._finished:
            self._setup(args, state, model)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None,
               model: Any = None, **kwargs: Any) -> None:
        """Log the Trainer's numbers at the global step."""
        if not state.is_world_process_zero or not logs:
            return
        if self.run is None:
            self._setup(args, state, model)
        values = numeric(_rewrite(logs))
        if values:
            self.run.log(values, step=state.global_step)

    def on_predict(self, args: Any, state: Any, control: Any, metrics: dict[str, Any],
                   **kwargs: Any) -> None:
        """Log ``predict()``'s metrics (``test/<name>``) at the global step."""
        self.on_log(args, state, control, logs=metrics, **kwargs)

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """With ``log_checkpoints="checkpoint"``: store the saved checkpoint directory."""
        if self.log_checkpoints != "checkpoint" or self.run is None:
            return
        if not state.is_world_process_zero:
            return
        folder = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
        if os.path.isdir(folder):
            self.run.log_artifact(
                folder, name=f"checkpoint-{self.run.id}", type="model",
                metadata={"global_step": state.global_step, "epoch": state.epoch})

    def on_train_end(self, args: Any, state: Any, control: Any, model: Any = None,
                     **kwargs: Any) -> None:
        """With ``log_checkpoints="end"``: store the final model."""
        if self.run is None or not state.is_world_process_zero:
            return
        if self.log_checkpoints == "end" and model is not None:
            with tempfile.TemporaryDirectory() as folder:
                model.save_pretrained(folder)
                self.run.log_artifact(
                    folder, name=f"model-{self.run.id}", type="model",
                    metadata={"global_step": state.global_step, "final_model": True})
