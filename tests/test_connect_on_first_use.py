"""``Tracker()`` connects on first use: a new session can read a finished run's history,
state and comparison without ``connect()``; the async API, which connects only when
told, says so instead of failing deep inside."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import trackmux
from trackmux import JobStatus, TrackerClosedError


def _finished_run(data_dir: Path) -> str:
    with trackmux.Tracker(["null"], data_dir=data_dir) as tracker:
        run = tracker.submit_job(name="earlier")
        for step in range(1500):
            tracker.log_metrics(run, {"loss": 1.0 / (step + 1)}, step=step)
    return run


def test_a_new_tracker_reads_an_earlier_run_without_connect(tmp_path: Path) -> None:
    run = _finished_run(tmp_path)
    reader = trackmux.Tracker(["null"], data_dir=tmp_path)
    try:
        history = reader.get_history(run)
        assert [row["_step"] for row in history] == list(range(1500))
        assert history[-1]["loss"] == 1.0 / 1500
        assert reader.get_job_status(run) is JobStatus.FINISHED
        assert [r["id"] for r in reader.compare_experiments([run])["runs"]] == [run]
        assert reader.get_run_url(run)
    finally:
        reader.disconnect()


def test_the_async_api_before_connect_says_to_connect(tmp_path: Path) -> None:
    run = _finished_run(tmp_path)

    async def main() -> None:
        tracker = trackmux.AsyncTracker(["null"], data_dir=tmp_path)
        with pytest.raises(TrackerClosedError, match=r"call connect\(\) first"):
            await tracker.get_history(run)
        await tracker.connect()
        try:
            assert len(await tracker.get_history(run)) == 1500
        finally:
            await tracker.disconnect()

    asyncio.run(main())
