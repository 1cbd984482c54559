"""SIGTERM (SLURM, Kubernetes): a real child process, a real signal.

The child logs through a ``Tracker`` and is stopped with ``SIGTERM``. What must hold:

* with the default disposition, the buffered tail is committed (the child's committer is
  slowed to once an hour, so only the handler can have written it), every run ends as
  ``preempted`` in the journal (``trackmux runs``) and on the tracker, the journal is
  released, and the process ends as a SIGTERM ends it (``-15``);
* a SIGTERM that arrives while ``log_metrics`` runs in a tight loop loses nothing either;
* W&B gets ``preempting`` and then a non-zero exit code: its run reads ``preempted``;
* a second SIGTERM while the first one delivers ends the process at once (the delivery
  bound is raised to 10 minutes there, so waiting for it would time the test out);
* a handler installed before trackmux (a user's) is chained, and one installed after it
  that calls it (as Lightning's Trainer composes the handler it finds) is respected: that
  handler decides how the process stops, logging goes on, and the runs end as
  ``preempted``.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import trackmux
from click.testing import CliRunner
from trackmux import JobStatus, _cli
from trackmux._journal import RunJournal
from trackmux_wandb.testing import FakeWandB

pytestmark = pytest.mark.usefixtures("isolated_env")


def start(script: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(script), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def runs_json(data_dir: Path) -> dict[str, dict[str, object]]:
    result = CliRunner(env={"TRACKMUX_DIR": str(data_dir)}).invoke(
        _cli.cli, ["runs", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return {run["run_id"]: run for run in json.loads(result.output)}


def assert_released(data_dir: Path, run: str) -> None:
    """Another process can write the run now (the writer let go)."""
    RunJournal.open(data_dir / "journal", run).close()


def journaled(data_dir: Path, run: str) -> list[int]:
    return [record.seq for record in RunJournal.peek(data_dir / "journal", run).read_all()]


def test_sigterm_commits_the_buffered_tail_and_ends_the_run_preempted(tmp_path: Path) -> None:
    child = start("""
        import sys, time, trackmux
        tracker = trackmux.Tracker(["null"], data_dir=sys.argv[1])
        run = tracker.submit_job(name="preempt")
        tracker._engine.commit_interval = 3600.0   # only the handler can commit the tail
        for step in range(1000):
            tracker.log_metrics(run, {"loss": 1.0 / (step + 1)}, step=step)
        print(run, flush=True)
        while True:
            time.sleep(1)
    """, str(tmp_path))
    run = child.stdout.readline().strip()  # type: ignore[union-attr]
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=60)
    assert child.returncode == -signal.SIGTERM, err
    assert "preempted" in err
    assert journaled(tmp_path, run) == list(range(1000))
    listed = runs_json(tmp_path)[run]
    assert listed["status"] == "preempted"
    assert listed["trackers"][0]["acknowledged"] == 1000  # type: ignore[index]
    assert_released(tmp_path, run)
    with trackmux.Tracker(["null"], data_dir=tmp_path) as tracker:
        assert tracker.get_job_status(run) == JobStatus.PREEMPTED
        assert len(tracker.get_history(run)) == 1000


def test_sigterm_in_a_tight_logging_loop_loses_nothing(tmp_path: Path) -> None:
    child = start("""
        import sys, trackmux
        tracker = trackmux.Tracker(["null"], data_dir=sys.argv[1])
        run = tracker.submit_job(name="tight")
        print(run, flush=True)
        step = 0
        while True:
            tracker.log_metrics(run, {"loss": 1.0 / (step + 1)}, step=step)
            step += 1
            if step % 20000 == 0:
                print(step, flush=True)
    """, str(tmp_path))
    run = child.stdout.readline().strip()  # type: ignore[union-attr]
    reported = int(child.stdout.readline())  # type: ignore[union-attr]
    child.send_signal(signal.SIGTERM)
    out, err = child.communicate(timeout=60)
    assert child.returncode == -signal.SIGTERM, err
    last = max([reported, *(int(line) for line in out.split())])
    seqs = journaled(tmp_path, run)
    assert seqs == list(range(len(seqs)))  # gap-free, each once
    assert len(seqs) >= last  # every call that returned before the signal is journaled
    assert runs_json(tmp_path)[run]["status"] == "preempted"
    assert_released(tmp_path, run)


@pytest.fixture
def wandb() -> Iterator[FakeWandB]:
    fake = FakeWandB()
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


def wandb_env(fake: FakeWandB) -> dict[str, str]:
    import os

    return {**os.environ, "WANDB_API_KEY": fake.api_key, "WANDB_BASE_URL": fake.url,
            "WANDB_ENTITY": fake.entity}


WANDB_CHILD = """
    import sys, time, trackmux
    import trackmux._lifecycle
    trackmux._lifecycle.PREEMPT_TIMEOUT = float(sys.argv[2])
    tracker = trackmux.Tracker(["wandb", "null"], data_dir=sys.argv[1])
    run = tracker.submit_job(project_name="preempt")
    for step in range(300):
        tracker.log_metrics(run, {"loss": 1.0 / (step + 1)}, step=step)
    tracker.flush(timeout=30)
    print(run, flush=True)
    while True:
        time.sleep(1)
