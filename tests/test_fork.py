"""Fork: a child of a process with an open Tracker never touches its parent's runs.

Real forks, in a fresh interpreter per test (so the engine threads that exist at the fork
are trackmux's own): a bare ``os.fork()`` whose child leaves the ``with`` block and exits
normally (atexit runs), and ``multiprocessing`` fork workers (a Pool, as DataLoader-style
workers, and a Process). In the child, ``log_metrics`` and ``flush()`` raise
``TrackerClosedError`` naming what to do instead; exit never hangs; a new ``Tracker`` in the
child works. The parent's journal holds exactly the parent's records, each once.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import trackmux
from trackmux import JobStatus
from trackmux._journal import RunJournal

pytestmark = pytest.mark.usefixtures("isolated_env")


def run_script(script: str, data_dir: Path) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(script), str(data_dir)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def assert_parent_run_intact(data_dir: Path, run: str, count: int) -> None:
    seqs = [r.seq for r in RunJournal.peek(data_dir / "journal", run).read_all()]
    assert seqs == list(range(count))
    with trackmux.Tracker(["null"], data_dir=data_dir) as tracker:
        rows = tracker.get_history(run)
        assert tracker.get_job_status(run) == JobStatus.FINISHED
    assert [row["_step"] for row in rows] == list(range(count))
    assert all(row["loss"] == 1.0 / (row["_step"] + 1) for row in rows)


def test_a_bare_fork_child_cannot_use_the_parents_tracker_and_exits(tmp_path: Path) -> None:
    result = run_script("""
        import json, os, sys, trackmux
        data_dir = sys.argv[1]
        with trackmux.Tracker(["null"], data_dir=data_dir) as tracker:
            run = tracker.submit_job(name="parent")
            for step in range(500):
                tracker.log_metrics(run, {"loss": 1.0 / (step + 1)}, step=step)
            read, write = os.pipe()
            pid = os.fork()
            if pid == 0:  # the child: leaves the with block and exits normally (atexit runs)
                os.close(read)
                seen = {}
                for name, call in (("log", lambda: tracker.log_metrics(run, {"loss": 0.0})),
                                   ("flush", tracker.flush), ("submit", tracker.submit_job)):
                    try:
                        call()
                        seen[name] = "accepted"
                    except trackmux.TrackerClosedError as exc:
                        seen[name] = str(exc)
                with trackmux.Tracker(["null"], data_dir=data_dir) as own:
                    mine = own.submit_job(name="child")
                    own.log_metrics(mine, {"loss": 1.0})
                seen["own"] = mine
                os.write(write, json.dumps(seen).encode())
                os.close(write)
                sys.exit(0)
            os.close(write)
            with os.fdopen(read) as pipe:
                seen = json.loads(pipe.read())
            _, status = os.waitpid(pid, 0)
            for step in range(500, 1000):
                tracker.log_metrics(run, {"loss": 1.0 / (step + 1)}, step=step)
        print(json.dumps({"run": run, "child": seen, "status": status}))
    """, tmp_path)
    assert result["status"] == 0  # the child exited, normally, through atexit
    child = result["child"]
    assert isinstance(child, dict)
    for name in ("log", "flush", "submit"):
        assert "forked child" in child[name], child
        assert "create a new trackmux.Tracker() in the child" in child[name]
    assert_parent_run_intact(tmp_path, str(result["run"]), 1000)
    with trackmux.Tracker(["null"], data_dir=tmp_path) as tracker:
        assert [row["loss"] for row in tracker.get_history(child["own"])] == [1.0]


def test_multiprocessing_fork_workers_neither_hang_nor_write_the_parents_run(
        tmp_path: Path) -> None:
    result = run_script("""
        import json, multiprocessing, sys, trackmux

        tracker = trackmux.Tracker(["null"], data_dir=sys.argv[1])
        run = tracker.submit_job(name="parent")

        def work(item):  # a DataLoader-style worker: computes, then tries to log
            try:
                tracker.log_metrics(run, {"loss": 0.0}, step=item)
                logged = "accepted"
            except trackmux.TrackerClosedError as exc:
                logged = type(exc).__name__
            try:
                tracker.flush()
                flushed = "returned"
            except trackmux.TrackerClosedError as exc:
                flushed = type(exc).__name__
            return item * item, logged, flushed

        def process_target():
            tracker.flush()  # raises: the Process ends with exit code 1, without hanging

        ctx = multiprocessing.get_context("fork")
        step, outcomes = 0, set()
        with ctx.Pool(2) as pool:
            for square, logged, flushed in pool.imap(work, range(200)):
                assert square == step * step
                tracker.log_metrics(run, {"loss": 1.0 / (step + 1)}, step=step)
                outcomes.add((logged, flushed))
                step += 1
        process = ctx.Process(target=process_target)
        process.start()
        process.join(60)
        tracker.disconnect()
        print(json.dumps({"run": run, "steps": step, "exitcode": process.exitcode,
                          "outcomes": sorted(outcomes)}))
    """, tmp_path)
    assert result["exitcode"] == 1
    assert result["outcomes"] == [["TrackerClosedError", "TrackerClosedError"]]
    assert result["steps"] == 200
    assert_parent_run_intact(tmp_path, str(result["run"]), 200)



def test_a_fork_while_another_thread_holds_the_engine_locks_never_hangs_the_child(
        tmp_path: Path) -> None:
    """Another thread is inside the hot path's critical section (it holds the engine's
    locks, as the logging thread or the committer does most of the time in a busy loop)
    when the main thread forks: the child's copies of those locks are held forever, so
    the child must not wait on them. Its calls fail at once and it exits normally."""
    result = run_script("""
        import json, os, sys, threading, trackmux
        tracker = trackmux.Tracker(["null"], data_dir=sys.argv[1])
        run = tracker.submit_job(name="busy")
        for step in range(100):
            tracker.log_metrics(run, {"loss": 1.0 / (step + 1)}, step=step)
        engine = tracker._engine
        held, release = threading.Event(), threading.Event()

        def hold():
            with engine._write_lock, engine._lock:
                held.set()
                release.wait()

        thread = threading.Thread(target=hold)
        thread.start()
        held.wait()
        pid = os.fork()
        if pid == 0:
            outcome = []
            for call in (lambda: tracker.log_metrics(run, {"loss": 0.0}), tracker.flush):
                try:
                    call()
                    outcome.append("accepted")
                except trackmux.TrackerClosedError:
                    outcome.append("refused")
            sys.exit(0 if outcome == ["refused", "refused"] else 2)
        status = os.waitpid(pid, 0)[1]
        release.set()
        thread.join()
        for step in range(100, 200):
            tracker.log_metrics(run, {"loss": 1.0 / (step + 1)}, step=step)
        tracker.disconnect()
        print(json.dumps({"run": run, "status": status}))
    """, tmp_path)
    assert result["status"] == 0
    assert_parent_run_intact(tmp_path, str(result["run"]), 200)
