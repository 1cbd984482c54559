"""The local append-only journal: every accepted record of a run, before any tracker sees it.

One directory per run, under ``<data dir>/journal/<run id>/``::

    run.json            the run: config, creation, the trackers it goes to and their job ids,
                        its final state once finish() or cancel_job() was called, and the
                        process writing it (cleared when that process lets go)
    records.tmf         the records, in frames (see :mod:`trackmux_spec.framing`): one frame
                        per group commit, each record a tuple (seq, step, timestamp, values)
    cursors/<tracker>   "<seq> <byte offset>": what that tracker acknowledged; the offset is
                        the start of the frame holding record <seq>
    artifacts.json      the run's artifacts, in upload order (see :mod:`trackmux._artifacts`):
                        name, type, description, metadata, files with size and SHA-256, and
                        ``after_seq``, the number of records logged before the upload
    artifact_marks/<tracker>.json
                        what that tracker holds of them: index -> {"state": "delivered",
                        "remote_id": ...}

Artifacts are read and written only through :meth:`RunJournal.add_artifact`,
:meth:`RunJournal.artifacts`, :meth:`RunJournal.artifact_marks` and
:meth:`RunJournal.mark_artifact`, so their storage can move with the journal's container.

Records are appended by the engine's committer (group commit), read back by each tracker's
worker from its cursor, and replayed by ``trackmux sync``. A frame torn by a crash is cut off
when the journal is reopened: it was never acknowledged to anyone.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from trackmux_spec import MetricRecord
from trackmux_spec.framing import encode_frame, iter_frames, valid_length

from ._files import make_private_dir, open_private, read_json, write_json_atomic

__all__ = [
    "Cursor",
    "RecordReader",
    "RunJournal",
    "count_records",
    "encode_records",
    "iter_run_ids",
    "pid_alive",
    "read_records",
]

RECORDS_FILE = "records.tmf"
ARTIFACTS_FILE = "artifacts.json"

Cursor = tuple[int, int]  # (next seq to deliver, byte offset of the frame holding it)


#: Records per frame: ``marshal`` holds the interpreter lock for a whole frame, so frames stay
#: small enough (about a millisecond to encode) not to stall the training thread.
FRAME_RECORDS = 2048


def encode_records(records: list[tuple[int, int, float, dict[str, Any]]]) -> bytes:
    """The journal frames of ``records`` (``(seq, step, timestamp, values)`` tuples)."""
    if len(records) <= FRAME_RECORDS:
        return encode_frame(records)
    return b"".join(encode_frame(records[start:start + FRAME_RECORDS])
                    for start in range(0, len(records), FRAME_RECORDS))


def read_records(path: Path) -> Iterator[tuple[int, int, float, dict[str, Any]]]:
    """Every complete record of a journal file, as tuples, in order (read-only)."""
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        return
    with handle:
        for _, _, _, items in iter_frames(handle):
            yield from items  # type: ignore[misc]


def count_records(path: Path) -> int:
    """How many complete records a journal file holds (headers only; read-only)."""
    try:
        with open(path, "rb") as handle:
            return valid_length(handle)[1]
    except FileNotFoundError:
        return 0


class RecordReader:
    """Reads a run's records sequentially from a cursor."""

    def __init__(self, path: Path, cursor: Cursor) -> None:
        self._handle: BinaryIO = open(path, "rb")
        self.rewind(cursor)

    def rewind(self, cursor: Cursor) -> None:
        """Go to ``cursor`` (also: a batch that must be read again)."""
        self.cursor = cursor
        self._items: list[Any] = []
        self._index = 0
        self._frame_start = cursor[1]
        self._next_frame = cursor[1]

    def _load_next_frame(self) -> bool:
        for start, end, _, items in iter_frames(self._handle, self._next_frame):
            self._frame_start, self._next_frame = start, end
            self._items = items  # type: ignore[assignment]
            self._index = max(0, self.cursor[0] - self._items[0][0]) if self._items else 0
            return True
        return False

    def read(self, count: int) -> tuple[list[MetricRecord], Cursor]:
        """Up to ``count`` records from the cursor, and the cursor after them."""
        records: list[MetricRecord] = []
        while len(records) < count:
            if self._index >= len(self._items):
                if not self._load_next_frame():
                    break
                continue
            take = self._items[self._index : self._index + count - len(records)]
            records.extend(MetricRecord(*item) for item in take)
            self._index += len(take)
        seq = self.cursor[0] + len(records)
        offset = self._frame_start if self._index < len(self._items) else self._next_frame
        self.cursor = (seq, offset)
        return records, self.cursor

    def close(self) -> None:
        """Close the file."""
        self._handle.close()


