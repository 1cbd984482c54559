"""How long a process takes to end after SIGTERM, and what it saved.

A child process logs ``--rows`` rows (5 floats each) through a ``Tracker`` and is stopped
with SIGTERM; the figure is the wall time from the signal until the child is gone, with
the rows journaled and the run's final state. Three cases:

* ``null``: the offline tracker; the rows were flushed before the signal;
* ``null, tail buffered``: the committer is slowed to once an hour, so the handler commits
  every row itself (the worst case for the journal write);
* ``wandb+null, W&B down``: FakeWandB answers 503, so the delivery waits the whole
  5-second bound before the process ends.

Run: ``python bench/sigterm.py [--rows N]``.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from trackmux._journal import RunJournal
from trackmux_wandb.testing import FakeWandB

CHILD = textwrap.dedent("""
    import sys, time, trackmux
    data_dir, rows, trackers, slow_commit = sys.argv[1], int(sys.argv[2]), *sys.argv[3:5]
    tracker = trackmux.Tracker(trackers.split(","), data_dir=data_dir)
    run = tracker.submit_job(project_name="bench-sigterm")
    if slow_commit == "1":
        tracker._engine.commit_interval = 3600.0
        tracker._engine.commit_batch = 10**9
        tracker._engine.max_buffer = 10**9
    for step in range(rows):
        tracker.log_metrics(run, {"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0, "e": 5.0}, step=step)
    if slow_commit != "1":
        tracker.flush(timeout=0)
    print(run, flush=True)
    while True:
        time.sleep(1)
""")


def measure(
    rows: int, trackers: str, slow_commit: bool, env: dict[str, str]
) -> tuple[float, int, str]:
    with tempfile.TemporaryDirectory() as data_dir:
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, data_dir, str(rows), trackers, str(int(slow_commit))],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        run = child.stdout.readline().strip()  # type: ignore[union-attr]
        started = time.perf_counter()
        child.send_signal(signal.SIGTERM)
        child.wait(120)
        elapsed = time.perf_counter() - started
        journal = RunJournal.peek(Path(data_dir) / "journal", run)
        count = sum(1 for _ in journal.read_all())
        return elapsed, count, str(journal.meta.get("final_status"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    env = dict(os.environ)
    print(f"{'case':<28} {'SIGTERM to exit':>16} {'rows journaled':>15}  final state")
    for label, trackers, slow in (("null", "null", False), ("null, tail buffered", "null", True)):
        elapsed, count, state = measure(args.rows, trackers, slow, env)
        print(f"{label:<28} {elapsed * 1000:>13.0f} ms {count:>15,}  {state}")
    fake = FakeWandB()
    url = fake.start()
    try:
        fake.outage(True)
        env = {**env, "WANDB_API_KEY": fake.api_key, "WANDB_BASE_URL": url,
               "WANDB_ENTITY": fake.entity}
        elapsed, count, state = measure(args.rows, "wandb,null", False, env)
        print(f"{'wandb+null, W&B down':<28} {elapsed * 1000:>13.0f} ms {count:>15,}  {state}")
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
