"""The session: one directory of JSON Lines run files and copied artifacts."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from trackmux_spec import JobStatus, UnknownJobError

__all__ = ["JsonlSession", "sha256_of"]

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


def sha256_of(path: Path) -> str:
    """The SHA-256 hex digest of a file's content."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class _RunState:
    """What the session knows of one run file: how many records it holds, its status."""

    def __init__(self, stored: int, status: JobStatus, last_step: int | None = None) -> None:
        self.stored = stored
        self.status = status
        self.last_step = last_step


class JsonlSession:
    """Reads and appends run files under ``root``; one lock for every write."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.runs_dir = root / "runs"
        self.artifacts_dir = root / "artifacts"
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.artifacts_dir.mkdir(parents=True, exist_ok=True)
        self.lock = threading.Lock()
        self._states: dict[str, _RunState] = {}

    def run_path(self, job_id: str) -> Path:
        """The run file of ``job_id`` (which must be a safe file name)."""
        if not isinstance(job_id, str) or not _SAFE_ID.match(job_id):
            raise UnknownJobError(str(job_id))
        return self.runs_dir / f"{job_id}.jsonl"

    def events(self, job_id: str) -> Iterator[dict[str, Any]]:
        """Every event of the run, in order; a torn last line (a crash) is skipped."""
        path = self.run_path(job_id)
        if not path.is_file():
            raise UnknownJobError(job_id)
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if not line.endswith("\n"):
                    return
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(event, dict):
                    yield event

    def state(self, job_id: str) -> _RunState:
        """The run's record count and status (read from its file once, then kept current)."""
        state = self._states.get(job_id)
        if state is None:
            stored, status, last_step = 0, JobStatus.RUNNING, None
            for event in self.events(job_id):
                if event.get("event") == "metrics":
                    stored = max(stored, int(event["seq"]) + 1)
                    last_step = int(event["step"])
                elif event.get("event") == "status" and not status.is_terminal:
                    status = JobStatus(event["status"])  # the first final state wins...
                elif event.get("event") == "run":
                    status = JobStatus.RUNNING  # ...until the run is resumed
            state = self._states[job_id] = _RunState(stored, status, last_step)
        return state

    def append(self, job_id: str, events: list[dict[str, Any]]) -> None:
        """Append events as lines (``allow_nan``: NaN and infinities are kept)."""
        if not events:
            return
        text = "".join(json.dumps(event, allow_nan=True) + "\n" for event in events)
        with open(self.run_path(job_id), "a", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()

    def forget(self, job_id: str) -> None:
        """Drop the cached state (the file was rewritten or resumed)."""
        self._states.pop(job_id, None)
