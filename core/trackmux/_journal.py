"""The local journal: every accepted record of a run, before any tracker sees it.

One directory per run, under ``<data dir>/journal/<run id>/``::

    run.json        the run: config, creation, the trackers it goes to and their job ids,
                    its final state once finish() or cancel_job() was called
    journal.db      SQLite (WAL mode): table ``frames`` (first_seq, last_seq, last_step,
                    records), one row per up to 512 records of a group commit, each record a
                    ``marshal``'d tuple (seq, step, timestamp, values); table ``cursors``
                    (tracker, seq): the next seq that tracker has not acknowledged. The
                    ``frames`` table is part of the contract (:mod:`trackmux_spec.journal`):
                    trackers on this machine may keep references into it, so frames are
                    never rewritten or deleted
    writer.lock     held with ``flock`` by the one process writing the run; it holds that
                    process's pid, host and command line, for the refusal message
    artifacts.json  the run's artifacts, in upload order (see :mod:`trackmux._artifacts`):
                    name, type, description, metadata, files with size and SHA-256, and
                    ``after_seq``, the number of records logged before the upload
    artifact_marks/<tracker>.json
                    what that tracker holds of them: index -> {"state": "delivered",
                    "remote_id": ...}

Artifacts are read and written only through :meth:`RunJournal.add_artifact`,
:meth:`RunJournal.artifacts`, :meth:`RunJournal.artifact_marks` and
:meth:`RunJournal.mark_artifact`, so their storage can move with the journal's container.

Why SQLite rather than a hand-written frame file (docs/architecture.md has the figures): a
commit is atomic, so a full disk or an I/O error rolls it back instead of leaving a torn
frame in the middle; a crash or a power loss leaves a torn or zero-filled WAL tail that
SQLite's checksums discard on open; readers (``trackmux show``, the live viewer) read a
consistent snapshot beside a live writer; and cursors live in the same database, committed
after the records they cover, so a durable cursor never points past durable records.

Upgrades: a run written by the first release (``records.tmf`` frames and
``cursors/<tracker>`` files) is moved into ``journal.db`` the first time it is opened for
writing or listed by :func:`iter_run_ids` (once its old writer is gone); ``records.tmf`` is
kept as ``records.tmf.migrated``. Nothing an earlier version journaled becomes invisible.

Single writer: :meth:`RunJournal.create` and :meth:`RunJournal.open` take an exclusive
``flock`` on ``writer.lock``. The lock belongs to the open file description, so it also
refuses a second opener in the same process, and the kernel drops it when the process dies,
so a stale pid can never block anyone. :meth:`RunJournal.peek` takes no lock and only reads.

Threads: the writer's connection is used by one thread at a time (the engine's committer,
under its write lock); every :class:`RecordReader` has its own read-only connection.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import marshal
import os
import queue
import socket
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from trackmux_spec import MetricRecord
from trackmux_spec.journal import connect_read_only, iter_frames_from

from ._files import make_private_dir, read_json, write_json_atomic

logger = logging.getLogger("trackmux")

__all__ = [
    "RECORD_FIELDS",
    "Cursor",
    "RecordReader",
    "RunJournal",
    "RunLockedError",
    "count_records",
    "iter_run_ids",
    "pid_alive",
]

DB_FILE = "journal.db"
#: The first release's record file (frames of :mod:`trackmux_spec.framing`), migrated.
LEGACY_RECORDS_FILE = "records.tmf"
LOCK_FILE = "writer.lock"
ARTIFACTS_FILE = "artifacts.json"

#: A cursor is the next ``seq`` a tracker has not acknowledged.
Cursor = int

Record = tuple[int, int, float, dict[str, Any]]

#: Records per frame (one row). ``marshal`` holds the interpreter lock for a whole frame and
#: a frame's record tuples live while it is encoded, so frames stay small: about 0.15 ms to
#: encode, and too few young objects to matter to the cyclic GC. Readers take any size.
#: (Offering the lock between frames with ``time.sleep(0)`` was measured and dropped: behind
#: a training loop that never lets go of it, each offer cost the committer a whole switch
#: interval, commits grew to ``max_buffer`` and the loop waited for room instead.)
FRAME_RECORDS = 512

#: Frames per ``INSERT`` statement (4 parameters each, within SQLite's oldest limit of 999).
#: Each statement lets go of the interpreter lock while SQLite runs it, and behind a busy
#: training loop the committer then waits up to CPython's switch interval to get it back:
#: one statement per commit, not one per frame, keeps a commit from paying that 40 times.
_ROWS_PER_INSERT = 249

#: Bytes of frames written between two checkpoints of the write-ahead log (SQLite's own
#: default, 1,000 pages, is about as much). The writer never checkpoints: SQLite would do it
#: inside a commit, and its fsyncs (10-15 ms here) would hold up the committer while a
#: training loop waits for buffer room. The process's checkpoint thread, with a connection
#: of its own per journal, runs a PASSIVE checkpoint instead, beside the writer, which WAL
#: mode allows.
CHECKPOINT_BYTES = 4 << 20

#: Bytes per database page of a new journal. A 512-record frame is about 37 KB: in 4 KB
#: pages (SQLite's default) it is a chain of 9 overflow pages, each written, logged and
#: checkpointed on its own; in 16 KB pages, 3. Measured on 983,040 records in 16-frame
#: transactions: the committer's CPU 0.142 -> 0.098 us a record, a 4.4 MB checkpoint's CPU
#: 7.1 -> 4.4 ms, the file 72.1 -> 73.5 MB (64 KB pages: 126 MB, a page per frame). A
#: journal made with other pages keeps them; readers take any.
PAGE_SIZE = 16384

#: Entries per record in what :meth:`RunJournal.append` takes: step, timestamp, values.
RECORD_FIELDS = 3

#: Seconds a connection waits for SQLite's own locks (a checkpoint, a recovery) before
#: giving up: every wait has a deadline.
BUSY_TIMEOUT = 10.0

#: Connections a forked child inherited: kept, never closed (see abandon_after_fork).
_ABANDONED: list[sqlite3.Connection] = []

_SCHEMA = """
CREATE TABLE IF NOT EXISTS frames (
    first_seq INTEGER PRIMARY KEY,
    last_seq INTEGER NOT NULL,
    last_step INTEGER NOT NULL,
    records BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS cursors (
    tracker TEXT PRIMARY KEY,
    seq INTEGER NOT NULL
);
"""


class RunLockedError(RuntimeError):
    """The run's journal is being written by another tracker, sync or process."""

    def __init__(self, run_id: str, holder: dict[str, Any] | None) -> None:
        who = describe_holder(holder)
        super().__init__(
            f"run {run_id!r} is being written by {who}; only one tracker or sync writes a "
            f"run at a time: wait until it finishes or disconnects (the lock is released "
            f"when that process ends, even if it is killed)"
        )
        self.run_id = run_id
        self.holder = holder


def describe_holder(holder: dict[str, Any] | None) -> str:
    """``process 123 on host (python train.py)``, or what is known of it."""
    if not holder:
        return "another process (it has not said which yet)"
    text = f"process {holder.get('pid')} on {holder.get('host')}"
    if holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
        text = f"this process ({holder.get('pid')}: another Tracker or sync in it)"
    argv = holder.get("argv")
    if argv:
        text += f" ({' '.join(str(a) for a in argv)[:200]})"
    return text


class _WriterLock:
    """An exclusive ``flock`` on ``writer.lock``, with the holder written into the file."""

    def __init__(self, path: Path, run_id: str) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise RunLockedError(run_id, holder) from None
        except BaseException:
            os.close(fd)
            raise
        self.fd: int | None = fd
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "argv": sys.argv[:8],
            "since": time.time(),
        }
        with contextlib.suppress(OSError):  # informational only: a full disk must not refuse
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(holder).encode(), 0)

    def release(self) -> None:
        """Let another writer in (the kernel does the same if this process dies)."""
        if self.fd is None:
            return
        fd, self.fd = self.fd, None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)  # closing the only descriptor of the description drops the flock


