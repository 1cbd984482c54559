"""trackmux: one Python API for ML experiment tracking over many backends.

A training loop creates a run, logs metrics and uploads artifacts once; the configuration
decides where they go (the offline tracker by default, W&B, or any installed plugin)::

    import trackmux

    with trackmux.Tracker() as tracker:
        run = tracker.submit_job(project_name="demo", learning_rate=3e-4)
        for step in range(100):
            tracker.log_metrics(run, {"loss": 1 / (step + 1)}, step=step)
"""

import importlib
from typing import TYPE_CHECKING

from trackmux_spec import (
    ArtifactSpec,
    Comparison,
    DataDirectoryError,
    DeliveryError,
    JobStatus,
    PermanentError,
    PluginLoadError,
    RetryableError,
    RunSummary,
    TrackerClosedError,
    TrackerNotFoundError,
    TrackmuxError,
    TrainingConfig,
    UnknownJobError,
    hookimpl,
)

if TYPE_CHECKING:
    from ._api import AsyncTracker, Tracker
    from ._config import Settings, load_settings
    from ._current_run import Config, Run, Summary, finish, init, log, log_artifact
    from ._engine import DeliveryReport, TrackerStatus
    from ._journal import RunLockedError
    from ._plugins import get_plugin_manager
    from ._report import report
    from ._sync import RunSync, SyncReport, sync

#: Where each public name that is not the contract's lives. They are imported on first use
#: (PEP 562), so ``import trackmux`` costs the contract only: the engine, asyncio, the
#: journal and the plugins load when a tracker is made, entry points when one is selected.
_LAZY = {
    "AsyncTracker": "_api", "Tracker": "_api",
    "Settings": "_config", "load_settings": "_config",
    "Config": "_current_run", "Run": "_current_run", "Summary": "_current_run",
    "finish": "_current_run", "init": "_current_run", "log": "_current_run",
    "log_artifact": "_current_run",
    "DeliveryReport": "_engine", "TrackerStatus": "_engine",
    "RunLockedError": "_journal",
    "get_plugin_manager": "_plugins",
    "report": "_report",
    "RunSync": "_sync", "SyncReport": "_sync", "sync": "_sync",
}

__version__ = "0.1.0"

__all__ = [
    "ArtifactSpec",
    "AsyncTracker",
    "Comparison",
    "Config",
    "DataDirectoryError",
    "DeliveryError",
    "DeliveryReport",
    "JobStatus",
    "PermanentError",
    "PluginLoadError",
    "RetryableError",
    "Run",
    "RunLockedError",
    "RunSummary",
    "RunSync",
    "Settings",
    "Summary",
    "SyncReport",
    "Tracker",
    "TrackerClosedError",
    "TrackerNotFoundError",
    "TrackerStatus",
    "TrackmuxError",
    "TrainingConfig",
    "UnknownJobError",
    "__version__",
    "finish",
    "get_plugin_manager",
    "hookimpl",
    "init",
    "load_settings",
    "log",
    "log_artifact",
    "report",
    "sync",
]


#: wandb's module attributes that trackmux's module API does not provide (docs/module-api.md).
_WANDB_NOT_COVERED = frozenset({
    "Api", "Artifact", "Audio", "Histogram", "Html", "Image", "Molecule", "Object3D",
    "Settings", "Table", "Video", "agent", "alert", "define_metric", "login", "mark_preempting",
    "plot", "restore", "save", "setup", "sweep", "teardown", "unwatch", "use_artifact",
    "watch",
})


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is not None:
        value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
        globals()[name] = value  # the next lookup is an ordinary attribute
        return value
    # wandb's module attributes: the current run (None before init), its config and summary
    if name in ("run", "config", "summary"):
        from ._current_run import current_run

        run = current_run()
        if name == "run" or run is None:
            return run
        return run.config if name == "config" else run.summary
    if name in _WANDB_NOT_COVERED:  # a script moved with ``import trackmux as wandb``
        raise AttributeError(
            f"module {__name__!r} has no attribute {name!r}: trackmux does not cover "
            f"wandb.{name}; docs/module-api.md lists what `import trackmux as wandb` covers"
        )
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
