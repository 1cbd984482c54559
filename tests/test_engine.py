"""The delivery engine through the public API: fan-out isolation, permanent errors,
batching, backpressure and resuming from the journal."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import trackmux
from memory_tracker import MemoryTracker
from trackmux import JobStatus, PermanentError, TrackerNotFoundError
from trackmux_spec import TrackerInfo


def manager(**trackers: MemoryTracker):
    pm = trackmux.get_plugin_manager()
    for name, plugin in trackers.items():
        pm.register(plugin, name=name)
    return pm


def test_a_stalled_tracker_does_not_delay_another(tmp_path: Path) -> None:
    slow, fast = MemoryTracker(), MemoryTracker()
    slow.gate.clear()
    pm = manager(slow=slow, fast=fast)
    tracker = trackmux.Tracker(["slow", "fast"], data_dir=tmp_path, plugin_manager=pm)
    try:
        run = tracker.submit_job()
        for step in range(250):
            tracker.log_metrics(run, {"x": step}, step=step)
        report = tracker.flush(timeout=2)
        by_name = {status.name: status for status in report.trackers}
        assert fast.values(run, "x") == list(range(250))
        assert by_name["fast"].pending == 0
        assert by_name["slow"].pending > 0
        slow.gate.set()
        assert tracker.flush(timeout=10).delivered
        assert slow.values(run, "x") == list(range(250))
    finally:
        slow.gate.set()
        tracker.disconnect()


def test_a_permanent_error_stops_only_that_tracker_and_sync_finishes_later(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    broken, healthy = MemoryTracker(), MemoryTracker()
    broken.fail_with = PermanentError("HTTP 401: key revoked")
    pm = manager(broken=broken, healthy=healthy)
    with caplog.at_level(logging.ERROR, logger="trackmux"):
        with trackmux.Tracker(["broken", "healthy"], data_dir=tmp_path, plugin_manager=pm) as t:
            run = t.submit_job()
            for step in range(120):
                t.log_metrics(run, {"x": step}, step=step)
            report = t.flush(timeout=5)
            status = {s.name: s for s in report.trackers}
            assert status["broken"].state == "failed"
            assert "401" in (status["broken"].error or "")
            assert status["broken"].pending == 120
            assert status["healthy"].pending == 0
    assert "tracker 'broken' stopped" in caplog.text
    assert "trackmux sync" in caplog.text
    assert healthy.status[run] == JobStatus.FINISHED
    broken.fail_with = None
    result = trackmux.sync(tracker="broken", data_dir=tmp_path, plugin_manager=pm)
    assert [r.state for r in result.runs] == ["synced"]
    assert broken.values(run, "x") == list(range(120))
    assert broken.status[run] == JobStatus.FINISHED


def test_batches_respect_the_batch_size_when_not_behind(tmp_path: Path) -> None:
    sink = MemoryTracker(TrackerInfo(max_batch_records=100))
    pm = manager(sink=sink)
    with trackmux.Tracker(["sink"], data_dir=tmp_path, plugin_manager=pm) as tracker:
        run = tracker.submit_job()
        for step in range(1000):
            tracker.log_metrics(run, {"x": step}, step=step)
        tracker.flush()
    assert sink.values(run, "x") == list(range(1000))
    assert sink.calls >= 10  # never more than 100 records per call


def test_backpressure_holds_memory_at_max_buffer_and_loses_nothing(tmp_path: Path) -> None:
    """At ``max_buffer`` waiting records the caller waits for the committer (which takes
    the whole buffer), so memory stays bounded and nothing is dropped while the disk works."""
    sink = MemoryTracker()
    pm = manager(sink=sink)
    tracker = trackmux.Tracker(["sink"], data_dir=tmp_path, plugin_manager=pm)
    engine = tracker._engine
    engine.max_buffer = 50
    engine.commit_interval = 3600  # only backpressure commits
    engine.max_block = 600  # a loaded machine must not turn a slow commit into a drop
    with tracker:
        run = tracker.submit_job()
        for step in range(1234):
            tracker.log_metrics(run, {"x": step}, step=step)
            assert engine.runs[run].buffered <= 50
        report = tracker.flush()
        assert report.delivered and report.dropped == 0, report
    assert sink.values(run, "x") == list(range(1234))


def test_a_run_resumed_by_id_continues_its_steps_and_seqs(tmp_path: Path) -> None:
    sink = MemoryTracker()
    pm = manager(sink=sink)
    with trackmux.Tracker(["sink"], data_dir=tmp_path, plugin_manager=pm) as tracker:
        run = tracker.submit_job(run_id="resume01")
        for step in range(5):
            tracker.log_metrics(run, {"x": step}, step=step)
    with trackmux.Tracker(["sink"], data_dir=tmp_path, plugin_manager=pm) as tracker:
        tracker.submit_job(run_id="resume01")
        tracker.log_metrics("resume01", {"x": 5})
    assert sink.values("resume01", "x") == [0, 1, 2, 3, 4, 5]
    assert sink.values("resume01", "_step") == [0, 1, 2, 3, 4, 5]


def test_context_manager_marks_the_run_failed_on_an_exception(tmp_path: Path) -> None:
    sink = MemoryTracker()
    pm = manager(sink=sink)
    with pytest.raises(RuntimeError, match="training diverged"):
        with trackmux.Tracker(["sink"], data_dir=tmp_path, plugin_manager=pm) as tracker:
            run = tracker.submit_job()
            tracker.log_metrics(run, {"loss": float("nan")})
            raise RuntimeError("training diverged")
    assert sink.status[run] == JobStatus.FAILED
    assert len(sink.values(run, "loss")) == 1


def test_cancel_job_delivers_everything_then_marks_the_run_finished(tmp_path: Path) -> None:
    """The reference document ends every run with ``cancel_job`` ("Mark as finished")."""
    sink = MemoryTracker()
    pm = manager(sink=sink)
    with trackmux.Tracker(["sink"], data_dir=tmp_path, plugin_manager=pm) as tracker:
        run = tracker.submit_job()
        for step in range(10):
            tracker.log_metrics(run, {"x": step}, step=step)
        tracker.cancel_job(run)
        assert tracker.get_job_status(run) == JobStatus.FINISHED
    assert sink.values(run, "x") == list(range(10))


@pytest.mark.parametrize("status", [JobStatus.KILLED, "killed", JobStatus.CANCELLED])
def test_finish_with_status_killed_delivers_everything_then_kills(tmp_path: Path, status) -> None:
    sink = MemoryTracker()
    pm = manager(sink=sink)
    with trackmux.Tracker(["sink"], data_dir=tmp_path, plugin_manager=pm) as tracker:
        run = tracker.submit_job()
        for step in range(10):
            tracker.log_metrics(run, {"x": step}, step=step)
        tracker.finish(run, status=status)
        assert tracker.get_job_status(run) == JobStatus.KILLED
    assert sink.values(run, "x") == list(range(10))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"status": "running"}, "status must be one of FINISHED, FAILED, KILLED"),
        ({"status": "crashed"}, "status must be one of"),
        ({"status": "bogus"}, "'bogus'"),
        ({"exit_code": 1, "status": "finished"}, "exit_code 1 contradicts status FINISHED"),
    ],
)
def test_finish_refuses_a_status_that_is_not_a_final_choice(tmp_path: Path, kwargs, message):
    sink = MemoryTracker()
    pm = manager(sink=sink)
    with trackmux.Tracker(["sink"], data_dir=tmp_path, plugin_manager=pm) as tracker:
        run = tracker.submit_job()
        with pytest.raises(ValueError, match=message):
            tracker.finish(run, **kwargs)
        tracker.log_metrics(run, {"x": 1})  # nothing changed: the run still takes metrics
    assert sink.status[run] == JobStatus.FINISHED


def test_an_unknown_tracker_names_the_installed_ones(tmp_path: Path) -> None:
    with pytest.raises(TrackerNotFoundError) as caught:
        trackmux.Tracker(["nosuchtracker"], data_dir=tmp_path)
    assert "nosuchtracker" in str(caught.value)
    assert "null" in str(caught.value)
    assert "did you mean" not in str(caught.value)


@pytest.mark.parametrize(("typo", "meant"), [("wandbb", "wandb"), ("mlfow", "mlflow"),
                                             ("Null", "null")])
def test_a_mistyped_tracker_name_suggests_the_installed_one(
        tmp_path: Path, typo: str, meant: str) -> None:
    with pytest.raises(TrackerNotFoundError, match=rf"did you mean '{meant}'\?"):
        trackmux.Tracker([typo], data_dir=tmp_path)



def test_async_tracker_api(tmp_path: Path) -> None:
    import asyncio

    async def main() -> None:
        async with trackmux.AsyncTracker(["null"], data_dir=tmp_path) as tracker:
            run = await tracker.submit_job(name="async")
            for step in range(50):
                await tracker.log_metrics(run, {"loss": 1 / (step + 1)}, step=step)
            await tracker.flush()
            assert len(await tracker.get_history(run)) == 50
            assert tracker.get_run_url(run).startswith("file://")
            comparison = await tracker.compare_experiments([run])
            assert comparison["runs"][0]["id"] == run
            await tracker.finish(run)
            assert await tracker.get_job_status(run) == JobStatus.FINISHED

    asyncio.run(main())
