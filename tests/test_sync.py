"""``trackmux.sync`` and the ``trackmux sync`` command: deliver the journal, exactly once.

* An offline run (trackers=["null"]) synced to W&B (an in-process FakeWandB) arrives whole
  and finished; syncing again sends no history.
* A process killed after part of its run reached W&B: sync resumes the run at the server's
  line count and sends only the rest.
* The CLI prints a progress bar and a summary, exits 0, against the offline tracker and
  against the fake W&B in real-server mode (credentials from the environment).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import trackmux
from click.testing import CliRunner, Result
from trackmux import _cli
from trackmux._journal import RunJournal
from trackmux_wandb.testing import FakeWandB

PROJECT = "offline-sync"
ROWS = 300


pytestmark = pytest.mark.usefixtures("isolated_env")


@pytest.fixture
def fake() -> FakeWandB:
    return FakeWandB()


def wandb_settings(fake: FakeWandB) -> dict[str, dict[str, Any]]:
    return {"wandb": {"transport": fake.transport(), "base_url": fake.base_url}}


def offline_run(data_dir: Path, rows: int = ROWS, *, finish: bool = True) -> str:
    """A run logged with ``WANDB_MODE=offline`` (``TRACKMUX_TRACKERS=wandb,null``): to the
    offline tracker only, pending for W&B. ``{"i": k}`` at step ``k``."""
    with mock.patch.dict(os.environ, {"WANDB_MODE": "offline"}):
        tracker = trackmux.Tracker(["wandb", "null"], data_dir=data_dir)
    assert tracker.trackers == ("null",)
    with tracker:
        run = tracker.submit_job(project_name=PROJECT, learning_rate=0.1)
        for k in range(rows):
            tracker.log_metrics(run, {"i": k, "loss": 1.0 / (k + 1)}, step=k)
        if finish:
            assert tracker.finish(run).delivered
        else:
            assert tracker.flush().delivered
    return run


def sync_to_fake(fake: FakeWandB, data_dir: Path, run_ids: list[str] | None = None
                 ) -> trackmux.SyncReport:
    return trackmux.sync(run_ids, tracker="wandb", data_dir=data_dir,
                         credentials={"api_key": fake.api_key}, settings=wandb_settings(fake))


def steps_on(fake: FakeWandB, run: str) -> list[int]:
    return [row["i"] for row in fake.history(fake.entity, PROJECT, run)]


def history_lines_sent(fake: FakeWandB) -> int:
    return sum(r.history_lines for r in fake.requests if r.operation == "file_stream")


def test_an_offline_run_synced_to_wandb_arrives_exactly_once_and_finished(
        fake: FakeWandB, tmp_path: Path) -> None:
    """Every row once, in order, the config kept, the run finished on W&B."""
    data_dir = tmp_path / "data"
    run = offline_run(data_dir)

    report = sync_to_fake(fake, data_dir)

    assert report.ok, report
    assert [(r.run_id, r.state, r.total, r.already, r.delivered, r.finished)
            for r in report.runs] == [(run, "synced", ROWS, 0, ROWS, True)]
    assert steps_on(fake, run) == list(range(ROWS))
    assert history_lines_sent(fake) == ROWS
    assert fake.run(fake.entity, PROJECT, run).state == "finished"
    assert fake.config(fake.entity, PROJECT, run)["learning_rate"]["value"] == 0.1


def test_syncing_twice_changes_nothing(fake: FakeWandB, tmp_path: Path) -> None:
    """The second sync finds nothing to do: no history sent, the fake's state unchanged."""
    data_dir = tmp_path / "data"
    run = offline_run(data_dir)
    assert sync_to_fake(fake, data_dir).ok
    before = (fake.history(fake.entity, PROJECT, run), fake.run(fake.entity, PROJECT, run).state)
    fake.clear_requests()

    again = sync_to_fake(fake, data_dir)

    assert again.ok and again.runs == []
    assert [r.operation for r in fake.requests] == ["Viewer"]  # the login check only
    assert (fake.history(fake.entity, PROJECT, run),
            fake.run(fake.entity, PROJECT, run).state) == before


