"""The local append-only journal: every accepted record of a run, before any tracker sees it.

One directory per run, under ``<data dir>/journal/<run id>/``::

    run.json            the run: config, creation, the trackers it goes to and their job ids,
                        and its final state once finish() or cancel_job() was called
    records.jsonl       one line per record: [seq, step, timestamp, {name: value}]
    cursors/<tracker>   "<seq> <byte offset>": what that tracker acknowledged

Records are appended by the engine's committer (group commit), read back by each tracker's
worker from its cursor, and replayed by ``trackmux sync``. A line torn by a crash is cut off
when the journal is reopened: it was never acknowledged to anyone.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from trackmux_spec import MetricRecord

from ._files import make_private_dir, open_private, read_json, write_json_atomic

__all__ = ["Cursor", "RecordReader", "RunJournal", "encode_records", "iter_run_ids", "pid_alive"]

_ENCODER = json.JSONEncoder(allow_nan=True, separators=(",", ":"), ensure_ascii=False)
_encode = _ENCODER.encode

Cursor = tuple[int, int]  # (next seq to deliver, byte offset of that record's line)


def encode_records(records: list[tuple[int, int, float, dict[str, Any]]]) -> bytes:
    """The journal lines of ``records`` (``(seq, step, timestamp, values)`` tuples)."""
    return ("\n".join(map(_encode, records)) + "\n").encode("utf-8")


def _decode(line: bytes) -> MetricRecord:
    seq, step, timestamp, values = json.loads(line)
    return MetricRecord(seq, step, timestamp, values)


class RecordReader:
    """Reads a run's records sequentially from a byte offset."""

    def __init__(self, path: Path, cursor: Cursor) -> None:
        self._handle: BinaryIO = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._handle.seek(cursor[1])
        self.cursor = cursor

    def read(self, count: int) -> tuple[list[MetricRecord], Cursor]:
        """Up to ``count`` complete records from the current position, and the cursor after them."""
        records: list[MetricRecord] = []
        seq, offset = self.cursor
        handle = self._handle
        while len(records) < count:
            line = handle.readline()
            if not line.endswith(b"\n"):
                handle.seek(offset)
                break
            records.append(_decode(line))
            offset += len(line)
            seq += 1
        self.cursor = (seq, offset)
        return records, self.cursor

    def rewind(self, cursor: Cursor) -> None:
        """Go back to ``cursor`` (a batch that must be read again)."""
        self._handle.seek(cursor[1])
        self.cursor = cursor

    def close(self) -> None:
        """Close the file."""
        self._handle.close()


