"""The hot path leaves nothing for the cyclic GC: buffered records are not tracked objects,
and the journal's frames are read back whatever their size (issue 15, item 5)."""

from __future__ import annotations

import gc
import sqlite3
from pathlib import Path

import pytest
import trackmux
from memory_tracker import MemoryTracker
from trackmux import _journal
from trackmux._journal import FRAME_RECORDS, RECORD_FIELDS, RunJournal


def test_buffered_records_are_not_tracked_by_the_cyclic_gc(tmp_path: Path) -> None:
    sink = MemoryTracker()
    pm = trackmux.get_plugin_manager()
    pm.register(sink, name="sink")
    tracker = trackmux.Tracker(["sink"], data_dir=tmp_path, plugin_manager=pm)
    engine = tracker._engine
    engine.commit_interval = 3600  # the records stay in the buffer until flush()
    engine.commit_batch = 10**9
    once_tracked = {"loss": [1.0]}
    once_tracked["loss"] = 0.5  # a dict stays tracked once it held a container
    assert gc.is_tracked(once_tracked)
    with tracker:
        run = tracker.submit_job()
        for step in range(3000):
            tracker.log_metrics(run, {"loss": 1.0 / (step + 1), "epoch": step // 100}, step)
        tracker.log_metrics(run, once_tracked)
        tracker.log_metrics(run, {"loss": 2.0, "nested": {"a": 1, "b": 2.5}})
        held = engine.runs[run]
        assert held.buffered == 3002
        # whole frames are encoded as they fill (bytes); the rest waits flat
        assert [(f[0], f[1]) for f in held.frames] == [
            (start, start + FRAME_RECORDS - 1) for start in range(0, 3002 - 511, FRAME_RECORDS)]
        assert len(held.buffer) == RECORD_FIELDS * (3002 % FRAME_RECORDS)
        waiting = [*(part for frame in held.frames for part in frame), *held.buffer]
        assert [x for x in waiting if gc.is_tracked(x)] == []
        # a frame's row tuple holds only untracked values: the first collection it sees
        # stops tracking it (one tuple per 512 records, never walked again)
        gc.collect()
        assert [frame for frame in held.frames if gc.is_tracked(frame)] == []
        assert not gc.is_tracked(held.buffer[-1]) and held.buffer[-1]["nested/b"] == 2.5
        assert tracker.flush().delivered
    assert sink.values(run, "loss")[-3:] == [1.0 / 3000, 0.5, 2.0]
    assert sink.values(run, "_step")[-3:] == [2999, 3000, 3001]


@pytest.mark.parametrize("frame_records", [1, 7, 2048])
def test_readers_take_frames_of_any_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, frame_records: int
) -> None:
    """Journals written with another frame size (the first releases wrote 2,048-record
    frames) read back the same, from any cursor."""
    journal = RunJournal.create(tmp_path, "frames", {})
    fields: list[object] = []
    for seq in range(50):
        fields += [seq * 2, 1.7e9 + seq, {"x": float(seq), "n": seq}]
    monkeypatch.setattr(_journal, "FRAME_RECORDS", frame_records)
    journal.append(0, fields[: 20 * RECORD_FIELDS])
    monkeypatch.undo()
    journal.append(20, fields[20 * RECORD_FIELDS :], {"sink": 3})
    assert journal.record_count == 50 and journal.last_step == 98
    rows = sqlite3.connect(tmp_path / "frames" / "journal.db").execute(
        "SELECT first_seq, last_seq, last_step FROM frames ORDER BY first_seq").fetchall()
    assert rows[0] == (0, min(frame_records, 20) - 1, 2 * (min(frame_records, 20) - 1))
    assert rows[-1][1:] == (49, 98)
    everything = [(r.seq, r.step, r.timestamp, r.values) for r in journal.read_all()]
    assert everything == [(s, s * 2, 1.7e9 + s, {"x": float(s), "n": s}) for s in range(50)]
    for cursor in (0, 6, 7, 19, 20, 21, 49, 50):
        reader = journal.reader(cursor)
        got, after = reader.read(9)
        reader.close()
        assert [r.seq for r in got] == list(range(cursor, min(cursor + 9, 50)))
        assert after == min(cursor + 9, 50)
    assert journal.read_cursors() == {"sink": 3}
    journal.close()


def test_append_refuses_a_gap_and_writes_nothing(tmp_path: Path) -> None:
    journal = RunJournal.create(tmp_path, "gap", {})
    journal.append(0, [0, 1.0, {"x": 1.0}])
    with pytest.raises(ValueError, match="continue at seq 1, got 2"):
        journal.append(2, [1, 2.0, {"x": 2.0}])
    assert journal.record_count == 1 and journal.count() == 1
    journal.close()
