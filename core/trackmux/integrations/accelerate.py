"""Accelerate: a ``GeneralTracker`` for ``Accelerator(log_with=...)``.

::

    from accelerate import Accelerator
    from trackmux.integrations.accelerate import TrackmuxTracker

    accelerator = Accelerator(log_with=[TrackmuxTracker("my-project")])
    accelerator.init_trackers("my-project", config={"lr": 3e-4})
    ...
    accelerator.log({"loss": loss.item()}, step=step)
    accelerator.end_training()

``init_trackers`` starts (or joins) the run; ``store_init_configuration`` updates its config;
``accelerator.log`` logs at ``step``; ``end_training`` finishes the run. Everything happens on
the main process only (``main_process_only``): the other processes create no run.
"""

from __future__ import annotations

from typing import Any

from accelerate.tracking import GeneralTracker, on_main_process

from ._common import storable, use_run

__all__ = ["TrackmuxTracker"]


class TrackmuxTracker(GeneralTracker):  # type: ignore[misc]
    """Accelerate's tracker interface over ``trackmux.init`` (see the module docstring).

    :param run_name: the project (Accelerate passes ``init_trackers``' project name here).
    :param init_kwargs: passed to ``trackmux.init`` (``trackers``, ``name``, ``tags``...).
    """

    name = "trackmux"
    requires_logging_directory = False
    main_process_only = True

    def __init__(self, run_name: str | None = None, **init_kwargs: Any) -> None:
        super().__init__()
        self.run_name = run_name
        self.init_kwargs = init_kwargs
        self.run: Any = None

    @on_main_process  # type: ignore[misc]
    def start(self) -> None:
        """Start (or join) the run."""
        self.run = use_run(project=self.run_name, **self.init_kwargs)

    @property
    def tracker(self) -> Any:
        """The ``trackmux.Run`` (``None`` on other processes)."""
        return self.run

    @on_main_process  # type: ignore[misc]
    def store_init_configuration(self, values: dict[str, Any]) -> None:
        """Add ``values`` to the run's config."""
        self.run.config.update(storable(values, "accelerate"), allow_val_change=True)

    @on_main_process  # type: ignore[misc]
    def log(self, values: dict[str, Any], step: int | None = None, **kwargs: Any) -> None:
        """Log ``values`` (numbers; nested dicts flatten with ``/``) at ``step``."""
        self.run.log(values, step=step)

    @on_main_process  # type: ignore[misc]
    def finish(self) -> None:
        """Finish the run: deliver what was logged, mark it finished."""
        if self.run is not None:
            self.run.finish()
