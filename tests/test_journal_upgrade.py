"""A journal written by the first release (``records.tmf`` frames, ``cursors/<tracker>``
files, the writer's pid in run.json) is still there after an upgrade: listed, shown and
synced, with its cursors, its torn tail cut off, and nothing numbered twice."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import pytest
import trackmux
from click.testing import CliRunner
from trackmux import _cli
from trackmux._journal import RunJournal, count_records, iter_run_ids
from trackmux_spec.framing import encode_frame

pytestmark = pytest.mark.usefixtures("isolated_env")

RUN = "oldrun01"


def _write_first_release_run(root: Path, *, writer_pid: int | None, delivered: int) -> None:
    """Five records in two frames, a torn third frame, and a cursor for 'null'."""
    directory = root / RUN
    (directory / "cursors").mkdir(parents=True)
    meta = {
        "run_id": RUN,
        "config": {"project_name": "legacy", "learning_rate": 0.1},
        "created": time.time(),
        "pid": 1,
        "host": socket.gethostname(),
        "trackers": {},
        "final_status": "finished",
        "writer": None if writer_pid is None else {"pid": writer_pid,
                                                    "host": socket.gethostname()},
    }
    (directory / "run.json").write_text(json.dumps(meta))
    records = [(seq, seq * 10, 1.7e9 + seq, {"loss": 1.0 / (seq + 1)}) for seq in range(5)]
    torn = encode_frame([(5, 50, 1.7e9, {"loss": 0.0})])[:-3]
    (directory / "records.tmf").write_bytes(
        encode_frame(records[:3]) + encode_frame(records[3:]) + torn
    )
    if delivered:
        (directory / "cursors" / "null").write_text(f"{delivered} 0")


def test_a_first_release_run_opens_with_its_records_and_cursors(tmp_path: Path) -> None:
    root = tmp_path / "journal"
    _write_first_release_run(root, writer_pid=None, delivered=3)
    journal = RunJournal.open(root, RUN)
    try:
        assert journal.record_count == 5  # the torn frame was never acknowledged: cut off
        assert journal.last_step == 40
        assert [(r.seq, r.step, r.values) for r in journal.read_all()] == [
            (seq, seq * 10, {"loss": 1.0 / (seq + 1)}) for seq in range(5)
        ]
        assert journal.read_cursor("null") == 3
    finally:
        journal.close()
    assert not (root / RUN / "records.tmf").exists()
    assert (root / RUN / "records.tmf.migrated").exists()
    reopened = RunJournal.open(root, RUN)  # migrated once: nothing doubled
    try:
        assert reopened.record_count == 5
    finally:
        reopened.close()


def test_listing_migrates_a_first_release_run_but_not_while_its_writer_lives(
    tmp_path: Path,
) -> None:
    root = tmp_path / "journal"
    _write_first_release_run(root, writer_pid=os.getppid(), delivered=0)  # alive
    assert iter_run_ids(root) == [RUN]
    assert (root / RUN / "records.tmf").exists()  # an old process still appends to it
    meta = json.loads((root / RUN / "run.json").read_text())
    meta["writer"] = None
    (root / RUN / "run.json").write_text(json.dumps(meta))
    assert iter_run_ids(root) == [RUN]
    assert count_records(root / RUN / "journal.db") == 5


def test_trackmux_runs_lists_and_sync_delivers_a_first_release_run(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    _write_first_release_run(data_dir / "journal", writer_pid=None, delivered=0)
    result = CliRunner(env={"TRACKMUX_DIR": str(data_dir)}).invoke(
        _cli.cli, ["runs", "--json"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    [listed] = json.loads(result.output)
    assert (listed["run_id"], listed["record_count"], listed["status"]) == (RUN, 5, "finished")
    trackmux.sync([RUN], tracker="null", data_dir=data_dir)
    with trackmux.Tracker(["null"], data_dir=data_dir) as tracker:
        history = tracker.get_history(RUN)
    assert [(row["_step"], row["loss"]) for row in history] == [
        (seq * 10, 1.0 / (seq + 1)) for seq in range(5)
    ]
