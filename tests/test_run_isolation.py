"""Per-run failure isolation: a tracker that refuses one run for good (``PermanentError``)
stops delivering that run only. Its other runs, and runs submitted later, still reach it;
the refused run's records stay in the journal for ``trackmux sync``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import trackmux
from memory_tracker import MemoryTracker
from trackmux import JobStatus, PermanentError
from trackmux_spec import hookimpl


class PickyTracker(MemoryTracker):
    """Refuses the runs in ``refuse_logs`` at log_metrics and ``refuse_submits`` at submit."""

    def __init__(self) -> None:
        super().__init__()
        self.refuse_logs: set[str] = set()
        self.refuse_submits: set[str] = set()

    @hookimpl
    def submit_job(self, session: object, run_id: str, config: Any) -> str:
        if run_id in self.refuse_submits:
            raise PermanentError(f"HTTP 400: project of {run_id} is archived")
        return super().submit_job(session, run_id, config)

    @hookimpl
    def log_metrics(self, session: object, job_id: str, records: Any) -> None:
        if job_id in self.refuse_logs:
            raise PermanentError(f"HTTP 400: run {job_id} was deleted")
        super().log_metrics(session, job_id, records)


def log_rows(tracker: trackmux.Tracker, run: str, count: int) -> None:
    for step in range(count):
        tracker.log_metrics(run, {"x": step}, step=step)


def test_a_run_refused_for_good_stops_only_that_run_on_that_tracker(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    picky, other = PickyTracker(), MemoryTracker()
    pm = trackmux.get_plugin_manager()
    pm.register(picky, name="picky")
    pm.register(other, name="other")
    picky.refuse_logs.add("deleted1")
    picky.refuse_submits.add("archived")
    with caplog.at_level(logging.ERROR, logger="trackmux"):
        with trackmux.Tracker(["picky", "other"], data_dir=tmp_path, plugin_manager=pm) as t:
            deleted = t.submit_job(run_id="deleted1")
            kept = t.submit_job(run_id="kept0001")
            log_rows(t, deleted, 50)
            log_rows(t, kept, 50)
            report = t.flush(timeout=10)
            status = {s.name: s for s in report.trackers}["picky"]
            assert status.state == "ok"
            assert set(status.failed_runs) == {deleted}
            assert "deleted" in status.failed_runs[deleted]
            assert status.pending == 50
            assert "run deleted1 stopped" in str(report)

            archived = t.submit_job(run_id="archived")  # refused by picky, kept by other
            later = t.submit_job(run_id="later001")  # after two refusals: still reaches picky
            log_rows(t, archived, 20)
            log_rows(t, later, 30)
            report = t.flush(timeout=10)
            status = {s.name: s for s in report.trackers}["picky"]
            assert set(status.failed_runs) == {deleted, archived}
            assert status.pending == 70
    assert picky.values(kept, "x") == list(range(50))
    assert picky.values(later, "x") == list(range(30))
    assert picky.status[kept] == picky.status[later] == JobStatus.FINISHED
    assert deleted not in picky.status or not picky.values(deleted, "x")
    assert other.values(deleted, "x") == list(range(50))
    assert other.values(archived, "x") == list(range(20))
    assert "tracker 'picky' stopped delivering run 'deleted1'" in caplog.text
    assert "trackmux sync deleted1 --tracker picky" in caplog.text

    picky.refuse_logs.clear()
    picky.refuse_submits.clear()
    result = trackmux.sync(tracker="picky", data_dir=tmp_path, plugin_manager=pm, timeout=30)
    assert sorted((r.run_id, r.state) for r in result.runs) == [
        (archived, "synced"), (deleted, "synced")]
    assert picky.values(deleted, "x") == list(range(50))
    assert picky.values(archived, "x") == list(range(20))
    assert picky.status[deleted] == JobStatus.FINISHED


def test_sync_reports_a_run_the_tracker_refuses(tmp_path: Path) -> None:
    picky = PickyTracker()
    pm = trackmux.get_plugin_manager()
    pm.register(picky, name="picky")
    with trackmux.Tracker(["null"], data_dir=tmp_path, plugin_manager=pm) as t:
        refused, fine = t.submit_job(run_id="refused1"), t.submit_job(run_id="fine0001")
        log_rows(t, refused, 10)
        log_rows(t, fine, 10)
    picky.refuse_logs.add(refused)
    result = trackmux.sync(tracker="picky", data_dir=tmp_path, plugin_manager=pm, timeout=30)
    states = {r.run_id: (r.state, r.error) for r in result.runs}
    assert states[fine] == ("synced", None)
    assert states[refused][0] == "failed" and "deleted" in (states[refused][1] or "")
    assert picky.values(fine, "x") == list(range(10))
