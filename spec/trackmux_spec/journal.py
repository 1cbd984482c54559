"""The core's journal as trackers on the same machine may read it: records by reference.

Every record the core accepts is first committed to the run's journal, a SQLite database
(``<data dir>/journal/<run id>/journal.db``, WAL mode) with one table the contract fixes::

    frames(first_seq INTEGER PRIMARY KEY, last_seq INTEGER, last_step INTEGER, records BLOB)

``records`` is ``marshal`` (format 4) of a list of ``(seq, step, timestamp, values)``
tuples numbered ``first_seq`` to ``last_seq`` without gaps; frames follow each other without
gaps from seq 0. The core appends frames and never rewrites or deletes them while the run's
directory exists, so a range of committed records can be kept by reference.

A tracker whose store lives on this machine declares ``TrackerInfo(journal_references=True)``.
Its ``log_metrics`` then receives a :class:`JournalRecords`: still a sequence of
:class:`~trackmux_spec.MetricRecord` (decoded from the journal the first time it is
indexed or iterated), which also says where the records are, so the tracker can store
``(path, start, stop, seq_base)`` instead of the records and read them back with
:func:`read_records`. That is what the offline tracker does: nothing is decoded or written
twice on the way from the training loop to its store. Only records exactly as journaled go
by reference: while a wrapper plugin wraps ``log_metrics`` (it may rewrite the batch in
place), the tracker gets a plain list.

This module imports :mod:`sqlite3`; ``import trackmux_spec`` does not import it.
"""

from __future__ import annotations

import marshal
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, overload
from urllib.parse import quote

from ._types import MetricRecord

__all__ = ["JournalRecords", "connect_read_only", "iter_frames_from", "read_records"]

#: Seconds a read-only connection waits for SQLite's own locks before giving up.
BUSY_TIMEOUT = 10.0

Record = tuple[int, int, float, dict[str, Any]]


def connect_read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection to the journal at ``path``: it never writes, checkpoints or
    repairs anything, and it sees the records committed before each read began.

    :raises FileNotFoundError: there is no journal at ``path``.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(path)
    uri = f"file:{quote(str(path))}?mode=ro"
    return sqlite3.connect(
        uri, uri=True, timeout=BUSY_TIMEOUT, check_same_thread=False, isolation_level=None
    )


def iter_frames_from(db: sqlite3.Connection, seq: int) -> Iterator[tuple[int, list[Record]]]:
    """The frames from the one holding ``seq`` on, as ``(first_seq, records)``."""
    rows = db.execute(
        "SELECT first_seq, records FROM frames WHERE first_seq >= coalesce("
        "(SELECT max(first_seq) FROM frames WHERE first_seq <= ?), 0) ORDER BY first_seq",
        (seq,),
    )
    try:
        for first, blob in rows:
            items: list[Record] = marshal.loads(blob)
            if first + len(items) > seq:
                yield first, items
    finally:
        rows.close()


def read_records(path: Path, start: int, stop: int) -> list[Record]:
    """The records ``start`` to ``stop - 1`` of the journal at ``path``, as
    ``(seq, step, timestamp, values)`` tuples.

    :raises FileNotFoundError: there is no journal at ``path``.
    :raises LookupError: the journal holds fewer records (it was cut short or replaced);
        the message names the journal and both counts.
    """
    out: list[Record] = []
    if stop <= start:
        return out
    db = connect_read_only(path)
    try:
        seq = start
        for first, items in iter_frames_from(db, seq):
            if first > seq:
                break
            take = items[seq - first : stop - first]
            out.extend(take)
            seq += len(take)
            if seq >= stop:
                break
    except sqlite3.Error as exc:
        raise LookupError(f"journal {path}: {exc}") from exc
    finally:
        db.close()
    if len(out) != stop - start:
        raise LookupError(
            f"journal {path} holds records {start} to {start + len(out) - 1} of the "
            f"{start} to {stop - 1} a tracker refers to"
        )
    return out


class JournalRecords(Sequence[MetricRecord]):
    """Records ``start`` to ``stop - 1`` of a run's journal, as a tracker receives them.

    Indexing or iterating decodes them (once) into :class:`~trackmux_spec.MetricRecord`
    copies whose ``seq`` is the journal's plus ``seq_base`` (the records the job held
    before this journal, see the ``resume_point`` hook). A tracker that keeps references
    stores :attr:`path`, :attr:`start`, :attr:`stop` and :attr:`seq_base` and never decodes.
    """

    __slots__ = ("_records", "path", "seq_base", "start", "stop")

    def __init__(self, path: Path, start: int, stop: int, seq_base: int = 0) -> None:
        if not 0 <= start <= stop:
            raise ValueError(f"JournalRecords: start {start} and stop {stop} are not a range")
        self.path = Path(path)
        self.start = start
        self.stop = stop
        self.seq_base = seq_base
        self._records: list[MetricRecord] | None = None

    def __repr__(self) -> str:
        return (
            f"JournalRecords({str(self.path)!r}, start={self.start}, stop={self.stop},"
            f" seq_base={self.seq_base})"
        )

    @property
    def first_seq(self) -> int:
        """The job's ``seq`` of the first record (``start + seq_base``)."""
        return self.start + self.seq_base

    def __len__(self) -> int:
        return self.stop - self.start

    def _decoded(self) -> list[MetricRecord]:
        if self._records is None:
            base = self.seq_base
            self._records = [
                MetricRecord(seq + base, step, timestamp, values)
                for seq, step, timestamp, values in read_records(self.path, self.start, self.stop)
            ]
        return self._records

    @overload
    def __getitem__(self, index: int) -> MetricRecord: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[MetricRecord]: ...

    def __getitem__(self, index: int | slice) -> MetricRecord | Sequence[MetricRecord]:
        return self._decoded()[index]

    def __iter__(self) -> Iterator[MetricRecord]:
        return iter(self._decoded())