def test_syncing_a_delivered_run_by_name_only_resumes_it(fake: FakeWandB, tmp_path: Path) -> None:
    """Naming an up-to-date run: the resume query and upsert, no file_stream, no new rows."""
    data_dir = tmp_path / "data"
    run = offline_run(data_dir)
    assert sync_to_fake(fake, data_dir).ok
    before = fake.history(fake.entity, PROJECT, run)
    fake.clear_requests()

    again = sync_to_fake(fake, data_dir, [run])

    assert again.ok
    assert [(r.state, r.delivered, r.already) for r in again.runs] == [("up to date", 0, ROWS)]
    assert "file_stream" not in [r.operation for r in fake.requests]
    assert "RunResumeStatus" in [r.operation for r in fake.requests]
    assert fake.history(fake.entity, PROJECT, run) == before
    assert fake.run(fake.entity, PROJECT, run).state == "finished"


def test_sync_counts_what_it_sent_not_what_the_tracker_already_held(
        fake: FakeWandB, tmp_path: Path) -> None:
    """W&B holds 1475 rows, the cursor says 300 (acknowledgements lost): 225 sent."""
    data_dir = tmp_path / "data"
    tracker = trackmux.Tracker(["wandb"], data_dir=data_dir, settings=wandb_settings(fake))
    tracker.connect({"api_key": fake.api_key})
    run = tracker.submit_job(project_name=PROJECT)
    for k in range(1475):
        tracker.log_metrics(run, {"i": k}, step=k)
    assert tracker.disconnect().delivered
    with trackmux.Tracker(["null"], data_dir=data_dir) as tracker:   # W&B not in the list
        tracker.submit_job(run_id=run)
        for k in range(1475, 1700):
            tracker.log_metrics(run, {"i": k}, step=k)
    journal = RunJournal.open(data_dir / "journal", run)
    journal.write_cursor("wandb", 300)
    journal.close()
    fake.clear_requests()

    report = sync_to_fake(fake, data_dir, [run])

    assert report.ok, report
    assert [(r.total, r.already, r.delivered) for r in report.runs] == [(1700, 1475, 225)]
    assert history_lines_sent(fake) == 225
    assert steps_on(fake, run) == list(range(1700))


CHILD = textwrap.dedent("""
    import sys
    import trackmux

    data_dir, first, second = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    tracker = trackmux.Tracker(["wandb"], data_dir=data_dir, durability="fsync",
                               settings={"wandb": {"timeout": 5}})
    run = tracker.submit_job(run_id="killed01", project_name=%r)
    for k in range(first):
        tracker.log_metrics(run, {"i": k}, step=k)
    report = tracker.flush(timeout=30)
    assert report.delivered, report
    for k in range(first, first + second):
        tracker.log_metrics(run, {"i": k}, step=k)   # fsync: journaled when it returns
    print("ready", flush=True)
    import time
    time.sleep(60)
""" % PROJECT)


