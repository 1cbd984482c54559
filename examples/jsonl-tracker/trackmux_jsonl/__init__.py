"""trackmux-jsonl: a trackmux tracker writing every run as a JSON Lines file.

Registered as ``jsonl`` in the ``trackmux`` entry-point group (see ``pyproject.toml``), so
``TRACKMUX_TRACKERS=jsonl`` or ``trackmux.Tracker(["jsonl"])`` selects it. Its settings
(``[jsonl]`` in ``trackmux.toml``): ``root``, a directory to write to instead of the data
directory trackmux gives the tracker.

Every hook is a plain function: trackmux runs them on a worker thread of their own, so
blocking file I/O never stalls the training loop.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import trackmux
from trackmux_spec import (
    ArtifactSpec,
    Comparison,
    ConnectContext,
    JobStatus,
    MetricRecord,
    PermanentError,
    ResumePoint,
    RetryableError,
    RunSummary,
    TrackerInfo,
    TrainingConfig,
    UnknownJobError,
)
from trackmux_spec.artifact_paths import safe_destination

from ._store import JsonlSession, sha256_of

__all__ = [
    "JsonlSession",
    "compare",
    "connect",
    "disconnect",
    "download_artifact",
    "finish_job",
    "get_history",
    "get_job_status",
    "get_run_url",
    "log_metrics",
    "resume_point",
    "submit_job",
    "tracker_info",
    "update_config",
    "upload_artifact",
]

_FINAL = (JobStatus.FINISHED, JobStatus.FAILED, JobStatus.KILLED, JobStatus.PREEMPTED)


def _session(session: object) -> JsonlSession:
    if not isinstance(session, JsonlSession):
        raise TypeError(f"not a jsonl tracker session: {session!r}")
    return session


@trackmux.hookimpl
def tracker_info() -> TrackerInfo:
    """Up to 1000 records per batch, no rate limit, every capability."""
    return TrackerInfo(max_batch_records=1000,
                       capabilities=frozenset({"artifacts", "compare", "history"}))


@trackmux.hookimpl
def connect(credentials: Mapping[str, Any], context: ConnectContext) -> JsonlSession:
    """Open the directory (``settings["root"]`` or the tracker's data directory).

    :raises ValueError: ``root`` is not a string.
    :raises ConnectionError: the directory cannot be created.
    """
    root = context.settings.get("root", context.data_dir)
    if not isinstance(root, str | os.PathLike):
        raise ValueError(f"jsonl: the root setting must be a path, got {root!r}")
    try:
        return JsonlSession(Path(root).expanduser())
    except OSError as exc:
        raise ConnectionError(f"jsonl: cannot use {root}: {exc}") from exc


@trackmux.hookimpl
def disconnect(session: JsonlSession) -> None:
    """Nothing stays open between calls."""


@trackmux.hookimpl
def submit_job(session: JsonlSession, run_id: str, config: TrainingConfig) -> str:
    """Create ``runs/<run_id>.jsonl`` with a ``run`` event, or resume it (a new ``run`` event)."""
    store = _session(session)
    try:
        store.run_path(run_id)
    except UnknownJobError:
        raise PermanentError(f"jsonl: run id {run_id!r} is not a safe file name") from None
    event = {"event": "run", "name": config.name, "config": config.to_dict(),
             "hyperparameters": config.hyperparameters(), "time": time.time()}
    with store.lock:
        try:
            store.append(run_id, [event])
        except OSError as exc:
            raise RetryableError(f"jsonl: cannot write run {run_id!r}: {exc}") from exc
        store.forget(run_id)
    return run_id


def _delivery_state(store: JsonlSession, job_id: str) -> Any:
    """The job's state for a delivery hook: an unknown job is permanent (no retry helps)."""
    try:
        return store.state(job_id)
    except UnknownJobError:
        raise PermanentError(f"jsonl: no run file for job {job_id!r}") from None


@trackmux.hookimpl
def update_config(session: JsonlSession, job_id: str, config: TrainingConfig) -> None:
    """Append a ``config`` event: the run's whole configuration from now on."""
    store = _session(session)
    event = {"event": "config", "name": config.name, "config": config.to_dict(),
             "hyperparameters": config.hyperparameters(), "time": time.time()}
    with store.lock:
        _delivery_state(store, job_id)  # PermanentError for a job without a run file
        try:
            store.append(job_id, [event])
        except OSError as exc:
            raise RetryableError(f"jsonl: cannot write run {job_id!r}: {exc}") from exc


@trackmux.hookimpl
def resume_point(session: JsonlSession, job_id: str) -> ResumePoint:
    """How many records the run file holds, and the step of the last one."""
    store = _session(session)
    with store.lock:
        state = store.state(job_id)
        return ResumePoint(next_seq=state.stored, last_step=state.last_step)


@trackmux.hookimpl
def log_metrics(session: JsonlSession, job_id: str, records: Sequence[MetricRecord]) -> None:
    """Append one ``metrics`` line per record whose ``seq`` is not stored yet.

    A resent batch (its acknowledgement was lost) is skipped record by record: the file
    holds each ``seq`` once. An empty batch (a heartbeat) writes nothing.

    :raises PermanentError: no such job, a gap in ``seq`` or a value JSON cannot hold.
    :raises RetryableError: the file could not be written.
    """
    store = _session(session)
    with store.lock:
        state = _delivery_state(store, job_id)
        events = []
        expected = state.stored
        for record in records:
            if record.seq < expected:
                continue
            if record.seq > expected:
                raise PermanentError(f"jsonl: job {job_id!r} expected seq {expected}, "
                                     f"got {record.seq}")
            events.append({"event": "metrics", "seq": record.seq, "step": record.step,
                           "timestamp": record.timestamp, "values": dict(record.values)})
            expected += 1
        try:
            store.append(job_id, events)
        except (TypeError, ValueError) as exc:
            raise PermanentError(f"jsonl: job {job_id!r}: values not storable: {exc}") from exc
        except OSError as exc:
            store.forget(job_id)  # a partial write: count again from the file
            raise RetryableError(f"jsonl: cannot append to job {job_id!r}: {exc}") from exc
        state.stored = expected
        if events:
            state.last_step = int(events[-1]["step"])


@trackmux.hookimpl
def finish_job(session: JsonlSession, job_id: str, status: JobStatus) -> None:
    """Append a ``status`` line, unless the run already has a final state (the first wins,
    until a resume).

    :raises PermanentError: no such job, or not a final state.
    """
    store = _session(session)
    status = JobStatus(status)
    if status not in _FINAL:
        raise PermanentError(f"jsonl: {status.value!r} is not a final state")
    with store.lock:
        state = _delivery_state(store, job_id)
        if state.status.is_terminal:
            return
        try:
            store.append(job_id, [{"event": "status", "status": status.value, "time": time.time()}])
        except OSError as exc:
            raise RetryableError(f"jsonl: cannot finish job {job_id!r}: {exc}") from exc
        state.status = status


@trackmux.hookimpl
def get_job_status(session: JsonlSession, job_id: str) -> JobStatus:
    """The last ``status`` line, ``RUNNING`` if none; :class:`UnknownJobError` for no file."""
    store = _session(session)
    with store.lock:
        return store.state(job_id).status


@trackmux.hookimpl
def get_run_url(session: JsonlSession, job_id: str) -> str:
    """The ``file://`` URL of the run file (computed, no I/O)."""
    return _session(session).run_path(job_id).absolute().as_uri()


@trackmux.hookimpl
def get_history(session: JsonlSession, job_id: str) -> list[dict[str, Any]]:
    """One row per ``metrics`` line: its values plus ``_step`` and ``_timestamp``."""
    store = _session(session)
    return [{**event["values"], "_step": int(event["step"]),
             "_timestamp": float(event["timestamp"])}
            for event in store.events(job_id) if event.get("event") == "metrics"]


@trackmux.hookimpl
def compare(session: JsonlSession, job_ids: Sequence[str]) -> Comparison:
    """Config and last values of every known job; unknown ids are left out."""
    store = _session(session)
    runs = []
    for job_id in job_ids:
        name, config, summary = None, {}, {}
        status = JobStatus.RUNNING
        try:
            for event in store.events(job_id):
                kind = event.get("event")
                if kind in ("run", "config"):
                    name, config = event.get("name"), event.get("hyperparameters", {})
                    status = JobStatus.RUNNING
                elif kind == "metrics":
                    summary.update(event["values"])
                    summary["_step"] = event["step"]
                elif kind == "status" and not status.is_terminal:
                    status = JobStatus(event["status"])
        except UnknownJobError:
            continue
        runs.append(RunSummary(id=job_id, name=name, state=status, config=config,
                               summary=summary, url=get_run_url(store, job_id)))
    return Comparison(runs=runs)


def _files(path: Path) -> list[tuple[str, Path]]:
    if path.is_file():
        return [(path.name, path)]
    return sorted((file.relative_to(path).as_posix(), file)
                  for file in path.rglob("*") if file.is_file())


@trackmux.hookimpl
def upload_artifact(session: JsonlSession, job_id: str, path: Path, artifact: ArtifactSpec) -> str:
    """Copy the file (or every file under the directory), then verify each copy's SHA-256.

    :returns: ``<job_id>-<12 hex digits>``, derived from ``artifact.key`` when there is one:
        a key already stored returns its id and stores nothing again.
    :raises RuntimeError: a copy does not match its source (the message names the file).
    """
    store = _session(session)
    store.state(job_id)  # UnknownJobError for a job without a run file
    if artifact.key is None:
        artifact_id = f"{job_id}-{secrets.token_hex(6)}"
    else:
        artifact_id = f"{job_id}-{hashlib.sha256(artifact.key.encode()).hexdigest()[:12]}"
    target = store.artifacts_dir / artifact_id
    if (target / "manifest.json").is_file():
        return artifact_id  # stored before: the acknowledgement was lost
    shutil.rmtree(target, ignore_errors=True)  # a copy cut short by a crash
    entries = []
    for rel, source in _files(Path(path)):
        digest = sha256_of(source)
        copy = target / "files" / rel
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, copy)
        if sha256_of(copy) != digest:
            shutil.rmtree(target, ignore_errors=True)
            raise RuntimeError(f"jsonl: copy step: {rel!r} changed while it was copied")
        entries.append({"path": rel, "sha256": digest, "size": copy.stat().st_size})
    manifest = {"name": artifact.name, "type": artifact.type, "description": artifact.description,
                "metadata": dict(artifact.metadata), "job_id": job_id,
                "single_file": Path(path).is_file(), "files": entries}
    (target / "manifest.tmp").write_text(json.dumps(manifest, indent=2))
    os.replace(target / "manifest.tmp", target / "manifest.json")  # complete, or absent
    with store.lock:
        store.append(job_id, [{"event": "artifact", "id": artifact_id, "name": artifact.name}])
    return artifact_id


