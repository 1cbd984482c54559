"""trackmux_null: the offline tracker, trackmux's embedded default.

It needs no credentials and no network: every hook reads and writes files under the
data directory the core hands to :func:`connect` (``ConnectContext.data_dir``). The
module itself is the plugin (entry point ``null = "trackmux_null"``); the hooks are plain
functions, run by the core in a worker thread.

On-disk layout, under the data directory::

    runs/<job_id>/meta.json         run_id, name, config (TrainingConfig.to_dict()),
                                    hyperparameters, state, created, finished (Unix
                                    seconds or null), pid, hostname
    runs/<job_id>/history.tmf       the rows, in frames (trackmux_spec.framing), in seq
                                    order: either a reference to a range of records in
                                    the core's journal ({"_journal": its path relative to this
                                    directory, "_start", "_stop", "_seq_base"}),
                                    or one dict per record, its values plus "_step",
                                    "_timestamp" and "_seq" (0, 1, 2, ...); get_history
                                    reads them
    artifacts/<artifact_id>.json    manifest: name, type, description, metadata, job_id,
                                    files: [{path, sha256, size}] (relative POSIX paths)
    blobs/sha256/<aa>/<hex>         file contents by SHA-256; identical content is stored once

Every directory is created with mode ``0o700`` and every file with ``0o600``.
``meta.json`` and manifests are replaced atomically (temporary file, ``os.replace``);
history frames are appended and flushed (not fsynced; the core's journal is the durable
copy). A frame torn by a crash is cut off when the job's history is next loaded for
writing, and ignored when it is read.

Records that reach it through the engine are kept by reference (``journal_references``
in :func:`tracker_info`, :mod:`trackmux_spec.journal`): the journal already holds them, so
acknowledging up to 20,000 records appends one small item instead of decoding, re-encoding and
writing every row a second time. The offline tracker's history therefore lives in the
journal: deleting ``journal/<run id>`` deletes it (``get_history`` then says which journal
is missing). Records handed to :func:`log_metrics` as a plain list (a wrapper plugin that
rebuilt the batch, the conformance suite) are written as rows; frames keep their floats
binary.

NaN and infinities are stored and read back as the same Python floats.

A job whose recorded state is still ``running`` but whose recorded process (same
hostname) no longer exists is reported as :attr:`~trackmux_spec.JobStatus.CRASHED`.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import trackmux_spec
from trackmux_spec import (
    ArtifactSpec,
    Comparison,
    ConnectContext,
    JobStatus,
    MetricRecord,
    PermanentError,
    ResumePoint,
    RunSummary,
    TrackerInfo,
    TrainingConfig,
    UnknownJobError,
)
from trackmux_spec.artifact_paths import safe_destination
from trackmux_spec.journal import JournalRecords

from ._store import RESERVED_KEYS, NullSession, is_alive, make_dir, read_json, write_json_atomic

__all__ = [
    "NullSession",
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

_CAPABILITIES: frozenset[str] = frozenset({"artifacts", "compare", "history"})
_FINAL_STATES = (JobStatus.FINISHED, JobStatus.FAILED, JobStatus.KILLED, JobStatus.PREEMPTED)
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def _session(session: object) -> NullSession:
    if not isinstance(session, NullSession):
        raise TypeError(f"not a null tracker session: {session!r}")
    session.check_open()
    return session


@trackmux_spec.hookimpl
def tracker_info() -> TrackerInfo:
    """Large batches, no rate limit, every capability, rows kept by reference to the journal."""
    return TrackerInfo(
        max_batch_records=20_000,
        journal_references=True,
        min_batch_interval=0.0,
        capabilities=_CAPABILITIES,  # type: ignore[arg-type]  # mypy vs converter=frozenset
        settings=frozenset(),  # the offline tracker reads no settings
    )


@trackmux_spec.hookimpl
def connect(credentials: Mapping[str, Any], context: ConnectContext) -> NullSession:
    """Open the store under ``context.data_dir`` (created ``0o700`` if missing).

    ``credentials`` are ignored: the null tracker has none.
    """
    return NullSession(context.data_dir)


@trackmux_spec.hookimpl
def disconnect(session: NullSession) -> None:
    """Close the session's open history files."""
    if isinstance(session, NullSession):
        session.close()


