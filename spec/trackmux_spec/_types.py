"""The data that crosses the contract: attrs classes, frozen, validated on construction."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
from attrs import define, field

__all__ = [
    "ArtifactSpec",
    "Comparison",
    "ConnectContext",
    "JobStatus",
    "MetricRecord",
    "MetricValue",
    "RunSummary",
    "TrackerInfo",
    "TrainingConfig",
]

#: What a metric value is once trackmux has accepted it.
MetricValue = float | int


class JobStatus(enum.StrEnum):
    """The state of a run, as every tracker reports it.

    ``COMPLETED`` is an alias of ``FINISHED`` and ``CANCELLED`` of ``KILLED``, so the
    names used by the reference document work too.
    """

    PENDING = "pending"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    CRASHED = "crashed"
    KILLED = "killed"
    PREEMPTED = "preempted"
    COMPLETED = "finished"
    CANCELLED = "killed"

    @property
    def is_terminal(self) -> bool:
        """True for states a run does not leave (finished, failed, crashed, killed, preempted)."""
        return self not in (JobStatus.PENDING, JobStatus.RUNNING)


def _optional(kind: type | tuple[type, ...], what: str):  # type: ignore[no-untyped-def]
    def check(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is None:
            return
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            raise TypeError(f"{attribute.name} must be {what}, got {value!r}")
        if not isinstance(value, kind):
            raise TypeError(f"{attribute.name} must be {what}, got {value!r}")

    return check


def _positive(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and value <= 0:
        raise ValueError(f"{attribute.name} must be positive, got {value!r}")


def _probability(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not 0.0 <= value < 1.0:
        raise ValueError(f"{attribute.name} must be in [0, 1), got {value!r}")


def _strings(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(value)


def _all_strings(instance: Any, attribute: attrs.Attribute[Any], value: tuple[Any, ...]) -> None:
    for item in value:
        if not isinstance(item, str) or not item:
            raise TypeError(
                f"{attribute.name} must hold non-empty strings, got {item!r} in {list(value)!r}"
            )


def _mapping(value: Any) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"extra must be a mapping, got {value!r}")
    return dict(value)


def _string_keys(instance: Any, attribute: attrs.Attribute[Any], value: Mapping[Any, Any]) -> None:
    for key in value:
        if not isinstance(key, str) or not key:
            raise TypeError(f"{attribute.name} keys must be non-empty strings, got {key!r}")


#: Fields of :class:`TrainingConfig` that describe the run rather than its hyperparameters.
_RUN_METADATA = ("name", "tags", "notes", "group", "job_type", "project_name", "extra")


@define(frozen=True, kw_only=True)
class TrainingConfig:
    """What a run trains and how; every field is optional.

    The fields of the reference document's example come first, then the run's metadata
    (``name``, ``tags``, ``notes``, ``group``, ``job_type``), then ``extra``: free-form
    configuration (JSON-serialisable values) for anything else a training script wants
    recorded. Backends store :meth:`hyperparameters` as the run's config.
    """

    base_model: str | None = field(default=None, validator=_optional(str, "a string"))
    model_source: str | None = field(default=None, validator=_optional(str, "a string"))
    algorithm: str | None = field(default=None, validator=_optional(str, "a string"))
    rank: int | None = field(default=None, validator=[_optional(int, "an integer"), _positive])
    alpha: float | None = field(
        default=None, validator=[_optional((int, float), "a number"), _positive]
    )
    dropout: float | None = field(
        default=None, validator=[_optional((int, float), "a number"), _probability]
    )
    target_modules: tuple[str, ...] = field(default=(), converter=_strings, validator=_all_strings)
    dataset_path: str | None = field(default=None, validator=_optional(str, "a string"))
    experiment_tracker: str | None = field(default=None, validator=_optional(str, "a string"))
    project_name: str | None = field(default=None, validator=_optional(str, "a string"))
    learning_rate: float | None = field(
        default=None, validator=[_optional((int, float), "a number"), _positive]
    )
    batch_size: int | None = field(
        default=None, validator=[_optional(int, "an integer"), _positive]
    )
    num_epochs: int | None = field(
        default=None, validator=[_optional(int, "an integer"), _positive]
    )
    name: str | None = field(default=None, validator=_optional(str, "a string"))
    tags: tuple[str, ...] = field(default=(), converter=_strings, validator=_all_strings)
    notes: str | None = field(default=None, validator=_optional(str, "a string"))
    group: str | None = field(default=None, validator=_optional(str, "a string"))
    job_type: str | None = field(default=None, validator=_optional(str, "a string"))
    extra: Mapping[str, Any] = field(factory=dict, converter=_mapping, validator=_string_keys)

    def hyperparameters(self) -> dict[str, Any]:
        """The run's config as backends store it: set fields, then ``extra``, flat."""
        out: dict[str, Any] = {}
        for attribute in attrs.fields(TrainingConfig):
            if attribute.name in _RUN_METADATA:
                continue
            value = getattr(self, attribute.name)
            if value is None or value == ():
                continue
            out[attribute.name] = list(value) if isinstance(value, tuple) else value
        out.update(self.extra)
        return out

    def to_dict(self) -> dict[str, Any]:
        """Every field, JSON-ready (tuples as lists); the inverse of :meth:`from_dict`."""
        out: dict[str, Any] = {}
        for attribute in attrs.fields(TrainingConfig):
            value = getattr(self, attribute.name)
            if isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, Mapping):
                value = dict(value)
            out[attribute.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainingConfig:
        """Build a config from :meth:`to_dict` output; unknown keys go to ``extra``."""
        known = {a.name for a in attrs.fields(TrainingConfig)}
        kwargs = {k: v for k, v in data.items() if k in known}
        unknown = {k: v for k, v in data.items() if k not in known}
        if unknown:
            kwargs["extra"] = {**dict(kwargs.get("extra") or {}), **unknown}
        return cls(**kwargs)


@define(slots=True)
class MetricRecord:
    """One logged row: the values of one ``log_metrics`` call.

    ``seq`` numbers a run's records from 0 without gaps. It is the record's identity: a
    tracker that is handed a record whose ``seq`` it already stored for that job must not
    store it again (this is what makes retries exactly-once).

    Treat records as read-only (wrappers use ``attrs.evolve``). They are the one type of
    the contract that is not frozen: every tracker gets its own copies, read from the
    journal, and a frozen attrs class costs twice as much to build — a cost paid once per
    row per tracker, on the thread that shares the interpreter with the training loop.
    """

    seq: int
    step: int
    timestamp: float
    values: Mapping[str, MetricValue]


@define(frozen=True, kw_only=True)
class ArtifactSpec:
    """What an uploaded artifact is called and what it carries besides its bytes."""

    name: str
    type: str = "artifact"
    description: str | None = None
    metadata: Mapping[str, Any] = field(factory=dict, converter=_mapping)


@define(frozen=True, kw_only=True)
class RunSummary:
    """One run as ``compare`` reports it."""

    id: str
    name: str | None
    state: JobStatus
    config: Mapping[str, Any]
    summary: Mapping[str, Any]
    url: str | None = None


@define(frozen=True, kw_only=True)
class Comparison:
    """The result of ``compare``: the runs, and where to compare them in the backend's UI."""

    runs: Sequence[RunSummary]
    url: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The reference document's shape: ``{"runs": [{"id", "name", "state", ...}], "url"}``."""
        return {
            "runs": [
                {
                    "id": r.id,
                    "name": r.name,
                    "state": r.state.value,
                    "config": dict(r.config),
                    "summary": dict(r.summary),
                    "url": r.url,
                }
                for r in self.runs
            ],
            "url": self.url,
        }


@define(frozen=True, kw_only=True)
class TrackerInfo:
    """What a tracker declares about itself to the engine and the conformance suite.

    :param max_batch_records: most records one ``log_metrics`` call may carry. The engine
        sends batches of up to 100 records at steady state, and up to this many when the
        tracker is behind.
    :param min_batch_interval: least seconds between two ``log_metrics`` calls for one run at
        steady state (rate limits); ``flush()`` and the end of a run do not wait for it.
    :param heartbeat_interval: seconds of silence after which the engine sends an open run
        an empty ``log_metrics`` batch (a heartbeat), for backends that mark quiet runs
        crashed; ``None`` for none.
    :param capabilities: which optional hooks work: ``"artifacts"``, ``"compare"``,
        ``"history"``.
    """

    max_batch_records: int = field(default=100, validator=_positive)
    min_batch_interval: float = field(default=0.0)
    heartbeat_interval: float | None = field(default=None, validator=_positive)
    capabilities: frozenset[str] = field(
        default=frozenset({"artifacts", "compare", "history"}), converter=frozenset
    )


@define(frozen=True, kw_only=True)
class ConnectContext:
    """What the core hands a tracker's ``connect`` besides the credentials.

    :param data_dir: a directory for this tracker's own local files (created, private).
    :param settings: this tracker's table of the configuration (``[NAME]`` in ``trackmux.toml``,
        ``[tool.trackmux.NAME]`` in ``pyproject.toml``).
    """

    data_dir: Path
    settings: Mapping[str, Any] = field(factory=dict, converter=_mapping)