"""


def test_sigterm_marks_the_wandb_run_preempted(tmp_path: Path, wandb: FakeWandB) -> None:
    child = start(WANDB_CHILD, str(tmp_path), "30", env=wandb_env(wandb))
    run = child.stdout.readline().strip()  # type: ignore[union-attr]
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=60)
    assert child.returncode == -signal.SIGTERM, err
    remote = wandb.run(wandb.entity, "preempt", run)
    assert remote.state == "preempted"
    assert len(wandb.history(wandb.entity, "preempt", run)) == 300
    listed = runs_json(tmp_path)[run]
    assert listed["status"] == "preempted"
    assert {t["name"]: t["finished"] for t in listed["trackers"]} == {  # type: ignore[union-attr]
        "wandb": True, "null": True}


def test_a_second_sigterm_ends_the_process_at_once(tmp_path: Path, wandb: FakeWandB) -> None:
    child = start(WANDB_CHILD, str(tmp_path), "600", env=wandb_env(wandb))
    run = child.stdout.readline().strip()  # type: ignore[union-attr]
    wandb.outage(True)  # the first SIGTERM's delivery to W&B would wait 10 minutes
    child.send_signal(signal.SIGTERM)
    for line in child.stderr:  # type: ignore[union-attr]
        if "SIGTERM" in line:
            break
    child.send_signal(signal.SIGTERM)
    child.communicate(timeout=60)
    assert child.returncode == -signal.SIGTERM
    wandb.outage(False)
    assert runs_json(tmp_path)[run]["status"] == "preempted"  # journaled before delivering
    report = trackmux.sync([run], tracker="wandb", data_dir=tmp_path, timeout=30,
                           credentials={"api_key": wandb.api_key},
                           settings={"wandb": {"base_url": wandb.url, "entity": wandb.entity}})
    assert report.ok, report
    assert wandb.run(wandb.entity, "preempt", run).state == "preempted"


BEFORE = """
        stop = []
        signal.signal(signal.SIGTERM, lambda signum, frame: stop.append(signum))
        with trackmux.Tracker(["null"], data_dir=sys.argv[1]) as tracker:
            run = tracker.submit_job(name="chained")
"""
AFTER = """
        stop = []
        with trackmux.Tracker(["null"], data_dir=sys.argv[1]) as tracker:
            run = tracker.submit_job(name="chained")
            found = signal.getsignal(signal.SIGTERM)  # composed, as Lightning's Trainer does
            signal.signal(signal.SIGTERM, lambda s, f: (stop.append(s), found(s, f)))
"""
MODULE_API = """
        stop = []
        signal.signal(signal.SIGTERM, lambda signum, frame: stop.append(signum))
        current = trackmux.init(trackers=["null"], dir=sys.argv[1], name="chained")
        tracker, run = current.tracker, current.id
        if True:
"""


@pytest.mark.parametrize("installed", [BEFORE, AFTER, MODULE_API],
                         ids=["before", "after-composing", "module-api-finish-at-exit"])
def test_another_sigterm_handler_decides_how_the_process_stops(
        tmp_path: Path, installed: str) -> None:
    child = start("""
        import signal, sys, time, trackmux
""" + textwrap.indent(textwrap.dedent(installed), " " * 8) + """
            print(run, flush=True)
            step = 0
            while not stop:
                tracker.log_metrics(run, {"loss": 1.0}, step=step)
                step += 1
                time.sleep(0.001)
            tracker.log_metrics(run, {"checkpoint": 1.0}, step=step)  # still accepted
        print(step + 1, flush=True)
        sys.exit(3)
    """, str(tmp_path))
    run = child.stdout.readline().strip()  # type: ignore[union-attr]
    child.send_signal(signal.SIGTERM)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 3, err  # the user's handler decided how the process ends
    count = int(out.split()[-1])
    assert journaled(tmp_path, run) == list(range(count))
    assert runs_json(tmp_path)[run]["status"] == "preempted"
    assert_released(tmp_path, run)


def test_an_ignored_sigterm_stays_ignored_and_no_handler_comes_from_a_thread(
        tmp_path: Path) -> None:
    child = start("""
        import os, signal, sys, threading, trackmux
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        with trackmux.Tracker(["null"], data_dir=sys.argv[1]) as tracker:
            run = tracker.submit_job(name="ignored")
            os.kill(os.getpid(), signal.SIGTERM)  # ignored: the job goes on
            tracker.log_metrics(run, {"loss": 1.0})
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

        def in_a_thread():  # signal handlers can only be installed from the main thread
            with trackmux.Tracker(["null"], data_dir=sys.argv[1]) as other:
                other.log_metrics(other.submit_job(name="thread"), {"loss": 2.0})

        thread = threading.Thread(target=in_a_thread)
        thread.start()
        thread.join()
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
        print(run, flush=True)
    """, str(tmp_path))
    _, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    statuses = sorted(run["status"] for run in runs_json(tmp_path).values())
    assert statuses == ["finished", "finished"]
