"""A script that never calls disconnect(): interpreter exit delivers and finishes its runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import trackmux
from trackmux import JobStatus

SCRIPT = """
import sys, trackmux
tracker = trackmux.Tracker(["null"], data_dir=sys.argv[1])
run = tracker.submit_job(name="no-disconnect")
for step in range(777):
    tracker.log_metrics(run, {"loss": 1.0 / (step + 1)}, step=step)
print(run)
"""


def test_interpreter_exit_delivers_everything_and_finishes_the_run(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True,
                          text=True, timeout=120, check=True)
    run = done.stdout.strip()
    with trackmux.Tracker(["null"], data_dir=tmp_path) as tracker:
        rows = tracker.get_history(run)
        status = tracker.get_job_status(run)
    assert len(rows) == 777
    assert rows[-1]["_step"] == 776
    assert status == JobStatus.FINISHED


DROPPED = """
import gc, sys, trackmux

def train():
    tracker = trackmux.Tracker(["null"], data_dir=sys.argv[1])
    run = tracker.submit_job(name="dropped")
    for step in range(4321):
        tracker.log_metrics(run, {"loss": 1.0 / (step + 1)}, step=step)
    return run  # the tracker is no longer referenced by the program

run = train()
gc.collect()
print(run)
"""


def test_a_tracker_the_program_dropped_still_finishes_at_exit(tmp_path: Path) -> None:
    """A tracker made in a function that returned without closing it: the program holds
    no reference, but it is connected, so trackmux does, and exit finishes its run with
    every record (without it, the last records were lost and the loop's tasks were
    destroyed pending)."""
    done = subprocess.run([sys.executable, "-c", DROPPED, str(tmp_path)], capture_output=True,
                          text=True, timeout=120, check=True)
    assert "destroyed but it is pending" not in done.stderr, done.stderr
    run = done.stdout.strip()
    reader = trackmux.Tracker(["null"], data_dir=tmp_path)
    try:
        rows = reader.get_history(run)
        assert reader.get_job_status(run) == JobStatus.FINISHED
    finally:
        reader.disconnect()
    assert [row["_step"] for row in rows] == list(range(4321))