class RunJournal:
    """One run's journal directory (see the module docstring)."""

    def __init__(self, directory: Path, meta: dict[str, Any]) -> None:
        self.directory = directory
        self.meta = meta
        self.records_path = directory / "records.jsonl"
        self.record_count = 0
        self.last_step = -1
        self.size = 0
        self._writer: BinaryIO | None = None

    @property
    def run_id(self) -> str:
        """The run's id."""
        return str(self.meta["run_id"])

    @classmethod
    def create(cls, root: Path, run_id: str, config: dict[str, Any]) -> RunJournal:
        """Start the journal of a new run; ``FileExistsError`` if the run id is taken."""
        directory = root / run_id
        make_private_dir(root)
        directory.mkdir(mode=0o700)
        make_private_dir(directory / "cursors")
        meta = {
            "run_id": run_id,
            "config": config,
            "created": time.time(),
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "trackers": {},
            "final_status": None,
            "writer": {"pid": os.getpid(), "host": socket.gethostname()},
        }
        journal = cls(directory, meta)
        journal.save_meta()
        open_private(journal.records_path, "ab").close()
        return journal

    @staticmethod
    def read_meta(root: Path, run_id: str) -> dict[str, Any]:
        """A run's ``run.json``, without touching its records; ``LookupError`` if none."""
        try:
            return dict(read_json(root / run_id / "run.json"))
        except FileNotFoundError:
            raise LookupError(f"no run {run_id!r} in the journal at {root}") from None

    @classmethod
    def open(cls, root: Path, run_id: str) -> RunJournal:
        """Reopen an existing run's journal (after a crash, for sync), repairing a torn tail.

        Refuses (``RuntimeError``) a run that a live process on this machine still writes:
        only one process appends to a journal.
        """
        meta = cls.read_meta(root, run_id)
        writer = meta.get("writer")
        if writer and writer.get("host") == socket.gethostname() \
                and writer.get("pid") != os.getpid() and pid_alive(int(writer["pid"])):
            raise RuntimeError(
                f"run {run_id!r} is still being written by process {writer['pid']}; "
                f"wait until it ends (or disconnects) before resuming or syncing it")
        journal = cls(root / run_id, meta)
        journal._scan()
        journal.meta["writer"] = {"pid": os.getpid(), "host": socket.gethostname()}
        journal.save_meta()
        return journal

    def _scan(self) -> None:
        count = 0
        good = 0
        last_line = b""
        with open(self.records_path, "rb") as handle:
            for line in handle:
                if not line.endswith(b"\n"):
                    break
                count += 1
                good += len(line)
                last_line = line
        if good != self.records_path.stat().st_size:
            os.truncate(self.records_path, good)
        self.record_count = count
        self.size = good
        if last_line:
            self.last_step = int(json.loads(last_line)[1])

    # -- records --------------------------------------------------------------

    def append(self, data: bytes, count: int, last_step: int, *, fsync: bool = False) -> None:
        """Append encoded records (already numbered from :attr:`record_count`)."""
        if self._writer is None:
            self._writer = open_private(self.records_path, "ab")
        self._writer.write(data)
        self._writer.flush()
        if fsync:
            os.fsync(self._writer.fileno())
        self.record_count += count
        self.size += len(data)
        self.last_step = last_step

    def reader(self, cursor: Cursor) -> RecordReader:
        """A reader positioned at ``cursor``."""
        return RecordReader(self.records_path, cursor)

    def read_all(self) -> Iterator[MetricRecord]:
        """Every complete record, in order."""
        with open(self.records_path, "rb") as handle:
            for line in handle:
                if line.endswith(b"\n"):
                    yield _decode(line)

    def close(self) -> None:
        """Close the append handle and release the run for other processes."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self.meta.get("writer"):
            self.meta["writer"] = None
            self.save_meta()

    # -- cursors and metadata -------------------------------------------------

    def read_cursor(self, tracker: str) -> Cursor:
        """What ``tracker`` acknowledged, ``(0, 0)`` if nothing."""
        try:
            text = (self.directory / "cursors" / tracker).read_text()
        except FileNotFoundError:
            return (0, 0)
        seq, offset = text.split()
        return (int(seq), int(offset))

    def write_cursor(self, tracker: str, cursor: Cursor) -> None:
        """Record that ``tracker`` acknowledged every record before ``cursor``."""
        path = self.directory / "cursors" / tracker
        tmp = path.with_name(f".{tracker}.tmp")
        fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(f"{cursor[0]} {cursor[1]}")
        os.replace(tmp, path)

    def tracker_job(self, tracker: str) -> str | None:
        """The job id ``tracker`` gave this run, if it was submitted there."""
        entry = self.meta["trackers"].get(tracker)
        return None if entry is None else entry.get("job_id")

    def set_tracker_job(self, tracker: str, job_id: str) -> None:
        """Remember the job id ``tracker`` gave this run."""
        self.meta["trackers"][tracker] = {"job_id": job_id}
        self.save_meta()

    def set_tracker_finished(self, tracker: str) -> None:
        """Remember that ``tracker`` was told the run's final state."""
        self.meta["trackers"].setdefault(tracker, {})["finished"] = True
        self.save_meta()

    def tracker_finished(self, tracker: str) -> bool:
        """Whether ``tracker`` was told the run's final state."""
        return bool(self.meta["trackers"].get(tracker, {}).get("finished"))

    def set_final_status(self, status: str) -> None:
        """Record the run's final state (``finished``, ``failed`` or ``killed``)."""
        self.meta["final_status"] = status
        self.save_meta()

    def save_meta(self) -> None:
        """Write ``run.json``."""
        write_json_atomic(self.directory / "run.json", self.meta)


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def iter_run_ids(root: Path) -> list[str]:
    """The ids of every run in the journal at ``root``, oldest first."""
    if not root.is_dir():
        return []
    created: list[tuple[float, str]] = []
    for path in root.iterdir():
        try:
            created.append((float(read_json(path / "run.json")["created"]), path.name))
        except (OSError, ValueError, KeyError):
            continue
    return [name for _, name in sorted(created)]