@trackmux_spec.hookimpl
def submit_job(session: NullSession, run_id: str, config: TrainingConfig) -> str:
    """Create the run ``run_id`` or resume it; the job id is ``run_id``.

    Resuming keeps the run's history and creation time, records the new configuration
    and this process as the run's owner, and sets the state back to ``running``.

    :raises ValueError: ``run_id`` is not usable as a file name (``[A-Za-z0-9._-]``, at
        most 200 characters, not starting with ``.``, ``_`` or ``-``).
    """
    store = _session(session)
    try:
        store.run_dir(run_id)
    except UnknownJobError:
        raise ValueError(f"run id {run_id!r} is not a safe file name") from None
    with store.lock:
        previous = read_json(store.meta_path(run_id)) or {}
        store.write_meta(
            run_id,
            {
                "run_id": run_id,
                "name": config.name,
                "config": config.to_dict(),
                "hyperparameters": config.hyperparameters(),
                "state": JobStatus.RUNNING.value,
                "created": previous.get("created", time.time()),
                "finished": None,
                "pid": os.getpid(),
                "hostname": store.hostname,
            },
        )
    return run_id


@trackmux_spec.hookimpl
def update_config(session: NullSession, job_id: str, config: TrainingConfig) -> None:
    """Replace the job's stored configuration (``config`` and ``hyperparameters``).

    :raises PermanentError: no such job (as for the other delivery hooks).
    """
    store = _session(session)
    with store.lock:
        try:
            meta = store.read_meta(job_id)
        except UnknownJobError as exc:
            raise PermanentError(f"the null store has no job {job_id!r}") from exc
        meta["name"] = config.name
        meta["config"] = config.to_dict()
        meta["hyperparameters"] = config.hyperparameters()
        store.write_meta(job_id, meta)


@trackmux_spec.hookimpl
def resume_point(session: NullSession, job_id: str) -> ResumePoint:
    """How many rows the job holds (rows are records, in ``seq`` order) and the last step.

    :raises UnknownJobError: no such job.
    """
    store = _session(session)
    with store.lock:
        try:
            count = store.stored_count(job_id)
            return ResumePoint(next_seq=count, last_step=store.last_step(job_id))
        except RuntimeError as exc:
            raise PermanentError(f"history of job {job_id!r} is corrupt: {exc}") from exc


@trackmux_spec.hookimpl
def log_metrics(session: NullSession, job_id: str, records: Sequence[MetricRecord]) -> None:
    """Append the records to the job's history, each ``seq`` exactly once.

    Records whose ``seq`` is already stored are skipped (a resent batch).

    :raises PermanentError: the batch is not consecutive, or starts after a gap (the
        message names the expected and the received ``seq``), a metric uses a reserved
        name (``_step``, ``_timestamp``, ``_seq``), a value cannot be stored, or
        the stored history is corrupt.
    :raises RetryableError: writing the file failed.
    :raises PermanentError: no such job (retrying cannot create it).
    """
    store = _session(session)
    with store.lock:
        try:
            expected = store.stored_count(job_id)
        except UnknownJobError as exc:
            raise PermanentError(f"the null store has no job {job_id!r}") from exc
        except RuntimeError as exc:
            raise PermanentError(f"history of job {job_id!r} is corrupt: {exc}") from exc
        if isinstance(records, JournalRecords):
            _log_reference(store, job_id, records, expected)
            return
        rows: list[dict[str, Any]] = []
        previous: int | None = None
        for record in records:
            if record.seq < 0 or (previous is not None and record.seq != previous + 1):
                raise PermanentError(
                    f"job {job_id!r}: records are not consecutive from 0: seq {record.seq}"
                    f" follows seq {previous}"
                )
            previous = record.seq
            if record.seq < expected:
                continue
            if record.seq > expected:
                raise PermanentError(
                    f"job {job_id!r}: gap in records: expected seq {expected},"
                    f" received seq {record.seq}"
                )
            clash = RESERVED_KEYS.intersection(record.values)
            if clash:
                raise PermanentError(
                    f"job {job_id!r}, seq {record.seq}: reserved metric name(s) {sorted(clash)}"
                )
            rows.append(
                {
                    **record.values,
                    "_step": int(record.step),
                    "_timestamp": float(record.timestamp),
                    "_seq": record.seq,
                }
            )
            expected += 1
        try:
            store.append_rows(job_id, rows)
        except (TypeError, ValueError) as exc:
            raise PermanentError(f"job {job_id!r}: values not storable: {exc}") from exc