@pytest.mark.slow
def test_a_killed_process_run_resumes_on_wandb_without_duplicates(
        fake: FakeWandB, tmp_path: Path) -> None:
    """Part of a run reached W&B, then SIGKILL: sync resumes at the server's line count."""
    data_dir = tmp_path / "data"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    with fake.serve() as url:
        env = {**os.environ, "WANDB_BASE_URL": url, "WANDB_API_KEY": fake.api_key}
        with subprocess.Popen([sys.executable, str(script), str(data_dir), "200", "150"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env) as child:
            try:
                line = child.stdout.readline()  # type: ignore[union-attr]
                assert line == "ready\n", line + child.stderr.read()  # type: ignore[union-attr]
            finally:
                os.kill(child.pid, signal.SIGKILL)
                child.communicate()
        on_server = len(fake.history(fake.entity, PROJECT, "killed01"))
        assert on_server >= 200
        fake.clear_requests()

        report = trackmux.sync(tracker="wandb", data_dir=data_dir,
                               credentials={"api_key": fake.api_key},
                               settings={"wandb": {"base_url": url}})

    assert report.ok, report
    (outcome,) = report.runs
    assert (outcome.run_id, outcome.total) == ("killed01", 350)
    assert outcome.already + outcome.delivered == 350
    assert steps_on(fake, "killed01") == list(range(350))
    operations = [r.operation for r in fake.requests]
    assert "RunResumeStatus" in operations
    assert history_lines_sent(fake) == 350 - on_server, "only the lines W&B lacked are sent"


def invoke(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    runner = CliRunner(env={"TRACKMUX_DIR": str(data_dir), "COLUMNS": "200", **(env or {})})
    return runner.invoke(_cli.cli, list(args), catch_exceptions=False)


def wandb_only_run(fake: FakeWandB, data_dir: Path, rows: int) -> str:
    """A finished run logged to (in-process) W&B only; the offline tracker lacks it."""
    tracker = trackmux.Tracker(["wandb"], data_dir=data_dir, settings=wandb_settings(fake))
    tracker.connect({"api_key": fake.api_key})
    with tracker:
        run = tracker.submit_job(project_name=PROJECT)
        for k in range(rows):
            tracker.log_metrics(run, {"i": k}, step=k)
        assert tracker.finish(run).delivered
    return run


def test_cli_sync_to_the_offline_tracker_prints_progress_and_a_summary(
        fake: FakeWandB, tmp_path: Path) -> None:
    """``trackmux sync RUN --tracker null``: a bar, one summary line, exit 0, rows stored."""
    data_dir = tmp_path / "data"
    run = wandb_only_run(fake, data_dir, 120)

    result = invoke(data_dir, "sync", run, "--tracker", "null")

    assert result.exit_code == 0, result.output
    assert f"{run} → null" in result.output
    assert "120/120" in result.output
    assert f"{run}: synced, 120 records sent (0 already there, 120 in all)" in result.output
    with trackmux.Tracker(["null"], data_dir=data_dir) as tracker:
        assert [row["i"] for row in tracker.get_history(run)] == list(range(120))
        assert tracker.get_job_status(run) == trackmux.JobStatus.FINISHED

    again = invoke(data_dir, "sync", "--tracker", "null")
    assert again.exit_code == 0, again.output
    assert "Nothing to sync: null holds every run meant for it." in again.output


@pytest.mark.slow
def test_cli_sync_to_wandb_takes_credentials_from_the_environment(
        fake: FakeWandB, tmp_path: Path) -> None:
    """``trackmux sync --tracker wandb`` against the fake's real server (WANDB_* env)."""
    data_dir = tmp_path / "data"
    run = offline_run(data_dir, 80)
    with fake.serve() as url:
        result = invoke(data_dir, "sync", "--tracker", "wandb", "--yes",
                        env={"WANDB_BASE_URL": url, "WANDB_API_KEY": fake.api_key})
    assert result.exit_code == 0, result.output
    assert f"{run}: synced, 80 records sent (0 already there, 80 in all)" in result.output
    assert steps_on(fake, run) == list(range(80))
    assert fake.run(fake.entity, PROJECT, run).state == "finished"


def test_cli_sync_with_a_rejected_key_fails_cleanly(fake: FakeWandB, tmp_path: Path) -> None:
    """A bad key: a one-line error, exit code 1, the journal untouched for a later sync."""
    data_dir = tmp_path / "data"
    run = offline_run(data_dir, 10)
    with fake.serve() as url:
        bad = invoke(data_dir, "sync", "--tracker", "wandb", "--yes",
                     env={"WANDB_BASE_URL": url, "WANDB_API_KEY": "x" * 40})
        assert bad.exit_code == 1, bad.output
        assert "rejected the API key" in bad.output
        assert "x" * 40 not in bad.output
        good = invoke(data_dir, "sync", "--tracker", "wandb", "--yes",
                      env={"WANDB_BASE_URL": url, "WANDB_API_KEY": fake.api_key})
    assert good.exit_code == 0, good.output
    assert steps_on(fake, run) == list(range(10))
