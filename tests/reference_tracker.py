"""A small, correct tracker that keeps everything in memory, and broken variants of it.

The reference passes the conformance suite; each variant breaks one rule of the contract
the way real plugins have (``tests/test_conformance_mutants.py`` checks that the suite
catches every one). Stores are kept per data directory, so a second session on the same
directory (as the suite opens after ``disconnect()``) sees the first one's runs.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from trackmux._plugins import PluginManager
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
    hookimpl,
)
from trackmux_spec.artifact_paths import safe_destination
from trackmux_spec.journal import JournalRecords

NAME = "reference"


class _Job:
    def __init__(self, config: TrainingConfig) -> None:
        self.config = config
        self.rows: list[dict[str, Any]] = []
        self.status = JobStatus.RUNNING


class _Artifact:
    def __init__(self, files: dict[str, bytes], single: bool) -> None:
        self.files = files
        self.single = single


class Store:
    """One data directory's runs and artifacts."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.jobs: dict[str, _Job] = {}
        self.artifacts: dict[str, _Artifact] = {}
        self.keys: dict[str, str] = {}
        self.ids = itertools.count()

    def job(self, job_id: str) -> _Job:
        if job_id not in self.jobs:
            raise UnknownJobError(job_id)
        return self.jobs[job_id]

    def delivery_job(self, job_id: str) -> _Job:
        if job_id not in self.jobs:
            raise PermanentError(f"reference: no job {job_id!r}")
        return self.jobs[job_id]


class ReferenceTracker:
    """The reference: every hook as the hookspecs say."""

    def __init__(self) -> None:
        self.stores: dict[str, Store] = {}

    @hookimpl
    def tracker_info(self) -> TrackerInfo:
        return TrackerInfo(max_batch_records=500, journal_references=True)

    @hookimpl
    def connect(self, credentials: Mapping[str, Any], context: ConnectContext) -> Store:
        return self.stores.setdefault(str(context.data_dir), Store())

    @hookimpl
    def disconnect(self, session: Store) -> None:
        return None

    @hookimpl
    def submit_job(self, session: Store, run_id: str, config: TrainingConfig) -> str:
        with session.lock:
            job = session.jobs.setdefault(run_id, _Job(config))
            job.config = config
            job.status = JobStatus.RUNNING
        return run_id

    @hookimpl
    def update_config(self, session: Store, job_id: str, config: TrainingConfig) -> None:
        with session.lock:
            session.delivery_job(job_id).config = config

    @hookimpl
    def resume_point(self, session: Store, job_id: str) -> ResumePoint:
        with session.lock:
            rows = session.job(job_id).rows
            return ResumePoint(next_seq=len(rows), last_step=rows[-1]["_step"] if rows else None)

    @hookimpl
    def log_metrics(self, session: Store, job_id: str, records: Sequence[MetricRecord]) -> None:
        with session.lock:
            self.store_records(session.delivery_job(job_id), records)

    def store_records(self, job: _Job, records: Sequence[MetricRecord]) -> None:
        for record in records:
            if record.seq >= len(job.rows):
                job.rows.append(self.row(record))

    @staticmethod
    def row(record: MetricRecord) -> dict[str, Any]:
        return {**record.values, "_step": record.step, "_timestamp": record.timestamp}

    @hookimpl
    def finish_job(self, session: Store, job_id: str, status: JobStatus) -> None:
        with session.lock:
            job = session.delivery_job(job_id)
            if not job.status.is_terminal:
                job.status = JobStatus(status)

    @hookimpl
    def get_job_status(self, session: Store, job_id: str) -> JobStatus:
        with session.lock:
            return session.job(job_id).status

    @hookimpl
    def get_run_url(self, session: Store, job_id: str) -> str:
        return f"memory://{job_id}"

    @hookimpl
    def get_history(self, session: Store, job_id: str) -> list[dict[str, Any]]:
        with session.lock:
            return [dict(row) for row in session.job(job_id).rows]

    @hookimpl
    def compare(self, session: Store, job_ids: Sequence[str]) -> Comparison:
        runs = []
        with session.lock:
            for job_id in job_ids:
                job = session.jobs.get(job_id)
                if job is None:
                    continue
                summary: dict[str, Any] = {}
                for row in job.rows:
                    summary.update({k: v for k, v in row.items() if not k.startswith("_")})
                runs.append(RunSummary(id=job_id, name=job.config.name, state=job.status,
                                       config=job.config.hyperparameters(), summary=summary))
        return Comparison(runs=runs)

    @hookimpl
    def upload_artifact(self, session: Store, job_id: str, path: Path,
                        artifact: ArtifactSpec) -> str:
        path = Path(path)
        with session.lock:
            session.job(job_id)
            if artifact.key is not None and artifact.key in session.keys:
                return session.keys[artifact.key]
            if path.is_file():
                files, single = {path.name: path.read_bytes()}, True
            else:
                files = {p.relative_to(path).as_posix(): p.read_bytes()
                         for p in sorted(path.rglob("*")) if p.is_file()}
                single = False
            artifact_id = f"{job_id}-{next(session.ids)}"
            session.artifacts[artifact_id] = _Artifact(files, single)
            if artifact.key is not None:
                session.keys[artifact.key] = artifact_id
        return artifact_id

    @hookimpl
    def download_artifact(self, session: Store, artifact_id: str, target_dir: Path) -> Path:
        with session.lock:
            if artifact_id not in session.artifacts:
                raise UnknownJobError(artifact_id)
            artifact = session.artifacts[artifact_id]
        root = Path(target_dir)
        plan = [(safe_destination(root, name), data) for name, data in artifact.files.items()]
        for dest, data in plan:
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(self.downloaded(data))
        return plan[0][0] if artifact.single else root.resolve()

    def downloaded(self, data: bytes) -> bytes:
        return data


