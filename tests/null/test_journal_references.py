"""The offline tracker keeps its rows by reference into the core's journal (issue 15).

What must hold: the rows read back are the rows logged, the tracker's own file stays tiny,
and the history survives what the world does to a data directory: the writer killed before
it closed the journal, the journal deleted after the run, the directory moved as a whole.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import trackmux
from trackmux_null._store import scan_history
from trackmux_spec import MetricRecord
from trackmux_spec.journal import JournalRecords, read_records

ROWS = 5_000


def _log(data_dir: Path, run_id: str, rows: int) -> None:
    with trackmux.Tracker(["null"], data_dir=data_dir) as tracker:
        tracker.submit_job(run_id=run_id, project_name="refs")
        for step in range(rows):
            tracker.log_metrics(run_id, {"loss": 1.0 / (step + 1), "i": step}, step=step)


def _history(data_dir: Path, run_id: str) -> list[dict[str, object]]:
    with trackmux.Tracker(["null"], data_dir=data_dir) as tracker:
        return tracker.get_history(run_id)


def _check_rows(rows: list[dict[str, object]], count: int) -> None:
    assert [row["i"] for row in rows] == list(range(count))
    assert [row["_step"] for row in rows] == list(range(count))
    assert all(row["loss"] == 1.0 / (row["i"] + 1) for row in rows)  # type: ignore[operator]


def _history_file(data_dir: Path, run_id: str) -> Path:
    return data_dir / "trackers" / "null" / "runs" / run_id / "history.tmf"


def test_the_rows_are_kept_by_reference_not_written_twice(tmp_path: Path) -> None:
    _log(tmp_path, "refs1", ROWS)
    items, _ = scan_history(_history_file(tmp_path, "refs1"))
    assert items and all("_journal" in item for item in items)
    assert sum(item["_stop"] - item["_start"] for item in items) == ROWS
    assert _history_file(tmp_path, "refs1").stat().st_size < 200 * len(items)
    _check_rows(_history(tmp_path, "refs1"), ROWS)


def test_the_history_survives_the_journal_deleted_after_the_run(tmp_path: Path) -> None:
    _log(tmp_path, "refs2", ROWS)
    shutil.rmtree(tmp_path / "journal" / "refs2")
    _check_rows(_history(tmp_path, "refs2"), ROWS)


def test_a_new_journal_of_the_same_run_id_is_not_read_for_the_old_rows(tmp_path: Path) -> None:
    _log(tmp_path, "refs3", 300)
    shutil.rmtree(tmp_path / "journal" / "refs3")
    with trackmux.Tracker(["null"], data_dir=tmp_path) as tracker:
        tracker.submit_job(run_id="refs3", project_name="refs")
        for step in range(300, 450):
            tracker.log_metrics("refs3", {"loss": 1.0 / (step + 1), "i": step}, step=step)
    _check_rows(_history(tmp_path, "refs3"), 450)


def test_a_data_directory_moved_as_a_whole_keeps_its_history(tmp_path: Path) -> None:
    _log(tmp_path / "before", "refs4", ROWS)
    shutil.copytree(tmp_path / "before", tmp_path / "after")
    shutil.rmtree(tmp_path / "before")
    _check_rows(_history(tmp_path / "after", "refs4"), ROWS)


_KILLED = textwrap.dedent("""
    import os, sys
    import trackmux
    tracker = trackmux.Tracker(["null"], data_dir=sys.argv[1])
    tracker.submit_job(run_id="killed", project_name="refs")
    for step in range(int(sys.argv[2])):
        tracker.log_metrics("killed", {"loss": 1.0 / (step + 1), "i": step}, step=step)
    assert tracker.flush(timeout=60).delivered
    print("acknowledged", flush=True)
    sys.stdin.read()
""")


def test_rows_acknowledged_before_a_sigkill_are_in_the_history(tmp_path: Path) -> None:
    """The writer dies with the journal open (its write-ahead log not folded in)."""
    child = subprocess.Popen([sys.executable, "-c", _KILLED, str(tmp_path), str(ROWS)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "acknowledged"
        assert (tmp_path / "journal" / "killed" / "journal.db-wal").exists()
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    _check_rows(_history(tmp_path, "killed"), ROWS)


def test_a_referenced_journal_that_is_gone_is_named_in_the_error(tmp_path: Path) -> None:
    _log(tmp_path, "refs5", 100)
    shutil.rmtree(tmp_path / "journal" / "refs5")
    for link in (tmp_path / "trackers" / "null" / "runs" / "refs5").glob("journal-*.db"):
        link.unlink()
    with trackmux.Tracker(["null"], data_dir=tmp_path) as tracker:
        with pytest.raises(RuntimeError, match=r"journal.*refs5"):
            tracker.get_history("refs5")


# -- JournalRecords, the contract's view of a range ------------------------------------------


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    _log(tmp_path, "view", 5000)
    return tmp_path / "journal" / "view" / "journal.db"


def test_journal_records_decode_lazily_with_the_seq_base(journal: Path) -> None:
    view = JournalRecords(journal, 2040, 2060, seq_base=7)
    assert len(view) == 20 and view.first_seq == 2047
    assert view._records is None  # nothing decoded until used
    assert view[0] == MetricRecord(2047, 2040, view[0].timestamp, view[0].values)
    assert [record.seq for record in view] == list(range(2047, 2067))
    assert [record.step for record in view[5:7]] == [2045, 2046]
    assert "start=2040" in repr(view) and "seq_base=7" in repr(view)


def test_reading_past_the_journal_is_an_error_naming_it(journal: Path) -> None:
    with pytest.raises(LookupError, match=r"journal\.db holds records 4990 to 4999"):
        read_records(journal, 4990, 5010)
    with pytest.raises(FileNotFoundError):
        read_records(journal.with_name("other.db"), 0, 1)
    with pytest.raises(ValueError, match="start 5 and stop 4"):
        JournalRecords(journal, 5, 4)
