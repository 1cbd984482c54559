"""trackmux_spec: the contract between trackmux and its tracker plugins.

A plugin depends on this package only: the hook specifications (:mod:`.hookspecs`), the
data types that cross them, and the exceptions that classify a backend's failures.
"""

from ._errors import (
    DataDirectoryError,
    DeliveryError,
    PermanentError,
    PluginLoadError,
    RetryableError,
    TrackerClosedError,
    TrackerNotFoundError,
    TrackmuxError,
    UnknownJobError,
)
from ._types import (
    ArtifactSpec,
    Comparison,
    ConnectContext,
    JobStatus,
    MetricRecord,
    MetricValue,
    ResumePoint,
    RunSummary,
    TrackerInfo,
    TrainingConfig,
)
from .hookspecs import hookimpl, hookspec

__all__ = [
    "ArtifactSpec",
    "Comparison",
    "ConnectContext",
    "DataDirectoryError",
    "DeliveryError",
    "JobStatus",
    "MetricRecord",
    "MetricValue",
    "PermanentError",
    "PluginLoadError",
    "ResumePoint",
    "RetryableError",
    "RunSummary",
    "TrackerClosedError",
    "TrackerInfo",
    "TrackerNotFoundError",
    "TrackmuxError",
    "TrainingConfig",
    "UnknownJobError",
    "hookimpl",
    "hookspec",
]

#: The version of the contract (hooks and their meaning); the conformance suite checks it.
SPEC_VERSION = 1
