"""How the committer writes a backlog (issue 15, item 5): in transactions of a few frames,
each taken just before it is written, with frames the hot path already encoded; and the
write-ahead log is checkpointed beside the writer, never inside a commit."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import trackmux
from memory_tracker import MemoryTracker
from trackmux import _engine, _journal
from trackmux._journal import FRAME_RECORDS, RECORD_FIELDS, RunJournal, encode_frame


def _fields(first: int, count: int) -> list[Any]:
    fields: list[Any] = []
    for seq in range(first, first + count):
        fields += [seq, 1.7e9 + seq, {"x": float(seq)}]
    return fields


def test_append_takes_encoded_frames_then_flat_records(tmp_path: Path) -> None:
    journal = RunJournal.create(tmp_path, "frames", {})
    frames = [encode_frame(0, _fields(0, 10), 0, 10), encode_frame(10, _fields(10, 3), 0, 3)]
    journal.append(0, _fields(13, 4), {"sink": 2}, frames=frames)
    assert journal.record_count == 17 and journal.last_step == 16
    assert [r.values["x"] for r in journal.read_all()] == [float(s) for s in range(17)]
    assert journal.read_cursors() == {"sink": 2}
    journal.close()


@pytest.mark.parametrize(("first", "frame_start", "message"), [
    (1, 0, "continue at seq 0, got 1"),
    (0, 1, "continue at seq 0, got a frame from seq 1"),
])
def test_append_refuses_frames_that_do_not_continue_and_writes_nothing(
        tmp_path: Path, first: int, frame_start: int, message: str) -> None:
    journal = RunJournal.create(tmp_path, "gap", {})
    frame = encode_frame(frame_start, _fields(frame_start, 2), 0, 2)
    with pytest.raises(ValueError, match=message):
        journal.append(first, [], {"sink": 1}, frames=[frame])
    assert journal.record_count == 0 and journal.count() == 0
    assert journal.read_cursors() == {}
    journal.close()


def _held_back_tracker(data_dir: Path) -> tuple[MemoryTracker, trackmux.Tracker]:
    """A tracker to a memory sink whose committer waits for ``flush()``: no timer, no
    early commit, room for the whole backlog."""
    sink = MemoryTracker()
    pm = trackmux.get_plugin_manager()
    pm.register(sink, name="sink")
    tracker = trackmux.Tracker(["sink"], data_dir=data_dir, plugin_manager=pm)
    engine = tracker._engine
    engine.commit_interval = 3600
    engine.commit_batch = 10**9
    engine.max_buffer = 10**6
    return sink, tracker


def test_a_backlog_is_written_in_transactions_of_a_few_frames(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The committer holds back while the loop logs a backlog of many frames; once let go,
    each append gets at most ``_COMMIT_FRAMES`` frames (plus the unframed tail), in order,
    and every record arrives once."""
    pieces: list[tuple[int, int]] = []
    gate = threading.Event()
    real_append = RunJournal.append

    def append(self: RunJournal, first_seq: int, fields: list[Any],
               cursors: dict[str, int] | None = None, *, frames: Any = ()) -> None:
        gate.wait(30)
        pieces.append((len(frames), len(fields) // RECORD_FIELDS))
        real_append(self, first_seq, fields, cursors, frames=frames)

    monkeypatch.setattr(RunJournal, "append", append)
    sink, tracker = _held_back_tracker(tmp_path)
    engine = tracker._engine
    total = FRAME_RECORDS * (3 * _engine._COMMIT_FRAMES) + 100
    with tracker:
        run = tracker.submit_job()
        for step in range(total):
            tracker.log_metrics(run, {"x": step}, step=step)
        held = engine.runs[run]
        assert len(held.frames) == 3 * _engine._COMMIT_FRAMES  # encoded by the hot path
        assert len(held.buffer) == 100 * RECORD_FIELDS
        gate.set()
        assert tracker.flush(timeout=60).delivered
    assert sink.values(run, "x") == list(range(total))
    with_records = [piece for piece in pieces if piece != (0, 0)]
    assert len(with_records) >= 3
    assert all(frames <= _engine._COMMIT_FRAMES + 1 for frames, _ in with_records)
    assert all(fields == 0 for _, fields in with_records)  # the tail comes as a frame too


def test_a_failed_piece_goes_back_in_order_and_is_retried(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The second transaction of a backlog fails (the disk said no): the first stays
    written, the rest is retried with the same seqs, nothing is lost or doubled."""
    calls = {"n": 0}
    real_append = RunJournal.append

    def append(self: RunJournal, first_seq: int, fields: list[Any],
               cursors: dict[str, int] | None = None, *, frames: Any = ()) -> None:
        if frames:
            calls["n"] += 1
            if calls["n"] == 2:
                raise sqlite3.OperationalError("database or disk is full")
        real_append(self, first_seq, fields, cursors, frames=frames)

    monkeypatch.setattr(RunJournal, "append", append)
    sink, tracker = _held_back_tracker(tmp_path)
    total = FRAME_RECORDS * (2 * _engine._COMMIT_FRAMES + 1) + 7
    with tracker:
        run = tracker.submit_job()
        for step in range(total):
            tracker.log_metrics(run, {"x": step}, step=step)
        report = tracker.flush(timeout=60)  # returns once what the journal holds is sent
        assert "disk is full" in (report.journal_error or ""), report
        first_piece = _engine._COMMIT_FRAMES * FRAME_RECORDS
        assert sink.values(run, "x") == list(range(first_piece))
        deadline = time.monotonic() + 60
        while not report.delivered and time.monotonic() < deadline:
            time.sleep(0.1)  # the engine retries the commit after its backoff
            report = tracker.flush(timeout=60)
        assert report.delivered and report.dropped == 0 and report.journal_error is None, report
        assert calls["n"] >= 3
    assert sink.values(run, "x") == list(range(total))
    journal = RunJournal.peek(tmp_path / "journal", run)
    assert [r.seq for r in journal.read_all()] == list(range(total))


def _main_file_size(path: Path) -> int:
    return path.stat().st_size


def test_the_writer_never_checkpoints_and_a_side_thread_does(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Below ``CHECKPOINT_BYTES`` the frames stay in the write-ahead log (the database
    file keeps only its schema pages); past it, a checkpoint beside the writer moves them
    into the database file. The journal reads the same either way."""
    monkeypatch.setattr(_journal, "CHECKPOINT_BYTES", 200_000)
    journal = RunJournal.create(tmp_path, "ckpt", {})
    empty = _main_file_size(journal.records_path)
    seq = 0
    while journal._unchecked + 40_000 < _journal.CHECKPOINT_BYTES:
        journal.append(seq, _fields(seq, 1000))
        seq += 1000
    assert journal._checkpoint_idle.is_set() and journal._checkpoint_db is None
    assert _main_file_size(journal.records_path) == empty  # all of it still in the log
    while journal._checkpoint_db is None:
        journal.append(seq, _fields(seq, 1000))
        seq += 1000
        assert journal._checkpoint_idle.wait(30)
    assert _main_file_size(journal.records_path) > _journal.CHECKPOINT_BYTES // 2
    assert [r.seq for r in journal.read_all()] == list(range(seq))
    journal.close()
    assert not Path(str(journal.records_path) + "-wal").exists()
    reopened = RunJournal.open(tmp_path, "ckpt")
    assert reopened.record_count == seq
    reopened.close()


def test_a_forked_child_leaves_the_parents_checkpoint_connection_alone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A DataLoader worker forked while the parent's checkpoint thread holds a connection
    (or is mid-checkpoint) neither uses nor closes it, and does not wait for a checkpoint
    that, in the child, no thread will ever finish."""
    monkeypatch.setattr(_journal, "CHECKPOINT_BYTES", 50_000)
    journal = RunJournal.create(tmp_path, "fork", {})
    seq = 0
    while journal._checkpoint_db is None:
        journal.append(seq, _fields(seq, 1000))
        seq += 1000
        assert journal._checkpoint_idle.wait(30)
    journal._checkpoint_idle.clear()  # as if the fork came during a checkpoint
    pid = os.fork()
    if pid == 0:  # the child
        code = 1
        try:
            journal.abandon_after_fork()
            ok = journal._checkpoint_idle.is_set() and journal._checkpoint_db is None
            journal.close()
            code = 0 if ok else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    journal._checkpoint_idle.set()
    journal.append(seq, _fields(seq, 10))  # the parent's connections still work
    assert Path(str(journal.records_path) + "-wal").exists()
    assert [r.seq for r in journal.read_all()] == list(range(seq + 10))
    journal.close()


def test_new_journals_use_16k_pages_and_older_ones_keep_theirs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A frame is ~37 KB: new journals take 16 KB pages (fewer overflow pages to write and
    checkpoint). A journal made by an earlier release, in 4 KB pages, keeps them and goes on
    taking records."""
    journal = RunJournal.create(tmp_path, "new", {})
    journal.append(0, _fields(0, 600))
    page = sqlite3.connect(journal.records_path).execute("PRAGMA page_size").fetchone()[0]
    assert page == _journal.PAGE_SIZE == 16384
    journal.close()

    monkeypatch.setattr(_journal, "PAGE_SIZE", 4096)  # as the earlier releases made them
    older = RunJournal.create(tmp_path, "older", {})
    older.append(0, _fields(0, 600))
    older.close()
    monkeypatch.undo()
    reopened = RunJournal.open(tmp_path, "older")
    reopened.append(600, _fields(600, 600))
    page = sqlite3.connect(reopened.records_path).execute("PRAGMA page_size").fetchone()[0]
    assert page == 4096
    assert [r.seq for r in reopened.read_all()] == list(range(1200))
    reopened.close()