@trackmux.hookimpl
def download_artifact(session: JsonlSession, artifact_id: str, target_dir: Path) -> Path:
    """Copy the artifact's files into ``target_dir``, each verified against its SHA-256.

    :raises UnknownJobError: no such artifact.
    :raises ValueError: a manifest path lands outside ``target_dir`` (checked for every
        entry before anything is written, by ``safe_destination``).
    :raises RuntimeError: a stored file does not match its checksum.
    """
    store = _session(session)
    if not isinstance(artifact_id, str) or "/" in artifact_id or artifact_id.startswith("."):
        raise UnknownJobError(str(artifact_id))
    source = store.artifacts_dir / artifact_id
    if not (source / "manifest.json").is_file():
        raise UnknownJobError(artifact_id)
    manifest = json.loads((source / "manifest.json").read_text())
    root = Path(target_dir).resolve()
    plan = [(safe_destination(root, entry["path"]), entry) for entry in manifest["files"]]
    for dest, entry in plan:
        stored = source / "files" / entry["path"]
        if sha256_of(stored) != entry["sha256"]:
            raise RuntimeError(f"jsonl: stored file {entry['path']!r} fails its SHA-256 check")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(stored, dest)
        if sha256_of(dest) != entry["sha256"]:
            raise RuntimeError(f"jsonl: downloaded {entry['path']!r} fails its SHA-256 check")
    return plan[0][0] if manifest.get("single_file") else root
