"""``trackmux runs`` and ``show``: a run whose writing process is gone without a final state
is crashed (a real process, killed with SIGKILL), not "open"; a live writer's run is open."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from trackmux import _cli

pytestmark = pytest.mark.usefixtures("isolated_env")

WRITER = textwrap.dedent("""
    import sys
    import trackmux

    tracker = trackmux.Tracker(["null"], data_dir=sys.argv[1])
    run = tracker.submit_job(name="training")
    tracker.log_metrics(run, {"loss": 1.0}, step=0)
    tracker.flush()
    print(run, flush=True)
    sys.stdin.readline()  # training goes on until killed
""")


def status(data_dir: Path, run: str) -> tuple[str, str]:
    runner = CliRunner(env={"TRACKMUX_DIR": str(data_dir)})
    listed = {r["run_id"]: r for r in json.loads(
        runner.invoke(_cli.cli, ["runs", "--json"], catch_exceptions=False).output)}
    shown = runner.invoke(_cli.cli, ["show", run], catch_exceptions=False).output
    line = next(line for line in shown.splitlines() if "status:" in line)
    return listed[run]["status"], line.split("status:")[1].strip()


def test_a_killed_writer_leaves_a_crashed_run_a_live_one_an_open_run(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(data_dir)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None
        run = writer.stdout.readline().strip()
        assert status(data_dir, run) == ("open", "open")
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait(timeout=30)
        assert status(data_dir, run) == ("crashed", "crashed")
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()


def test_a_writer_that_exits_normally_finishes_its_run(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    done = subprocess.run([sys.executable, "-c", WRITER, str(data_dir)], input="\n",
                          capture_output=True, text=True, timeout=60, check=True)
    run = done.stdout.strip()
    assert status(data_dir, run) == ("finished", "finished")
