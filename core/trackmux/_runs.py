"""Read-only views of the local journal, for ``trackmux runs``, ``show`` and ``compare``.

Every run made on this machine is in ``<data dir>/journal/<run id>/`` whatever its trackers
(see :mod:`trackmux._journal`), so these views work offline for any tracker:

* :func:`list_runs` / :func:`load_run`: a run's config, creation time, record count, final
  status and, per tracker, its job id and how many records it acknowledged (its cursor).
* :func:`run_series` / :func:`metric_stats`: per metric the count, last value, min and max
  (NaN ignored for min/max) and a curve downsampled for charts, streamed from the journal
  so a long run does not fill memory.
* :func:`list_artifacts`: a run's artifacts (name, type, size, digest, files) and, per
  tracker, whether it holds each one and under which id.
* :func:`config_values` / :func:`differing_keys`: a run's set config fields, flat, and the
  keys whose values differ between runs.

Nothing here writes: runs are read through :meth:`RunJournal.peek`, whose read-only
connections see a consistent snapshot even while a live process appends to the run.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs
from attrs import define, field
from trackmux_spec import TrainingConfig

from ._journal import RunJournal, iter_run_ids
from ._series import DEFAULT_BUCKETS, SeriesBuilder

__all__ = [
    "ArtifactInfo",
    "MetricStats",
    "RunInfo",
    "TrackerProgress",
    "config_values",
    "differing_keys",
    "journal_root",
    "json_safe",
    "list_artifacts",
    "list_runs",
    "load_run",
    "metric_stats",
    "resolve_run",
    "run_series",
]

#: TrainingConfig's fields in declaration order (how ``show`` orders the config).
_FIELD_ORDER = [a.name for a in attrs.fields(TrainingConfig)]


def journal_root(data_dir: Path) -> Path:
    """Where the journal of ``data_dir`` lives."""
    return Path(data_dir) / "journal"


@define
class TrackerProgress:
    """How far one tracker got with a run, from ``run.json`` and its cursor file."""

    name: str
    job_id: str | None
    acknowledged: int
    total: int
    finished: bool
    #: Kept offline (``WANDB_MODE=offline``) when the run was made: ``trackmux sync`` sends it.
    offline: bool = False

    @property
    def pending(self) -> bool:
        """Whether the tracker lacks records, the run itself, or the run's final state."""
        return self.acknowledged < self.total or self.job_id is None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"name": self.name, "job_id": self.job_id, "acknowledged": self.acknowledged,
                "total": self.total, "finished": self.finished, "offline": self.offline,
                "pending": self.pending}