def _read_holder(fd: int) -> dict[str, Any] | None:
    try:
        data = os.pread(fd, 4096, 0)
        holder = json.loads(data) if data else None
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


#: A ``frames`` row: first seq, last seq, last step, the ``marshal``'d records.
Frame = tuple[int, int, int, bytes]


def encode_frame(first_seq: int, fields: list[Any], start: int, stop: int) -> Frame:
    """The ``frames`` row of records ``start`` to ``stop - 1`` of ``fields`` (flat, see
    :meth:`RunJournal.append`, the first being record ``first_seq``): a ``marshal``'d list
    of ``(seq, step, timestamp, values)``. Any thread; the engine's hot path encodes each
    full frame as it fills, so the committer holds the interpreter lock only briefly."""
    n, low, high = RECORD_FIELDS, start * RECORD_FIELDS, stop * RECORD_FIELDS
    records = list(
        zip(
            range(first_seq + start, first_seq + stop),
            fields[low:high:n],
            fields[low + 1 : high : n],
            fields[low + 2 : high : n],
            strict=True,
        )
    )
    return first_seq + start, first_seq + stop - 1, fields[high - n], marshal.dumps(records, 4)


def count_records(path: Path) -> int:
    """How many records the journal database at ``path`` holds (read-only; 0 if none)."""
    try:
        db = connect_read_only(path)
    except (FileNotFoundError, sqlite3.Error):
        return 0
    try:
        row = db.execute("SELECT last_seq FROM frames ORDER BY first_seq DESC LIMIT 1").fetchone()
    except sqlite3.Error:
        return 0
    finally:
        db.close()
    return 0 if row is None else int(row[0]) + 1


