"""A remote backend down when the job starts: ``Tracker(["wandb", "null"])`` goes on.

* W&B answering 503 at ``connect()``: nothing raises; the offline tracker gets every record
  at once; W&B is retried in the background and receives everything once it is back; the
  user is told once.
* Nothing listening at all (a closed port), and W&B never back during the job: the records
  stay in the journal and ``trackmux sync`` delivers them to a live server later.
* A refused key is still an immediate ``ValueError``; the reference ``WandBConnector``
  still raises ``ConnectionError``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path

import pytest
import trackmux
from trackmux._retry import Backoff
from trackmux_wandb import WandBConnector
from trackmux_wandb.testing import FakeWandB

PROJECT = "down-at-start"


def test_wandb_down_at_start_journals_feeds_null_and_connects_later(
        fake: FakeWandB, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    fake.outage(True)
    tracker = trackmux.Tracker(
        ["wandb", "null"], data_dir=tmp_path,
        settings={"wandb": {"transport": fake.transport(), "base_url": fake.base_url}})
    tracker._engine.backoff = Backoff(base=0.05, cap=0.2)
    with caplog.at_level(logging.DEBUG, logger="trackmux"):
        tracker.connect({"wandb": {"api_key": fake.api_key}, "null": {}})  # does not raise
        try:
            run = tracker.submit_job(project_name=PROJECT)
            for step in range(300):
                tracker.log_metrics(run, {"loss": 1.0 / (step + 1)}, step=step)
            report = tracker.flush(timeout=2)
            by_name = {status.name: status for status in report.trackers}
            assert by_name["null"].pending == 0
            assert len(tracker.get_history(run, tracker="null")) == 300
            assert by_name["wandb"].state == "connecting"
            assert by_name["wandb"].pending == 300
            with pytest.raises(ConnectionError, match="not connected yet"):
                tracker.get_job_status(run, tracker="wandb")

            fake.outage(False)
            assert tracker.flush(timeout=30).delivered
        finally:
            tracker.disconnect()
    rows = fake.history(fake.entity, PROJECT, run)
    assert [row["_step"] for row in rows] == list(range(300))
    assert fake.run(fake.entity, PROJECT, run).state == "finished"
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    told = [text for text in warnings if "cannot reach its backend" in text]
    assert len(told) == 1, warnings  # told once, however many attempts it took
    assert "'wandb'" in told[0] and "trackmux sync" in told[0]
    assert any("connected after" in text for text in warnings)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_wandb_never_reachable_during_the_job_and_sync_finishes_later(tmp_path: Path) -> None:
    down = f"http://127.0.0.1:{closed_port()}"
    fake = FakeWandB()
    tracker = trackmux.Tracker(["wandb", "null"], data_dir=tmp_path,
                               settings={"wandb": {"base_url": down}})
    tracker.connect({"wandb": {"api_key": fake.api_key}, "null": {}})
    run = tracker.submit_job(project_name=PROJECT)
    for step in range(120):
        tracker.log_metrics(run, {"loss": 1.0 / (step + 1)}, step=step)
    report = tracker.disconnect(timeout=0.5)
    assert [(s.name, s.state, s.pending) for s in report.trackers] == [
        ("wandb", "connecting", 120), ("null", "ok", 0)]
    with trackmux.Tracker(["null"], data_dir=tmp_path) as offline:
        assert len(offline.get_history(run)) == 120

    url = fake.start()
    try:
        report = trackmux.sync(tracker="wandb", data_dir=tmp_path, timeout=30,
                               credentials={"api_key": fake.api_key},
                               settings={"wandb": {"base_url": url}})
    finally:
        fake.stop()
    assert [(r.run_id, r.state) for r in report.runs] == [(run, "synced")]
    assert [row["_step"] for row in fake.history(fake.entity, PROJECT, run)] == list(range(120))
    assert fake.run(fake.entity, PROJECT, run).state == "finished"


def test_a_refused_key_is_still_an_immediate_error(fake: FakeWandB, tmp_path: Path) -> None:
    tracker = trackmux.Tracker(
        ["wandb", "null"], data_dir=tmp_path,
        settings={"wandb": {"transport": fake.transport(), "base_url": fake.base_url}})
    with pytest.raises(ValueError, match="rejected"):
        tracker.connect({"wandb": {"api_key": "x" * 40}, "null": {}})


def test_the_reference_connector_still_raises_connection_error(
        fake: FakeWandB, tmp_path: Path) -> None:
    fake.outage(True)
    connector = WandBConnector(
        data_dir=tmp_path,
        settings={"wandb": {"transport": fake.transport(), "base_url": fake.base_url}})

    async def connect() -> None:
        await connector.connect({"api_key": fake.api_key})

    with pytest.raises(ConnectionError):
        asyncio.run(connect())