class RunJournal:
    """One run's journal directory (see the module docstring)."""

    def __init__(self, directory: Path, meta: dict[str, Any]) -> None:
        self.directory = directory
        self.meta = meta
        self.records_path = directory / RECORDS_FILE
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
    def peek(cls, root: Path, run_id: str) -> RunJournal:
        """A read-only view of a run (its metadata and cursors) that claims nothing: the
        process writing it may be alive. Use :meth:`open` to append or deliver."""
        return cls(root / run_id, cls.read_meta(root, run_id))

    @classmethod
    def open(cls, root: Path, run_id: str) -> RunJournal:
        """Reopen an existing run's journal (after a crash, for sync), repairing a torn tail.

        Refuses (``RuntimeError``) a run that a live process on this machine still writes:
        only one process appends to a journal.
        """
        meta = cls.read_meta(root, run_id)
        writer = meta.get("writer")
        if (
            writer
            and writer.get("host") == socket.gethostname()
            and writer.get("pid") != os.getpid()
            and pid_alive(int(writer["pid"]))
        ):
            raise RuntimeError(
                f"run {run_id!r} is still being written by process {writer['pid']}; "
                f"wait until it ends (or disconnects) before resuming or syncing it"
            )
        journal = cls(root / run_id, meta)
        journal._scan()
        journal.meta["writer"] = {"pid": os.getpid(), "host": socket.gethostname()}
        journal.save_meta()
        return journal

    def _scan(self) -> None:
        last_start = None
        count = good = 0
        with open(self.records_path, "rb") as handle:
            for start, end, records, _ in iter_frames(handle, 0, decode=False):
                last_start, good, count = start, end, count + records
            if last_start is not None:
                last_frame = next(iter_frames(handle, last_start))[3]
                self.last_step = int(last_frame[-1][1])  # type: ignore[index]
        if good != self.records_path.stat().st_size:
            os.truncate(self.records_path, good)
        self.record_count = count
        self.size = good

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
        for item in read_records(self.records_path):
            yield MetricRecord(*item)

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

    # -- artifacts ------------------------------------------------------------

    def artifacts(self) -> list[dict[str, Any]]:
        """The run's artifact entries, in upload order (index = position)."""
        try:
            entries = read_json(self.directory / ARTIFACTS_FILE)
        except FileNotFoundError:
            return []
        return list(entries)

    def add_artifact(self, entry: dict[str, Any]) -> dict[str, Any]:
        """Append an artifact entry; it gets its ``index`` and stable ``id``, and is returned.

        The id is ``<run id>:<name>:<index>``: stable across processes and ``trackmux sync``.
        """
        entries = self.artifacts()
        index = len(entries)
        entry = {**entry, "index": index, "id": f"{self.run_id}:{entry['name']}:{index}"}
        entries.append(entry)
        write_json_atomic(self.directory / ARTIFACTS_FILE, entries)
        return entry

    def artifact_marks(self, tracker: str) -> dict[int, dict[str, Any]]:
        """What ``tracker`` holds of the run's artifacts: index -> mark."""
        try:
            marks = read_json(self.directory / "artifact_marks" / f"{tracker}.json")
        except FileNotFoundError:
            return {}
        return {int(index): dict(mark) for index, mark in marks.items()}

    def mark_artifact(self, tracker: str, index: int, mark: dict[str, Any]) -> None:
        """Record ``mark`` (``{"state": "delivered", "remote_id": ...}``) for one artifact."""
        marks = self.artifact_marks(tracker)
        marks[index] = mark
        write_json_atomic(make_private_dir(self.directory / "artifact_marks") / f"{tracker}.json",
                          {str(i): m for i, m in sorted(marks.items())})

    def tracker_job(self, tracker: str) -> str | None:
        """The job id ``tracker`` gave this run, if it was submitted there."""
        entry = self.meta["trackers"].get(tracker)
        return None if entry is None else entry.get("job_id")

    def set_tracker_job(self, tracker: str, job_id: str, *, seq_base: int = 0) -> None:
        """Remember the job id ``tracker`` gave this run, and the ``seq`` offset of this
        journal's records on it (what the job held before; see ``resume_point``)."""
        entry = self.meta["trackers"].setdefault(tracker, {})
        if entry.get("job_id") != job_id:
            entry.pop("finished", None)
        entry.update(job_id=job_id, seq_base=seq_base)
        self.save_meta()

    def tracker_seq_base(self, tracker: str) -> int:
        """What ``tracker``'s job held before this journal delivered to it (0 if nothing)."""
        entry = self.meta["trackers"].get(tracker) or {}
        return int(entry.get("seq_base") or 0)

    def set_tracker_finished(self, tracker: str) -> None:
        """Remember that ``tracker`` was told the run's final state."""
        self.meta["trackers"].setdefault(tracker, {})["finished"] = True
        self.save_meta()

    def tracker_finished(self, tracker: str) -> bool:
        """Whether ``tracker`` was told the run's final state."""
        return bool(self.meta["trackers"].get(tracker, {}).get("finished"))

    @property
    def config_version(self) -> int:
        """How many times the run's config changed after it was created (0: never)."""
        return int(self.meta.get("config_version") or 0)

    def set_config(self, config: dict[str, Any]) -> int:
        """Replace the run's config (``TrainingConfig.to_dict()``); return its new version."""
        previous = dict(self.meta)
        self.meta["config"] = config
        self.meta["config_version"] = self.config_version + 1
        try:
            self.save_meta()
        except BaseException:
            self.meta = previous
            raise
        return self.config_version

    def tracker_config_version(self, tracker: str) -> int:
        """The config version ``tracker`` last stored (0: the one given to ``submit_job``)."""
        return int(self.meta["trackers"].get(tracker, {}).get("config_version") or 0)

    def set_tracker_config_version(self, tracker: str, version: int) -> None:
        """Remember that ``tracker`` stored config version ``version``."""
        self.meta["trackers"].setdefault(tracker, {})["config_version"] = version
        self.save_meta()

    def set_final_status(self, status: str) -> None:
        """Record the run's final state (``finished``, ``failed`` or ``killed``)."""
        self.meta["final_status"] = status
        self.save_meta()

    def reopen(self) -> None:
        """Make a finished run open again (resumed by id): no final state, nothing told."""
        if self.meta.get("final_status") is None:
            return
        self.meta["final_status"] = None
        for entry in self.meta["trackers"].values():
            entry.pop("finished", None)
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
