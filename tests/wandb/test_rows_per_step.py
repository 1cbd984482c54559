"""Through the Tracker, against the fake W&B: one history row per step, as the SDK stores
it, and a run resumed on a fresh node (a journal that does not hold it) continuing after
what W&B holds."""

from __future__ import annotations

import shutil
from pathlib import Path

import trackmux
from trackmux_wandb.testing import FakeWandB

PROJECT = "rows"


def tracker_for(fake: FakeWandB, data_dir: Path) -> trackmux.Tracker:
    tracker = trackmux.Tracker(
        ["wandb"],
        data_dir=data_dir,
        settings={"wandb": {"transport": fake.transport(), "base_url": fake.base_url}},
    )
    tracker.connect({"api_key": fake.api_key})
    return tracker


def test_train_and_eval_logs_at_one_step_make_one_row_per_step(tmp_path: Path) -> None:
    """HF Trainer / Lightning: train metrics every step, eval metrics at every 10th step."""
    fake = FakeWandB()
    tracker = tracker_for(fake, tmp_path)
    run = tracker.submit_job(project_name=PROJECT)
    for step in range(100):
        tracker.log_metrics(run, {"train/loss": 1.0 / (step + 1)}, step=step)
        if step % 10 == 0:
            tracker.log_metrics(run, {"eval/loss": 2.0 / (step + 1)}, step=step)
        if step % 37 == 0:
            tracker.flush()  # rows merged across requests too
    assert tracker.disconnect().delivered

    rows = fake.history(fake.entity, PROJECT, run)
    assert [row["_step"] for row in rows] == list(range(100))
    assert [row["_step"] for row in rows if "eval/loss" in row] == list(range(0, 100, 10))
    assert all(row["train/loss"] == 1.0 / (row["_step"] + 1) for row in rows)
    assert fake.run(fake.entity, PROJECT, run).state == "finished"


def test_a_run_resumed_on_a_fresh_node_continues_after_what_wandb_holds(tmp_path: Path) -> None:
    """The journal is gone (a new node): nothing skipped, nothing twice; a record at the
    last step merges into its row; a record without a step continues after it."""
    fake = FakeWandB()
    first = tracker_for(fake, tmp_path / "node1")
    run = first.submit_job(project_name=PROJECT, run_id="preempt1")
    for step in range(50):
        first.log_metrics(run, {"loss": float(step)}, step=step)
    assert first.disconnect().delivered
    shutil.rmtree(tmp_path / "node1")

    second = tracker_for(fake, tmp_path / "node2")
    assert second.submit_job(project_name=PROJECT, run_id="preempt1") == run
    second.log_metrics(run, {"eval": 1.0}, step=49)
    for step in range(50, 80):
        second.log_metrics(run, {"loss": float(step)}, step=step)
    second.log_metrics(run, {"loss": 80.0})
    assert second.disconnect().delivered

    rows = fake.history(fake.entity, PROJECT, run)
    assert [row["_step"] for row in rows] == list(range(81))
    assert [row["loss"] for row in rows] == [float(step) for step in range(81)]
    assert rows[49]["eval"] == 1.0
    assert fake.run(fake.entity, PROJECT, run).state == "finished"
