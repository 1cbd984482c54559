"""An in-memory tracker plugin for engine tests: rows by seq, optional gate and failures."""

from __future__ import annotations

import threading
from typing import Any

from trackmux_spec import (
    Comparison,
    JobStatus,
    PermanentError,
    RunSummary,
    TrackerInfo,
    UnknownJobError,
    hookimpl,
)


class MemoryTracker:
    """Stores rows per job by seq (idempotent). ``gate`` blocks deliveries until set;
    ``fail_with`` makes every log_metrics raise it."""

    def __init__(self, info: TrackerInfo | None = None) -> None:
        self.rows: dict[str, dict[int, dict[str, Any]]] = {}
        self.status: dict[str, JobStatus] = {}
        self.gate = threading.Event()
        self.gate.set()
        self.fail_with: BaseException | None = None
        self.calls = 0
        self._info = info or TrackerInfo()

    @hookimpl
    def tracker_info(self) -> TrackerInfo:
        return self._info

    @hookimpl
    def connect(self, credentials: Any, context: Any) -> object:
        return self

    @hookimpl
    def disconnect(self, session: object) -> None:
        return None

    @hookimpl
    def submit_job(self, session: object, run_id: str, config: Any) -> str:
        self.rows.setdefault(run_id, {})
        self.status.setdefault(run_id, JobStatus.RUNNING)
        return run_id

    @hookimpl
    def log_metrics(self, session: object, job_id: str, records: Any) -> None:
        self.gate.wait()
        self.calls += 1
        if self.fail_with is not None:
            raise self.fail_with
        stored = self.rows[job_id]
        for record in records:
            stored.setdefault(record.seq, dict(record.values, _step=record.step,
                                               _timestamp=record.timestamp))

    @hookimpl
    def finish_job(self, session: object, job_id: str, status: JobStatus) -> None:
        self.status[job_id] = status

    @hookimpl
    def get_job_status(self, session: object, job_id: str) -> JobStatus:
        if job_id not in self.status:
            raise UnknownJobError(job_id)
        return self.status[job_id]

    @hookimpl
    def get_run_url(self, session: object, job_id: str) -> str:
        return f"memory://{job_id}"

    @hookimpl
    def get_history(self, session: object, job_id: str) -> list[dict[str, Any]]:
        return [row for _, row in sorted(self.rows[job_id].items())]

    @hookimpl
    def compare(self, session: object, job_ids: Any) -> Comparison:
        return Comparison(runs=[RunSummary(id=j, name=None, state=self.status[j], config={},
                                           summary={}) for j in job_ids if j in self.rows])

    def values(self, job_id: str, key: str) -> list[Any]:
        return [row[key] for _, row in sorted(self.rows.get(job_id, {}).items())]


def permanent(message: str = "rejected") -> PermanentError:
    return PermanentError(message)
