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
from ._engine import DeliveryReport, TrackerStatus
from ._plugins import get_plugin_manager
from ._sync import RunSync, SyncReport, sync

__version__ = "0.1.0"

__all__ = [
    "ArtifactSpec",
    "AsyncTracker",
    "Comparison",
    "DeliveryError",
    "DeliveryReport",
    "JobStatus",
    "PermanentError",
    "PluginLoadError",
    "RetryableError",
    "RunSummary",
    "RunSync",
    "Settings",
    "SyncReport",
    "Tracker",
    "TrackerClosedError",
    "TrackerNotFoundError",
    "TrackerStatus",
    "TrackmuxError",
    "TrainingConfig",
    "UnknownJobError",
    "__version__",
    "get_plugin_manager",
    "hookimpl",
    "load_settings",
    "sync",
]
