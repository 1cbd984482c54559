"""Crash safety: a process killed with SIGKILL mid-run loses (almost) nothing.

A child process logs rows in a tight loop to the offline tracker and reports, through a
pipe, each step whose ``log_metrics`` call returned, with ``time.monotonic()`` (one clock for
every process on the machine). The parent SIGKILLs it after enough rows, then delivers the
journal with ``trackmux.sync`` and reads the history back through the public API.

* ``durability="default"`` (group commit every 50 ms): every row logged more than 200 ms
  before the kill is delivered.
* ``durability="fsync"``: every row whose ``log_metrics`` returned before the kill is.

In both cases the delivered rows are a gap-free prefix of what was logged, each once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import trackmux

pytestmark = pytest.mark.slow

RUN_ID = "crash001"

CHILD = textwrap.dedent("""
    import sys, time
    import trackmux

    data_dir, durability = sys.argv[1], sys.argv[2]
    tracker = trackmux.Tracker(["null"], data_dir=data_dir, durability=durability)
    run = tracker.submit_job(run_id=%r, project_name="crash")
    out = sys.stdout
    out.write("ready\\n")
    out.flush()
    step = 0
    while True:
        tracker.log_metrics(run, {"i": step, "loss": 1.0 / (step + 1)}, step=step)
        out.write(f"{step} {time.monotonic()!r}\\n")   # after the call returned
        out.flush()
        step += 1
""" % RUN_ID)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("TRACKMUX_TRACKERS", "TRACKMUX_DIR", "WANDB_MODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def kill_mid_run(data_dir: Path, durability: str, *, min_rows: int,
                 min_span: float) -> tuple[list[tuple[int, float]], float]:
    """Start the child, SIGKILL it once it reported ``min_rows`` rows over ``min_span`` s.

    Returns every ``(step, returned_at)`` the child reported, and the kill's monotonic time.
    """
    script = data_dir.parent / "child.py"
    script.write_text(CHILD)
    errors = data_dir.parent / "child.err"
    with errors.open("w") as stderr:  # the child keeps its own copy of the descriptor
        child = subprocess.Popen([sys.executable, str(script), str(data_dir), durability],
                                 stdout=subprocess.PIPE, stderr=stderr, text=True)
    reported: list[tuple[int, float]] = []
    try:
        assert child.stdout is not None
        first = child.stdout.readline()
        assert first == "ready\n", first + errors.read_text()
        while True:
            line = child.stdout.readline()
            assert line, "the child ended on its own: " + errors.read_text()
            step, at = line.split()
            reported.append((int(step), float(at)))
            if len(reported) >= min_rows and reported[-1][1] - reported[0][1] >= min_span:
                break
        killed_at = time.monotonic()
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        rest = child.stdout.read()  # written before the kill, still in the pipe
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()  # type: ignore[union-attr]
    assert child.returncode == -signal.SIGKILL
    for line in rest.splitlines():
        step, at = line.split()
        reported.append((int(step), float(at)))
    assert [step for step, _ in reported] == list(range(len(reported)))
    return reported, killed_at


def delivered_steps(data_dir: Path) -> list[int]:
    """Sync the journal to the offline tracker, then read the run's history back."""
    report = trackmux.sync(tracker="null", data_dir=data_dir)
    assert report.ok, report
    with trackmux.Tracker(["null"], data_dir=data_dir) as tracker:
        history = tracker.get_history(RUN_ID)
    return [row["i"] for row in history]


def test_default_durability_keeps_every_row_logged_200_ms_before_a_sigkill(
        tmp_path: Path) -> None:
    """Group commit: a SIGKILL loses at most the rows of the last ~100 ms, never older ones."""
    data_dir = tmp_path / "data"
    reported, killed_at = kill_mid_run(data_dir, "default", min_rows=2_000, min_span=0.6)
    old_enough = [step for step, at in reported if at < killed_at - 0.2]
    assert len(old_enough) >= 100, "the child must have logged for a while before the kill"

    steps = delivered_steps(data_dir)
    assert steps == list(range(len(steps))), "delivered rows must be a gap-free prefix, once each"
    assert len(steps) >= len(old_enough), (
        f"{len(old_enough)} rows were logged more than 200 ms before the kill, only "
        f"{len(steps)} survived")


def test_fsync_durability_keeps_every_row_whose_call_returned_before_a_sigkill(
        tmp_path: Path) -> None:
    """``durability="fsync"``: once ``log_metrics`` returned, the row survives a SIGKILL."""
    data_dir = tmp_path / "data"
    reported, killed_at = kill_mid_run(data_dir, "fsync", min_rows=300, min_span=0.3)
    returned = [step for step, at in reported if at < killed_at]
    assert len(returned) == len(reported)

    steps = delivered_steps(data_dir)
    assert steps == list(range(len(steps))), "delivered rows must be a gap-free prefix, once each"
    assert len(steps) >= len(returned), (
        f"{len(returned)} log_metrics calls returned before the kill, only {len(steps)} rows "
        f"survived")
    assert len(steps) <= len(returned) + 1  # at most the call in progress at the kill


def test_sync_after_a_sigkill_is_idempotent(tmp_path: Path) -> None:
    """Syncing a killed run twice delivers nothing the second time."""
    data_dir = tmp_path / "data"
    kill_mid_run(data_dir, "default", min_rows=200, min_span=0.3)
    first = delivered_steps(data_dir)
    again = trackmux.sync([RUN_ID], tracker="null", data_dir=data_dir)
    assert again.ok, again
    assert again.runs[0].delivered == 0 and again.runs[0].state == "up to date"
    assert delivered_steps(data_dir) == first
