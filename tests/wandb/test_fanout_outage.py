"""TRACKMUX_TRACKERS=wandb,null: a run goes to both, and a W&B outage neither loses nor
delays what the offline tracker records."""

from __future__ import annotations

from pathlib import Path

import pytest
import trackmux
from trackmux._retry import Backoff
from trackmux_wandb.testing import FakeWandB


def test_a_wandb_outage_does_not_delay_the_offline_tracker(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeWandB()
    monkeypatch.setenv("TRACKMUX_TRACKERS", "wandb,null")
    tracker = trackmux.Tracker(
        data_dir=tmp_path,
        settings={"wandb": {"transport": fake.transport(), "base_url": fake.base_url}},
    )
    assert tracker.trackers == ("wandb", "null")
    tracker._engine.backoff = Backoff(base=0.05, cap=0.2)
    tracker.connect({"wandb": {"api_key": fake.api_key}, "null": {}})
    try:
        run = tracker.submit_job(project_name="fanout")
        fake.outage(True)
        for step in range(300):
            tracker.log_metrics(run, {"loss": 1.0 / (step + 1)}, step=step)
        report = tracker.flush(timeout=3)
        by_name = {status.name: status for status in report.trackers}
        assert by_name["null"].pending == 0
        assert len(tracker.get_history(run, tracker="null")) == 300
        assert by_name["wandb"].pending == 300
        assert by_name["wandb"].state == "retrying"
        assert fake.history(fake.entity, "fanout", run) == []

        fake.outage(False)
        assert tracker.flush(timeout=30).delivered
    finally:
        tracker.disconnect()
    rows = fake.history(fake.entity, "fanout", run)
    assert [row["_step"] for row in rows] == list(range(300))
    assert fake.run(fake.entity, "fanout", run).state == "finished"