def _log_reference(
    store: NullSession, job_id: str, records: JournalRecords, expected: int
) -> None:
    """Store a range of the core's journal by reference: no record is decoded or copied."""
    first = records.first_seq
    if first > expected:
        raise PermanentError(
            f"job {job_id!r}: gap in records: expected seq {expected}, received seq {first}"
        )
    skip = expected - first  # a resent range: what is already held is not stored again
    if skip < len(records):
        store.append_reference(
            job_id, records.path, records.start + skip, records.stop, records.seq_base
        )


@trackmux_spec.hookimpl
def finish_job(session: NullSession, job_id: str, status: JobStatus) -> None:
    """Record the job's final state and time.

    Idempotent: a job already in a final state keeps it (and its time); only
    :func:`submit_job` (a resume) makes it ``running`` again.

    :raises PermanentError: ``status`` is not a final state (``FINISHED``, ``FAILED``,
        ``KILLED`` or ``PREEMPTED``), or there is no such job.
    """
    store = _session(session)
    status = JobStatus(status)
    if status not in _FINAL_STATES:
        raise PermanentError(f"job {job_id!r}: {status.value!r} is not a final state")
    with store.lock:
        try:
            meta = store.read_meta(job_id)
        except UnknownJobError as exc:
            raise PermanentError(f"the null store has no job {job_id!r}") from exc
        store.release(job_id)
        if meta.get("state") != JobStatus.RUNNING.value:
            return
        meta["state"] = status.value
        meta["finished"] = time.time()
        store.write_meta(job_id, meta)


def _status(store: NullSession, meta: Mapping[str, Any]) -> JobStatus:
    state = JobStatus(meta["state"])
    if (
        state is JobStatus.RUNNING
        and meta.get("hostname") == store.hostname
        and not is_alive(meta.get("pid"))
    ):
        return JobStatus.CRASHED
    return state


@trackmux_spec.hookimpl
def get_job_status(session: NullSession, job_id: str) -> JobStatus:
    """The recorded state; ``CRASHED`` if still ``running`` but its process is gone.

    :raises UnknownJobError: no such job.
    """
    store = _session(session)
    return _status(store, store.read_meta(job_id))


@trackmux_spec.hookimpl
def get_run_url(session: NullSession, job_id: str) -> str:
    """The ``file://`` URL of the job's directory (no I/O)."""
    return _session(session).run_dir(job_id).as_uri()


def _public(row: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in row.items() if k != "_seq"}
    out["_step"] = int(out["_step"])
    out["_timestamp"] = float(out["_timestamp"])
    return out


@trackmux_spec.hookimpl
def get_history(session: NullSession, job_id: str) -> list[dict[str, Any]]:
    """Every stored row in order: metric values plus ``_step`` and ``_timestamp``.

    :raises UnknownJobError: no such job.
    """
    return [_public(row) for row in _session(session).history(job_id)]


@trackmux_spec.hookimpl
def compare(session: NullSession, job_ids: Sequence[str]) -> Comparison:
    """Summaries of the known jobs among ``job_ids`` (the others are left out).

    Each summary's ``config`` is the run's hyperparameters; its ``summary`` is the last
    value of every metric plus the last ``_step``.
    """
    store = _session(session)
    runs: list[RunSummary] = []
    for job_id in job_ids:
        try:
            meta = store.read_meta(job_id)
            rows = store.history(job_id)
        except UnknownJobError:
            continue
        summary: dict[str, Any] = {}
        for row in rows:
            summary.update(row)
        summary.pop("_seq", None)
        summary.pop("_timestamp", None)
        runs.append(
            RunSummary(
                id=job_id,
                name=meta.get("name"),
                state=_status(store, meta),
                config=meta.get("hyperparameters", {}),
                summary=summary,
                url=store.run_dir(job_id).as_uri(),
            )
        )
    return Comparison(runs=runs, url=store.runs_dir.as_uri())