# -- the broken variants ----------------------------------------------------------------------


class OverwritesTheFinalState(ReferenceTracker):
    """A second finish_job replaces the first final state."""

    @hookimpl
    def finish_job(self, session: Store, job_id: str, status: JobStatus) -> None:
        with session.lock:
            session.delivery_job(job_id).status = JobStatus(status)


class EmptyHistoryForUnknownJobs(ReferenceTracker):
    """get_history of an unknown job returns [] instead of raising UnknownJobError."""

    @hookimpl
    def get_history(self, session: Store, job_id: str) -> list[dict[str, Any]]:
        with session.lock:
            job = session.jobs.get(job_id)
            return [] if job is None else [dict(row) for row in job.rows]


class EmptyDownloadForUnknownArtifacts(ReferenceTracker):
    """download_artifact of an unknown id returns target_dir, having written nothing."""

    @hookimpl
    def download_artifact(self, session: Store, artifact_id: str, target_dir: Path) -> Path:
        if artifact_id not in session.artifacts:
            return Path(target_dir)
        return super().download_artifact(session, artifact_id, target_dir)


class WritesAFileOutsideTargetDir(ReferenceTracker):
    """A one-file artifact lands beside target_dir, not in it."""

    @hookimpl
    def download_artifact(self, session: Store, artifact_id: str, target_dir: Path) -> Path:
        artifact = session.artifacts.get(artifact_id)
        if artifact is None or not artifact.single:
            return super().download_artifact(session, artifact_id, target_dir)
        ((name, data),) = artifact.files.items()
        dest = Path(target_dir).parent / name
        dest.write_bytes(data)
        return dest


class DuplicatesOnRetry(ReferenceTracker):
    """log_metrics ignores seq: a resent batch is stored again."""

    def store_records(self, job: _Job, records: Sequence[MetricRecord]) -> None:
        job.rows.extend(self.row(record) for record in records)


class DropsTheLastRecord(ReferenceTracker):
    """log_metrics acknowledges a whole batch but stores all but its last record."""

    def store_records(self, job: _Job, records: Sequence[MetricRecord]) -> None:
        super().store_records(job, list(records)[:-1])


class ForgetsTheSeqBase(ReferenceTracker):
    """Journal references numbered by the journal's own seq, without ``seq_base``."""

    def store_records(self, job: _Job, records: Sequence[MetricRecord]) -> None:
        if isinstance(records, JournalRecords):
            records = [MetricRecord(r.seq - records.seq_base, r.step, r.timestamp, r.values)
                       for r in records]
        super().store_records(job, records)


class NeverFinishes(ReferenceTracker):
    """finish_job does nothing: the job stays running forever."""

    @hookimpl
    def finish_job(self, session: Store, job_id: str, status: JobStatus) -> None:
        session.delivery_job(job_id)


class CorruptsDownloads(ReferenceTracker):
    """download_artifact flips one byte in the middle of every file."""

    def downloaded(self, data: bytes) -> bytes:
        if not data:
            return data
        middle = len(data) // 2
        return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:]


VARIANTS: dict[str, type[ReferenceTracker]] = {
    cls.__name__: cls
    for cls in (ReferenceTracker, OverwritesTheFinalState, EmptyHistoryForUnknownJobs,
                EmptyDownloadForUnknownArtifacts, WritesAFileOutsideTargetDir,
                DuplicatesOnRetry, DropsTheLastRecord, NeverFinishes, CorruptsDownloads,
                ForgetsTheSeqBase)
}


def plugin_manager(variant: str) -> PluginManager:
    """A manager with only ``variant`` of the reference tracker, registered as ``reference``."""
    pm = PluginManager(entry_points=False)
    pm.register(VARIANTS[variant](), name=NAME)
    return pm
