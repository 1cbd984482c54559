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