def frame_records(frames: Sequence[Frame]) -> int:
    """How many records ``frames`` hold."""
    return sum(frame[1] - frame[0] + 1 for frame in frames)


def _insert_frames(db: sqlite3.Connection, rows: Sequence[Frame]) -> None:
    """One multi-row ``INSERT`` of ``rows`` (at most :data:`_ROWS_PER_INSERT`)."""
    db.execute(
        "INSERT INTO frames VALUES " + ", ".join(["(?, ?, ?, ?)"] * len(rows)),
        [value for row in rows for value in row],
    )


class _CheckpointThread:
    """One daemon thread per process that checkpoints journals' WALs in turn (see
    :data:`CHECKPOINT_BYTES`): one long-lived thread wakes once per checkpoint, where a
    thread started each time would take the interpreter lock from the training loop several
    times just to begin."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid = -1
        self._queue: queue.SimpleQueue[RunJournal] = queue.SimpleQueue()

    def submit(self, journal: RunJournal) -> None:
        with self._lock:
            if self._pid != os.getpid():  # first use, or a forked child: its own thread
                self._pid, self._queue = os.getpid(), queue.SimpleQueue()
                threading.Thread(
                    target=self._serve, args=(self._queue,), name="trackmux-checkpoint",
                    daemon=True,
                ).start()
            self._queue.put(journal)

    @staticmethod
    def _serve(jobs: queue.SimpleQueue[RunJournal]) -> None:
        while True:
            journal = jobs.get()
            try:
                journal.checkpoint()
            except Exception:  # never let one journal's surprise stop the others'
                logger.exception("run %r: checkpoint failed", journal.run_id)


_CHECKPOINTS = _CheckpointThread()


class RecordReader:
    """Reads a run's records in order from a cursor, on its own read-only connection.

    Safe beside a live writer: every read sees the records committed before it began.
    """

    def __init__(self, path: Path, cursor: Cursor) -> None:
        self._db = connect_read_only(path)
        self._frame_first = -1
        self._frame: list[Record] = []
        self.cursor: Cursor = cursor

    def rewind(self, cursor: Cursor) -> None:
        """Go to ``cursor`` (also: a batch that must be read again)."""
        self.cursor = cursor

    def _frames_from(self, seq: int) -> Iterator[tuple[int, list[Record]]]:
        if self._frame_first <= seq < self._frame_first + len(self._frame):
            yield self._frame_first, self._frame
            seq = self._frame_first + len(self._frame)
        for first, items in iter_frames_from(self._db, seq):
            self._frame_first, self._frame = first, items
            yield first, items

    def read(self, count: int) -> tuple[list[MetricRecord], Cursor]:
        """Up to ``count`` records from the cursor, and the cursor after them."""
        records: list[MetricRecord] = []
        seq = self.cursor
        for first, items in self._frames_from(seq):
            take = items[seq - first : seq - first + count - len(records)]
            records.extend(MetricRecord(*item) for item in take)
            seq += len(take)
            if len(records) >= count:
                break
        self.cursor = seq
        return records, seq

    def __iter__(self) -> Iterator[MetricRecord]:
        seq = self.cursor
        for first, items in self._frames_from(seq):
            for item in items[seq - first :]:
                yield MetricRecord(*item)
            seq = first + len(items)
        self.cursor = seq

    def close(self) -> None:
        """Close the connection."""
        self._db.close()


class RunJournal:
    """One run's journal directory (see the module docstring).

    Writers come from :meth:`create` or :meth:`open` (they hold the run's lock until
    :meth:`close`); :meth:`peek` gives a read-only view.
    """

    def __init__(self, directory: Path, meta: dict[str, Any]) -> None:
        self.directory = directory
        self.meta = meta
        self.records_path = directory / DB_FILE
        self.record_count = 0
        self.last_step = -1
        self._db: sqlite3.Connection | None = None
        self._abandoned_db: sqlite3.Connection | None = None  # a forked child's copy
        self._lock: _WriterLock | None = None
        self._unchecked = 0  # bytes of frames written since the last checkpoint began
        self._checkpoint_idle = threading.Event()  # no checkpoint of this journal under way
        self._checkpoint_idle.set()
        self._checkpoint_db: sqlite3.Connection | None = None  # the checkpoint thread's
        self._closing = False  # close() began: a checkpoint still queued does nothing

    @property
    def run_id(self) -> str:
        """The run's id."""
        return str(self.meta["run_id"])

    @property
    def is_writer(self) -> bool:
        """Whether this object holds the run's lock and may append."""
        return self._db is not None

    # -- opening ----------------------------------------------------------------------

    @classmethod
    def create(
        cls, root: Path, run_id: str, config: dict[str, Any], *, fsync: bool = False
    ) -> RunJournal:
        """Start the journal of a new run; ``FileExistsError`` if the run id is taken."""
        directory = root / run_id
        make_private_dir(root)
        directory.mkdir(mode=0o700)
        meta = {
            "run_id": run_id,
            "config": config,
            "created": time.time(),
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "trackers": {},
            "final_status": None,
        }
        journal = cls(directory, meta)
        journal._start_writing(fsync)
        try:
            journal.save_meta()
        except BaseException:
            journal.close()
            raise
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
        """A read-only view of a run (metadata, cursors, records) that claims nothing: the
        process writing it may be alive. Use :meth:`open` to append or deliver."""
        return cls(root / run_id, cls.read_meta(root, run_id))

    @classmethod
    def open(cls, root: Path, run_id: str, *, fsync: bool = False) -> RunJournal:
        """Reopen an existing run's journal to append or deliver (resume, sync).

        :raises LookupError: no such run.
        :raises RunLockedError: another tracker, sync or process writes the run (the
            message names it).
        """
        journal = cls(root / run_id, cls.read_meta(root, run_id))
        journal._start_writing(fsync)
        return journal

    def _start_writing(self, fsync: bool) -> None:
        lock = _WriterLock(self.directory / LOCK_FILE, self.run_id)
        try:
            fd = os.open(self.records_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            os.close(fd)  # created 0600 before SQLite opens it (its -wal/-shm follow the mode)
            db = sqlite3.connect(
                self.records_path,
                timeout=BUSY_TIMEOUT,
                check_same_thread=False,
                isolation_level=None,
            )
            try:
                db.execute(f"PRAGMA page_size={PAGE_SIZE}")  # a new database only
                db.execute("PRAGMA journal_mode=WAL")
                db.execute(f"PRAGMA synchronous={'FULL' if fsync else 'NORMAL'}")
                db.execute("PRAGMA wal_autocheckpoint=0")  # see CHECKPOINT_BYTES
                db.executescript(_SCHEMA)
                _migrate_legacy(self.directory, db)
                row = db.execute(
                    "SELECT last_seq, last_step FROM frames ORDER BY first_seq DESC LIMIT 1"
                ).fetchone()
            except BaseException:
                db.close()
                raise
        except BaseException:
            lock.release()
            raise
        self._lock, self._db = lock, db
        if row is not None:
            self.record_count, self.last_step = int(row[0]) + 1, int(row[1])

    # -- records ----------------------------------------------------------------------

    def append(
        self,
        first_seq: int,
        fields: list[Any],
        cursors: dict[str, Cursor] | None = None,
        *,
        frames: Sequence[Frame] = (),
    ) -> None:
        """Append records ``first_seq``, ``first_seq + 1``, ... and store ``cursors``, in one
        transaction: on any error nothing of it is written (and the error is raised).

        The records are ``frames`` (rows :func:`encode_frame` made, consecutive), then
        ``fields``, which holds records flat, :data:`RECORD_FIELDS` entries each: ``[step,
        timestamp, values, step, ...]`` (the engine's buffer, which so holds no object per
        record), encoded here in frames of :data:`FRAME_RECORDS`. ``first_seq`` must be
        :attr:`record_count`.

        Only the thread holding the engine's write lock calls this.
        """
        db = self._db
        if db is None:
            raise RuntimeError(f"the journal of run {self.run_id!r} is not open for writing")
        count = len(fields) // RECORD_FIELDS
        if (frames or count) and first_seq != self.record_count:
            raise ValueError(
                f"run {self.run_id!r}: records must continue at seq {self.record_count}, "
                f"got {first_seq}"
            )
        rows, first = [], first_seq
        for row in frames:
            if row[0] != first:
                raise ValueError(
                    f"run {self.run_id!r}: records must continue at seq {first}, "
                    f"got a frame from seq {row[0]}"
                )
            rows.append(row)
            first = row[1] + 1
        rows += [
            encode_frame(first, fields, start, min(count, start + FRAME_RECORDS))
            for start in range(0, count, FRAME_RECORDS)
        ]
        if not rows and not cursors:
            return
        if not cursors and len(rows) <= _ROWS_PER_INSERT:  # one statement is a transaction
            _insert_frames(db, rows)
        else:
            self._append_rows(db, rows, cursors)
        if rows:
            self.record_count = rows[-1][1] + 1
            self.last_step = rows[-1][2]
            self._unchecked += sum(len(row[3]) for row in rows)
            if self._unchecked >= CHECKPOINT_BYTES:
                self._start_checkpoint()

    def _start_checkpoint(self) -> None:
        """Have the checkpoint thread checkpoint the WAL, unless it is already at it."""
        if not self._checkpoint_idle.is_set():
            return
        self._unchecked = 0
        self._checkpoint_idle.clear()
        _CHECKPOINTS.submit(self)

    def checkpoint(self) -> None:
        """A PASSIVE checkpoint of the WAL through a connection of its own (the checkpoint
        thread's; it writes nothing else). Never raises: on a full disk the WAL keeps
        every frame and the next checkpoint tries again."""
        try:
            if self._closing:
                return
            if self._checkpoint_db is None:
                self._checkpoint_db = sqlite3.connect(
                    self.records_path,
                    timeout=BUSY_TIMEOUT,
                    isolation_level=None,
                    check_same_thread=False,
                )
            self._checkpoint_db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error as exc:
            logger.debug("run %r: checkpoint failed: %s", self.run_id, exc)
        finally:
            self._checkpoint_idle.set()

    @staticmethod
    def _append_rows(
        db: sqlite3.Connection, rows: list[Frame], cursors: dict[str, Cursor] | None
    ) -> None:
        db.execute("BEGIN IMMEDIATE")
        try:
            for start in range(0, len(rows), _ROWS_PER_INSERT):
                _insert_frames(db, rows[start : start + _ROWS_PER_INSERT])
            if cursors:
                db.executemany(
                    "INSERT OR REPLACE INTO cursors VALUES (?, ?)",
                    list(cursors.items()),
                )
            db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise

    def reader(self, cursor: Cursor) -> RecordReader:
        """A reader positioned at ``cursor`` (its own read-only connection)."""
        return RecordReader(self.records_path, cursor)

    def read_all(self) -> Iterator[MetricRecord]:
        """Every record, in order (read-only; consistent beside a live writer)."""
        try:
            reader = self.reader(0)
        except FileNotFoundError:
            return
        try:
            yield from reader
        finally:
            reader.close()

    def count(self) -> int:
        """How many records are in the journal (read-only)."""
        return count_records(self.records_path)

    def abandon_after_fork(self) -> None:
        """In a forked child: let go of the parent's files without touching them.

        The lock's descriptor is closed without unlocking (the flock belongs to the file
        description the parent still holds) and the database connection is kept, never
        used or closed: SQLite connections must not cross a fork.
        """
        checkpoint_db, self._checkpoint_db = self._checkpoint_db, None
        if checkpoint_db is not None:  # the parent's checkpoint thread's: not this process's
            _ABANDONED.append(checkpoint_db)
        self._checkpoint_idle = threading.Event()  # (a checkpoint under way is the parent's)
        self._checkpoint_idle.set()
        db, self._db = self._db, None
        if db is not None:
            _ABANDONED.append(db)
            # a module list is emptied at interpreter shutdown; this object is not (the
            # child leaks a reference to the tracker holding it: trackmux._lifecycle)
            self._abandoned_db = db
        lock, self._lock = self._lock, None
        if lock is not None and lock.fd is not None:
            os.close(lock.fd)
            lock.fd = None

    def close(self) -> None:
        """Close the database and release the run for other writers (idempotent)."""
        self._closing = True
        self._checkpoint_idle.wait(BUSY_TIMEOUT)
        checkpoint_db, self._checkpoint_db = self._checkpoint_db, None
        if checkpoint_db is not None:
            with contextlib.suppress(sqlite3.Error):
                checkpoint_db.close()
        db, self._db = self._db, None
        if db is not None:
            # back to a single self-contained file (the WAL checkpointed into it), so that
            # readers of a closed run create no -wal/-shm files; if a reader is busy right
            # now it stays in WAL mode, which readers handle as well
            with contextlib.suppress(sqlite3.Error):
                db.execute("PRAGMA journal_mode=DELETE")
            db.close()
        lock, self._lock = self._lock, None
        if lock is not None:
            lock.release()

    # -- cursors and metadata ---------------------------------------------------------

    def read_cursor(self, tracker: str) -> Cursor:
        """The next seq ``tracker`` has not acknowledged (0 if nothing)."""
        return self.read_cursors().get(tracker, 0)

    def read_cursors(self) -> dict[str, Cursor]:
        """Every tracker's cursor."""
        try:
            db = connect_read_only(self.records_path)
        except (FileNotFoundError, sqlite3.Error):
            return {}
        try:
            return {str(name): int(seq) for name, seq in db.execute("SELECT * FROM cursors")}
        except sqlite3.Error:
            return {}
        finally:
            db.close()

    def write_cursor(self, tracker: str, cursor: Cursor) -> None:
        """Record that ``tracker`` acknowledged every record before ``cursor`` (writers
        only; the engine stores cursors with its commits instead)."""
        self.append(self.record_count, [], {tracker: cursor})

    def writer_info(self) -> dict[str, Any] | None:
        """Who holds (or last held, if it was killed) the run's writer lock, if anyone said."""
        try:
            fd = os.open(self.directory / LOCK_FILE, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            return _read_holder(fd)
        finally:
            os.close(fd)

    def writer_alive(self) -> bool:
        """Whether a process holds the run's writer lock now (``trackmux runs`` calls a run
        with no final state and no live writer crashed).

        Takes no lock itself (a probe could refuse a writer opening the run at that very
        moment): on Linux the lock file is looked up in ``/proc/locks``. Where that cannot
        be read, or the holder named in the lock file is on another host (a shared file
        system), the holder's word is taken: named on this host, alive if its pid is.
        """
        path = self.directory / LOCK_FILE
        try:
            stat = os.stat(path)
        except OSError:
            return False
        held = _flocked_files()
        if held is not None and (stat.st_dev, stat.st_ino) in held:
            return True
        holder = self.writer_info()
        if not holder:
            return False  # released (the lock file is emptied on release) or never said
        if holder.get("host") != socket.gethostname():
            return True  # another machine's process: it cannot be told from here
        if held is not None:
            return False
        pid = holder.get("pid")
        return isinstance(pid, int) and pid_alive(pid)

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
        """Write ``run.json`` (atomically: readers see the old or the new file)."""
        write_json_atomic(self.directory / "run.json", self.meta)


def _flocked_files() -> set[tuple[int, int]] | None:
    """``(st_dev, st_ino)`` of every file ``flock``'d on this machine (``/proc/locks``);
    ``None`` where that cannot be read."""
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as handle:
            lines = handle.readlines()
    except OSError:
        return None
    found: set[tuple[int, int]] = set()
    for line in lines:
        fields = line.split()
        if len(fields) > 1 and fields[1] == "->":
            del fields[1]  # a waiter, blocked on the lock listed above it
        if len(fields) < 6 or fields[1] != "FLOCK":
            continue
        try:
            major, minor, inode = fields[5].split(":")
            found.add((os.makedev(int(major, 16), int(minor, 16)), int(inode)))
        except ValueError:
            continue
    return found


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
    """The ids of every run in the journal at ``root``, oldest first (first-release runs
    whose writer is gone are migrated on the way: see the module docstring)."""
    if not root.is_dir():
        return []
    created: list[tuple[float, str]] = []
    for path in root.iterdir():
        try:
            meta = read_json(path / "run.json")
            created.append((float(meta["created"]), path.name))
        except (OSError, ValueError, KeyError):
            continue
        if (path / LEGACY_RECORDS_FILE).exists() and not _legacy_writer_alive(meta):
            with contextlib.suppress(RunLockedError, OSError, sqlite3.Error, ValueError):
                RunJournal.open(root, path.name).close()
    return [name for _, name in sorted(created)]


def _legacy_writer_alive(meta: dict[str, Any]) -> bool:
    """Whether a first-release process (which recorded its pid in run.json) still writes."""
    writer = meta.get("writer")
    return bool(
        writer
        and writer.get("host") == socket.gethostname()
        and writer.get("pid") != os.getpid()
        and pid_alive(int(writer["pid"]))
    )


def _migrate_legacy(directory: Path, db: sqlite3.Connection) -> None:
    """Move a first-release journal (``records.tmf`` and ``cursors/<tracker>``) into ``db``,
    in one transaction, then set the old file aside: a crash before the rename repeats the
    migration from scratch (``frames`` is empty until it commits)."""
    legacy = directory / LEGACY_RECORDS_FILE
    if not legacy.exists():
        return
    if db.execute("SELECT 1 FROM frames LIMIT 1").fetchone() is None:
        from trackmux_spec.framing import iter_frames

        rows = []
        with open(legacy, "rb") as handle:  # a torn last frame (a crash) is left out
            for _, _, _, items in iter_frames(handle):
                if items:
                    rows.append((items[0][0], items[-1][0], items[-1][1], marshal.dumps(items, 4)))
        cursors = {}
        cursor_dir = directory / "cursors"
        if cursor_dir.is_dir():
            for path in cursor_dir.iterdir():
                if not path.name.startswith("."):
                    cursors[path.name] = int(path.read_text().split()[0])
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany("INSERT INTO frames VALUES (?, ?, ?, ?)", rows)
            db.executemany("INSERT OR REPLACE INTO cursors VALUES (?, ?)", list(cursors.items()))
            db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise
    os.replace(legacy, legacy.with_name(LEGACY_RECORDS_FILE + ".migrated"))