def _artifact_files(path: Path) -> list[tuple[str, Path]]:
    if not path.is_dir():
        return [(path.name, path)]
    found = []
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames.sort()
        for name in sorted(filenames):
            file = Path(dirpath) / name
            if file.is_file():
                found.append((file.relative_to(path).as_posix(), file))
    return found


@trackmux_spec.hookimpl
def upload_artifact(session: NullSession, job_id: str, path: Path, artifact: ArtifactSpec) -> str:
    """Store a file, or every regular file under a directory, as one artifact.

    File contents go to ``blobs/`` by SHA-256 (stored once); the manifest lists each
    file's path relative to ``path`` (POSIX), digest and size.

    :returns: the artifact id, ``<sanitised name>-<12 hex digits>``: derived from
        ``artifact.key`` when there is one, so a resent artifact is stored once.
    :raises FileNotFoundError: ``path`` does not exist.
    :raises UnknownJobError: no such job.
    """
    store = _session(session)
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"artifact path does not exist: {path}")
    store.read_meta(job_id)
    stem = _UNSAFE_NAME.sub("-", artifact.name).strip("-._")[:64] or "artifact"
    if artifact.key is not None:
        keyed_id = f"{stem}-{hashlib.sha256(artifact.key.encode()).hexdigest()[:12]}"
        if store.manifest_path(keyed_id).exists():
            return keyed_id
    files = []
    for rel, file in _artifact_files(path):
        digest, size = store.put_blob(file)
        files.append({"path": rel, "sha256": digest, "size": size})
    manifest = {
        "name": artifact.name,
        "type": artifact.type,
        "description": artifact.description,
        "metadata": dict(artifact.metadata),
        "job_id": job_id,
        "files": files,
        "key": artifact.key,
    }
    with store.lock:
        make_dir(store.root / "artifacts")
        if artifact.key is not None:
            write_json_atomic(store.manifest_path(keyed_id), manifest)
            return keyed_id
        while True:
            artifact_id = f"{stem}-{secrets.token_hex(6)}"
            target = store.manifest_path(artifact_id)
            if not target.exists():
                break
        write_json_atomic(target, manifest)
    return artifact_id


@trackmux_spec.hookimpl
def download_artifact(session: NullSession, artifact_id: str, target_dir: Path) -> Path:
    """Copy the artifact's files into ``target_dir``, verifying every SHA-256.

    Every manifest path is checked before anything is written, and every file is
    written to a temporary name and renamed only once all of them verified.

    :returns: the (resolved) path of the file for a one-file artifact, else the
        resolved ``target_dir``.
    :raises UnknownJobError: no such artifact (its ``job_id`` is ``artifact_id``).
    :raises ValueError: a manifest path is absolute or lands outside ``target_dir``.
    :raises RuntimeError: a stored file is missing or does not match its checksum.
    """
    store = _session(session)
    manifest = read_json(store.manifest_path(artifact_id))
    if manifest is None:
        raise UnknownJobError(artifact_id)
    root = Path(target_dir).resolve()
    plan: list[tuple[Path, str, str, int]] = []
    seen: set[Path] = set()
    for entry in manifest["files"]:
        dest = safe_destination(root, entry.get("path"))
        if dest in seen:
            raise ValueError(f"artifact path {entry['path']!r} is listed twice: refused")
        seen.add(dest)
        store.blob_path(entry["sha256"])
        plan.append((dest, entry["path"], entry["sha256"], entry["size"]))
    staged: list[tuple[Path, Path]] = []
    try:
        for dest, rel, digest, size in plan:
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(6)}.part")
            staged.append((tmp, dest))
            written = 0
            with open(tmp, "xb") as out:
                for chunk in store.read_blob(digest, rel):
                    out.write(chunk)
                    written += len(chunk)
            if written != size:
                raise RuntimeError(f"artifact file {rel!r}: {written} bytes, expected {size}")
        for tmp, dest in staged:
            os.replace(tmp, dest)
    except BaseException:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise
    return plan[0][0] if len(plan) == 1 else root
