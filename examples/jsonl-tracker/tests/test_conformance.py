"""trackmux's conformance suite against the jsonl tracker, found through its entry point."""

from __future__ import annotations

import json
from pathlib import Path

import trackmux
from trackmux_spec.conformance import TrackerConformance


class TestJsonlConformance(TrackerConformance):
    """Every standard test, unchanged: the tracker claims every capability."""

    tracker_name = "jsonl"


def test_a_run_is_one_json_lines_file(tmp_path: Path) -> None:
    with trackmux.Tracker(["jsonl"], data_dir=tmp_path) as tracker:
        run = tracker.submit_job(name="demo", learning_rate=0.1)
        tracker.log_metrics(run, {"loss": 0.5}, step=0)
        tracker.log_metrics(run, {"loss": 0.25}, step=1)
    lines = (tmp_path / "trackers" / "jsonl" / "runs" / f"{run}.jsonl").read_text().splitlines()
    events = [json.loads(line) for line in lines]
    assert [event["event"] for event in events] == ["run", "metrics", "metrics", "status"]
    assert events[0]["hyperparameters"] == {"learning_rate": 0.1}
    assert [event["values"]["loss"] for event in events[1:3]] == [0.5, 0.25]
    assert events[-1]["status"] == "finished"
