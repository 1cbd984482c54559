"""The data that crosses the contract: attrs classes, frozen, validated on construction."""

from __future__ import annotations

import enum
import operator
from collections.abc import Mapping, Sequence, Set
from pathlib import Path, PurePath
from typing import Any

import attrs
from attrs import define, field

from ._config_values import config_value, object_fields

__all__ = [
    "ArtifactSpec",
    "Comparison",
    "ConnectContext",
    "JobStatus",
    "MetricRecord",
    "MetricValue",
    "ResumePoint",
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


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    kind = type(value)
    if kind.__module__ == "builtins":
        return text
    return f"{kind.__module__}.{kind.__qualname__} {text}"


def _scalar(value: Any) -> Any:
    """A numpy scalar or 0-d array, or a one-element tensor, as a Python number."""
    if type(value) in (int, float, str, bool) or isinstance(value, bool):
        return value
    item = getattr(value, "item", None)
    if callable(item) and not isinstance(value, str | bytes):
        try:
            converted = item()
        except Exception:
            return value
        if type(converted) is not type(value):
            return converted
    return value


def _text(name: str):  # type: ignore[no-untyped-def]
    """Converter of an optional string field (paths become strings)."""

    def convert(value: Any) -> str | None:
        if value is None:
            return None
        if isinstance(value, str | PurePath) and not isinstance(value, enum.Enum):
            return str(value)
        raise TypeError(f"{name} must be a string, got {_describe(value)}")

    return convert


def _integer(name: str, minimum: int):  # type: ignore[no-untyped-def]
    """Converter of an optional integer field of at least ``minimum`` (numpy integers too)."""

    def convert(value: Any) -> int | None:
        if value is None:
            return None
        plain = _scalar(value)
        if isinstance(plain, bool) or isinstance(plain, enum.Enum):
            raise TypeError(f"{name} must be an integer, got {_describe(value)}")
        try:
            number = operator.index(plain)
        except TypeError:
            raise TypeError(f"{name} must be an integer, got {_describe(value)}") from None
        if number < minimum:
            raise ValueError(f"{name} must be >= {minimum}, got {number}")
        return number

    return convert


def _number(name: str, low: float | None = None, high: float | None = None):  # type: ignore[no-untyped-def]
    """Converter of an optional real-number field, within ``[low, high]`` if given."""

    def convert(value: Any) -> float | int | None:
        if value is None:
            return None
        plain = _scalar(value)
        if isinstance(plain, bool | str | bytes | complex | enum.Enum):
            raise TypeError(f"{name} must be a number, got {_describe(value)}")
        if isinstance(plain, int):
            number: float | int = int(plain)
        elif isinstance(plain, float):
            number = float(plain)
        else:  # Decimal, Fraction
            try:
                number = float(plain)
            except Exception:  # whatever it raised, the value is not a number
                raise TypeError(f"{name} must be a number, got {_describe(value)}") from None
        if (low is not None and not number >= low) or (high is not None and not number <= high):
            raise ValueError(f"{name} must be in [{low}, {high}], got {number!r}")
        return number

    return convert


def _strings(name: str):  # type: ignore[no-untyped-def]
    """Converter of a field of strings: one string, or any iterable of them (sets sorted)."""

    def convert(value: Any) -> tuple[str, ...]:
        if value is None:
            return ()
        if isinstance(value, str):
            items: list[Any] = [value]
        elif isinstance(value, Set):
            items = sorted(value, key=str)
        else:
            try:
                items = list(value)
            except TypeError:
                raise TypeError(
                    f"{name} must be a string or a list of strings, got {_describe(value)}"
                ) from None
        for item in items:
            if not isinstance(item, str) or not item:
                raise TypeError(
                    f"{name} must hold non-empty strings, got {item!r} in {items!r}"
                )
        return tuple(str(item) for item in items)

    return convert


def _positive(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and value <= 0:
        raise ValueError(f"{attribute.name} must be positive, got {value!r}")


def _mapping(value: Any) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"extra must be a mapping, got {value!r}")
    return dict(value)


def _config_mapping(value: Any) -> dict[str, Any]:
    """Converter of ``extra``: string keys, every value made storable (``config_value``)."""
    if value is None:
        return {}
    fields = value if isinstance(value, Mapping) else object_fields(value)
    if fields is None:
        raise TypeError(f"extra must be a mapping, got {_describe(value)}")
    out: dict[str, Any] = {}
    for key, item in fields.items():
        if not isinstance(key, str) or not key:
            raise TypeError(f"config keys must be non-empty strings, got {key!r}")
        out[str(key)] = config_value(item, key)
    return out


#: Fields of :class:`TrainingConfig` that describe the run rather than its hyperparameters.
_RUN_METADATA = (
    "name", "tags", "notes", "group", "job_type", "project_name", "entity", "extra"
)


@define(frozen=True, kw_only=True)
class TrainingConfig:
    """What a run trains and how; every field is optional.

    The fields of the reference document's example come first, then the run's metadata
    (``name``, ``tags``, ``notes``, ``group``, ``job_type``, and ``entity``: the team or
    user that owns ``project_name``, for backends that have one), then ``extra``: free-form
    configuration for anything else a training script wants recorded, as
    ``wandb.init(config=...)`` takes it (numpy values, paths, enums, dataclasses, nested
    dicts...: see :mod:`trackmux_spec._config_values`), stored as JSON-ready data. Backends
    store :meth:`hyperparameters` as the run's config.

    Typed fields accept numpy and 0-d array values too; ``learning_rate`` and ``alpha`` any
    number (zero and negative included), ``dropout`` a number in [0, 1], ``rank`` and
    ``num_epochs`` integers >= 0, ``batch_size`` an integer >= 1. A bad value raises
    ``TypeError``/``ValueError`` naming the field and the value, when the config is built.
    :meth:`from_any` builds one from what ``submit_job`` accepts.
    """

    base_model: str | None = field(default=None, converter=_text("base_model"))
    model_source: str | None = field(default=None, converter=_text("model_source"))
    algorithm: str | None = field(default=None, converter=_text("algorithm"))
    rank: int | None = field(default=None, converter=_integer("rank", 0))
    alpha: float | None = field(default=None, converter=_number("alpha"))
    dropout: float | None = field(default=None, converter=_number("dropout", 0.0, 1.0))
    target_modules: tuple[str, ...] = field(default=(), converter=_strings("target_modules"))
    dataset_path: str | None = field(default=None, converter=_text("dataset_path"))
    experiment_tracker: str | None = field(default=None, converter=_text("experiment_tracker"))
    project_name: str | None = field(default=None, converter=_text("project_name"))
    learning_rate: float | None = field(default=None, converter=_number("learning_rate"))
    batch_size: int | None = field(default=None, converter=_integer("batch_size", 1))
    num_epochs: int | None = field(default=None, converter=_integer("num_epochs", 0))
    name: str | None = field(default=None, converter=_text("name"))
    tags: tuple[str, ...] = field(default=(), converter=_strings("tags"))
    notes: str | None = field(default=None, converter=_text("notes"))
    group: str | None = field(default=None, converter=_text("group"))
    job_type: str | None = field(default=None, converter=_text("job_type"))
    entity: str | None = field(default=None, converter=_text("entity"))
    extra: Mapping[str, Any] = field(factory=dict, converter=_config_mapping)

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
        """Build a config from a mapping (e.g. :meth:`to_dict` output): the keys that name
        fields set them, every other key goes to ``extra`` (so does an ``extra`` key whose
        value is not a mapping)."""
        known = {a.name for a in attrs.fields(TrainingConfig)}
        kwargs: dict[str, Any] = {}
        unknown: dict[str, Any] = {}
        for key, value in data.items():
            if not isinstance(key, str) or not key:
                raise TypeError(f"config keys must be non-empty strings, got {key!r}")
            if key == "extra" and value is not None and not isinstance(value, Mapping):
                unknown[key] = value
            elif key in known:
                kwargs[key] = value
            else:
                unknown[key] = value
        if unknown:
            kwargs["extra"] = {**dict(kwargs.get("extra") or {}), **unknown}
        return cls(**kwargs)

    @classmethod
    def from_any(cls, config: Any = None, /, **fields: Any) -> TrainingConfig:
        """Build a config from what ``submit_job`` accepts, as ``wandb.init(config=...)``.

        :param config: ``None``, a :class:`TrainingConfig`, a mapping (``vars(args)``), an
            ``argparse.Namespace``, a dataclass or an attrs instance.
        :param fields: more fields and free-form keys (``name="run-3"``, ``momentum=0.9``);
            they win over the same keys of ``config``. ``extra`` mappings are merged.
        :raises TypeError: / ``ValueError`` naming the key and the value.
        """
        if config is None:
            base: dict[str, Any] = {}
        elif isinstance(config, TrainingConfig):
            if not fields:
                return config
            base = config.to_dict()
        elif isinstance(config, Mapping):
            base = dict(config)
        else:
            found = object_fields(config)
            if found is None:
                raise TypeError(
                    "config must be a TrainingConfig, a mapping, an argparse.Namespace, a "
                    f"dataclass or an attrs instance, got {_describe(config)}"
                )
            base = found
        if not fields:
            return cls.from_dict(base)
        merged = cls.from_dict(base).to_dict()
        extra = dict(merged.pop("extra"))
        override = cls.from_dict(fields).to_dict()
        extra.update(override.pop("extra"))
        for key in fields:
            if key in override:
                merged[key] = override[key]
        merged["extra"] = extra
        return cls(**merged)


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
class ResumePoint:
    """Where a job ends on its backend: what the ``resume_point`` hook reports.

    :param next_seq: the job holds every record with a ``seq`` below this (0: none).
    :param last_step: the step of the job's last stored record, ``None`` if it has none.
    """

    next_seq: int = field(default=0, validator=attrs.validators.and_(
        attrs.validators.instance_of(int), attrs.validators.ge(0)))
    last_step: int | None = field(
        default=None, validator=attrs.validators.optional(attrs.validators.instance_of(int))
    )


@define(frozen=True, kw_only=True)
class ArtifactSpec:
    """What an uploaded artifact is called and what it carries besides its bytes."""

    name: str
    type: str = "artifact"
    description: str | None = None
    metadata: Mapping[str, Any] = field(factory=dict, converter=_mapping)
    #: trackmux's stable id of this artifact (``<run id>:<name>:<index>``), the same on every
    #: retry and in ``trackmux sync``. A tracker must not store one key twice: given a key it
    #: already holds, ``upload_artifact`` returns the id it returned then. ``None`` when the
    #: hook is called directly, without the engine.
    key: str | None = None


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
    :param settings: the keys this tracker reads from its table of the configuration file
        (``[NAME]`` in ``trackmux.toml``), so that a misspelt key gets a warning naming the
        file, the line and the closest valid key; ``None`` (the default) checks nothing.
    :param journal_references: the tracker stores on this machine and may keep references
        into the core's journal instead of copies of the records: its ``log_metrics`` then
        receives a :class:`trackmux_spec.journal.JournalRecords` (a sequence of records that
        also says where they are in the journal), except while a wrapper plugin wraps
        ``log_metrics`` (it may rewrite the batch: then a plain list). ``False`` (the
        default): plain records.
    """

    max_batch_records: int = field(default=100, validator=_positive)
    min_batch_interval: float = field(default=0.0)
    heartbeat_interval: float | None = field(default=None, validator=_positive)
    capabilities: frozenset[str] = field(
        default=frozenset({"artifacts", "compare", "history"}), converter=frozenset
    )
    settings: frozenset[str] | None = field(
        default=None, converter=lambda keys: None if keys is None else frozenset(keys)
    )
    journal_references: bool = field(default=False, validator=attrs.validators.instance_of(bool))


@define(frozen=True, kw_only=True)
class ConnectContext:
    """What the core hands a tracker's ``connect`` besides the credentials.

    :param data_dir: a directory for this tracker's own local files (created, private).
    :param settings: this tracker's table of the configuration (``[NAME]`` in ``trackmux.toml``,
        ``[tool.trackmux.NAME]`` in ``pyproject.toml``).
    """

    data_dir: Path
    settings: Mapping[str, Any] = field(factory=dict, converter=_mapping)
