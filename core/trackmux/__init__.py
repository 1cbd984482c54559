"""trackmux: one Python API for ML experiment tracking over many backends.

A training loop creates a run, logs metrics and uploads artifacts once; the configuration
decides where they go (the offline tracker by default, W&B, or any installed plugin)::

    import trackmux

    with trackmux.Tracker() as tracker:
        run = tracker.submit_job(project_name="demo", learning_rate=3e-4)
        for step in range(100):
            tracker.log_metrics(run, {"loss": 1 / (step + 1)}, step=step)
"""

from trackmux_spec import (
    ArtifactSpec,
    Comparison,
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

from ._api import AsyncTracker, Tracker
from ._config import Settings, load_settings
from ._current_run import Config, Run, Summary, finish, init, log, log_artifact
from ._engine import DeliveryReport, TrackerStatus
from ._plugins import get_plugin_manager
from ._report import report
from ._sync import RunSync, SyncReport, sync

__version__ = "0.1.0"

__all__ = [
    "ArtifactSpec",
    "AsyncTracker",
    "Comparison",
    "Config",
    "DeliveryError",
    "DeliveryReport",
    "JobStatus",
    "PermanentError",
    "PluginLoadError",
    "RetryableError",
    "Run",
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


def __getattr__(name: str) -> object:
    # wandb's module attributes: the current run (None before init), its config and summary
    if name in ("run", "config", "summary"):
        from ._current_run import current_run

        run = current_run()
        if name == "run" or run is None:
            return run
        return run.config if name == "config" else run.summary
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