@define
class ArtifactInfo:
    """One artifact of a run, from the journal, and which trackers hold it."""

    id: str
    name: str
    type: str
    description: str | None
    size: int
    digest: str
    files: list[dict[str, Any]]
    #: tracker -> ``{"state": "delivered", "remote_id": ...}`` or ``{"state": "pending"}``
    delivery: dict[str, dict[str, Any]]
    entry: dict[str, Any] = field(eq=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (files with path, size and SHA-256; never a local path)."""
        return json_safe({
            "id": self.id, "name": self.name, "type": self.type,
            "description": self.description, "size": self.size, "digest": self.digest,
            "files": [{k: f[k] for k in ("path", "size", "sha256")} for f in self.files],
            "delivery": self.delivery,
        })


@define
class RunInfo:
    """One run of the journal, as ``trackmux runs`` and ``trackmux show`` list it."""

    run_id: str
    created: float
    config: dict[str, Any]
    record_count: int
    final_status: str | None
    trackers: list[TrackerProgress]
    host: str | None = None
    pid: int | None = None
    directory: Path | None = field(default=None, eq=False)
    #: Whether a process holds the run's writer lock (see ``RunJournal.writer_alive``).
    writer_alive: bool = True

    @property
    def status(self) -> str:
        """The final status; without one, ``"open"`` while a process writes the run and
        ``"crashed"`` once that process is gone (killed, or ended without finishing it)."""
        if self.final_status:
            return self.final_status
        return "open" if self.writer_alive else "crashed"

    @property
    def name(self) -> str | None:
        """The run's name from its config."""
        return self.config.get("name")

    @property
    def project(self) -> str | None:
        """The run's project from its config."""
        return self.config.get("project_name")

    @property
    def created_local(self) -> datetime:
        """The creation time in the local time zone."""
        return datetime.fromtimestamp(self.created).astimezone()

    def set_config(self) -> dict[str, Any]:
        """The config fields that are set (``extra`` included if not empty), in field order."""
        return _set_fields(self.config)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (without per-metric statistics)."""
        return {
            "run_id": self.run_id,
            "created": self.created,
            "created_local": self.created_local.isoformat(timespec="seconds"),
            "name": self.name,
            "project": self.project,
            "record_count": self.record_count,
            "status": self.status,
            "host": self.host,
            "trackers": [t.to_dict() for t in self.trackers],
        }


@define
class MetricStats:
    """What one metric did over a run: NaN counts and may be the last value, not min/max."""

    name: str
    count: int = 0
    last: float | int | None = None
    last_step: int | None = None
    min: float | int | None = None
    max: float | int | None = None

    def add(self, value: float | int, step: int) -> None:
        """Account for one logged value."""
        self.count += 1
        self.last = value
        self.last_step = step
        if isinstance(value, float) and math.isnan(value):
            return
        if self.min is None or value < self.min:
            self.min = value
        if self.max is None or value > self.max:
            self.max = value

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (non-finite floats as strings, see :func:`json_safe`)."""
        return json_safe({"count": self.count, "last": self.last, "last_step": self.last_step,
                          "min": self.min, "max": self.max})


# -- opening runs -------------------------------------------------------------------------


def _open(root: Path, run_id: str) -> tuple[RunJournal, int]:
    """The run's journal (read-only: a live writer may still append) and its record count."""
    journal = RunJournal.peek(root, run_id)
    return journal, journal.count()


def _tracker_names(journal: RunJournal, cursors: Mapping[str, int]) -> list[str]:
    names = list(journal.meta.get("destinations") or [])
    names += [name for name in journal.meta.get("trackers") or {} if name not in names]
    names.extend(sorted(set(cursors) - set(names)))
    return names


def _info(root: Path, run_id: str) -> RunInfo:
    journal, count = _open(root, run_id)
    meta = journal.meta
    trackers = []
    offline = set(meta.get("offline") or [])
    cursors = journal.read_cursors()
    for name in _tracker_names(journal, cursors):
        seq = cursors.get(name, 0)
        trackers.append(TrackerProgress(name, journal.tracker_job(name), min(seq, count), count,
                                         journal.tracker_finished(name), name in offline))
    pid = meta.get("pid")
    return RunInfo(
        run_id=journal.run_id,
        created=float(meta.get("created") or 0.0),
        config=dict(meta.get("config") or {}),
        record_count=count,
        final_status=meta.get("final_status"),
        trackers=trackers,
        host=meta.get("host"),
        pid=pid if isinstance(pid, int) else None,
        directory=journal.directory,
        writer_alive=bool(meta.get("final_status")) or journal.writer_alive(),
    )


def list_runs(data_dir: Path) -> tuple[list[RunInfo], list[tuple[str, str]]]:
    """Every run of the journal, oldest first, and ``(run id, problem)`` for unreadable ones."""
    root = journal_root(data_dir)
    runs: list[RunInfo] = []
    problems: list[tuple[str, str]] = []
    for run_id in iter_run_ids(root):
        try:
            runs.append(_info(root, run_id))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            problems.append((run_id, f"{type(exc).__name__}: {exc}"))
    return runs, problems


def resolve_run(data_dir: Path, ref: str) -> str:
    """The id of the run ``ref`` names: an id, or an unambiguous prefix of one.

    :raises LookupError: no such run, or the prefix matches several (the message says which).
    """
    from ._engine import check_run_id  # the engine module loads only when a run is named

    root = journal_root(data_dir)
    try:
        check_run_id(ref)
    except ValueError:
        raise LookupError(f"{ref!r} is not a run id") from None
    if (root / ref / "run.json").is_file():
        return ref
    matches = [run_id for run_id in iter_run_ids(root) if run_id.startswith(ref)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        shown = ", ".join(matches[:10]) + (", ..." if len(matches) > 10 else "")
        raise LookupError(f"run id prefix {ref!r} is ambiguous: it matches {shown}")
    raise LookupError(f"no run {ref!r} in the journal at {root}; `trackmux runs` lists the runs")


def load_run(data_dir: Path, ref: str) -> RunInfo:
    """The run ``ref`` names (see :func:`resolve_run`)."""
    root = journal_root(data_dir)
    run_id = resolve_run(data_dir, ref)
    try:
        return _info(root, run_id)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise LookupError(f"run {run_id!r} cannot be read: {type(exc).__name__}: {exc}") from None


def run_series(run: RunInfo, buckets: int = DEFAULT_BUCKETS) -> SeriesBuilder:
    """Every metric of ``run`` (its first :attr:`RunInfo.record_count` records, so that the
    views stay consistent while a live writer appends), downsampled for charts, with
    statistics over every value (see :mod:`trackmux._series`)."""
    assert run.directory is not None
    journal = RunJournal(run.directory, {"run_id": run.run_id})
    builder = SeriesBuilder(buckets)
    with contextlib.closing(journal.read_all()) as records:
        builder.add(itertools.islice(records, run.record_count))
    return builder


def metric_stats(run: RunInfo) -> dict[str, MetricStats]:
    """Count, last, min and max of every metric of ``run``, in order of first appearance."""
    return {name: MetricStats(name, s.count, s.last, s.last_step, s.min, s.max)
            for name, s in run_series(run).series().items()}


# -- config -------------------------------------------------------------------------------


def _is_set(value: Any) -> bool:
    return value is not None and value != [] and value != () and value != {}


def _set_fields(config: Mapping[str, Any]) -> dict[str, Any]:
    ordered = [k for k in _FIELD_ORDER if k in config] + sorted(k for k in config
                                                                 if k not in _FIELD_ORDER)
    return {k: config[k] for k in ordered if _is_set(config[k])}


def config_values(config: Mapping[str, Any]) -> dict[str, Any]:
    """The set config fields, flat: ``extra`` entries become ``extra.<key>``."""
    out: dict[str, Any] = {}
    for key, value in _set_fields(config).items():
        if key == "extra" and isinstance(value, Mapping):
            for sub_key, sub_value in value.items():
                out[f"extra.{sub_key}"] = sub_value
        else:
            out[key] = value
    return out


_MISSING = object()


def differing_keys(configs: Sequence[Mapping[str, Any]]) -> list[str]:
    """Keys (of :func:`config_values` dicts) whose values are not the same in every config.

    A key present in some configs but not all differs.
    """
    keys: dict[str, None] = {}
    for config in configs:
        keys.update(dict.fromkeys(config))
    out = []
    for key in keys:
        values = [config.get(key, _MISSING) for config in configs]
        first = values[0]
        if any(v is _MISSING for v in values) or any(not _same(first, v) for v in values[1:]):
            out.append(key)
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return (type(a) is type(b) and a == b) or (
        isinstance(a, int | float) and isinstance(b, int | float)
        and not isinstance(a, bool) and not isinstance(b, bool) and a == b)


# -- output -------------------------------------------------------------------------------


def json_safe(value: Any) -> Any:
    """``value`` with NaN and the infinities as the strings ``"NaN"``, ``"Infinity"``,
    ``"-Infinity"``, so that the output is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, Iterable) and not isinstance(value, str | bytes):
        return [json_safe(v) for v in value]
    return value


# -- artifacts ----------------------------------------------------------------------------


def list_artifacts(run: RunInfo) -> list[ArtifactInfo]:
    """The run's artifacts in upload order, with each tracker's delivery state."""
    assert run.directory is not None
    journal = RunJournal.peek(run.directory.parent, run.run_id)
    marks = {t.name: journal.artifact_marks(t.name) for t in run.trackers}
    found = []
    for entry in journal.artifacts():
        index = entry["index"]
        delivery = {name: dict(held.get(index) or {"state": "pending"})
                    for name, held in marks.items()}
        found.append(ArtifactInfo(
            id=entry["id"], name=entry["name"], type=entry["type"],
            description=entry.get("description"), size=int(entry.get("size") or 0),
            digest=str(entry.get("digest") or ""), files=list(entry["files"]),
            delivery=delivery, entry=entry))
    return found
