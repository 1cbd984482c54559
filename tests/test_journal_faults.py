"""The journal under real faults: failed writes, a full disk, crash tails, a second writer,
a hung hook at disconnect, hundreds of runs in one process, a failed tracker's lag.

Each scenario runs in a real child process (a hang shows as the child's timeout, not as a
hung suite) writing real files; the parent checks what the journal and the tracker hold.
A full disk is a real 1 MiB tmpfs where one can be mounted (root), and an injected ENOSPC
everywhere. The invariant checked throughout: every record accepted is journaled and
delivered exactly once, in order (``seq`` 0, 1, 2... with no gap), or, past the memory
bound with a dead disk, counted as dropped; nothing is numbered twice.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trackmux
from memory_tracker import MemoryTracker
from trackmux._journal import RunJournal, RunLockedError
from trackmux._plugins import get_plugin_manager

TESTS = Path(__file__).parent

#: Seconds after which a child counts as hung (a hang guard, not a timed assertion).
HANG = 120

PRELUDE = textwrap.dedent("""
    import errno, json, os, pathlib, sys, threading
    import trackmux
    from trackmux._journal import RunJournal
    from trackmux._plugins import get_plugin_manager
    from memory_tracker import MemoryTracker

    data_dir = sys.argv[1]
    memory = MemoryTracker()
    pm = get_plugin_manager(load_entry_points=False)
    pm.register(memory, name="memory")

    failing = threading.Event()   # set: every journal write fails with ENOSPC
    stalled = threading.Event()   # set: every journal write blocks until it is cleared
    resume = threading.Event()
    real_append = RunJournal.append

    def append(self, *args, **kwargs):
        if stalled.is_set():
            resume.wait()
        if failing.is_set():
            raise OSError(errno.ENOSPC, "No space left on device (injected)")
        return real_append(self, *args, **kwargs)

    RunJournal.append = append

    def done(**result):
        print("RESULT " + json.dumps(result), flush=True)
""")


def child_env() -> dict[str, str]:
    """The environment of a child: this one, with the tests on its path, no tracker env."""
    path = os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, PYTHONPATH=path)
    for name in ("TRACKMUX_TRACKERS", "TRACKMUX_DIR", "WANDB_MODE"):
        env.pop(name, None)
    return env


def run_child(script: str, *args: str | os.PathLike[str], prelude: bool = True) -> dict[str, Any]:
    """Run ``script`` in a fresh interpreter; return what it passed to ``done()``."""
    source = (PRELUDE if prelude else "") + textwrap.dedent(script)
    env = child_env()
    try:
        result = subprocess.run([sys.executable, "-c", source, *map(str, args)], env=env,
                                capture_output=True, text=True, timeout=HANG)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the child hung (no exit within {HANG} s); stderr:\n{exc.stderr}")
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert result.returncode == 0 and lines, (
        f"child exited {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}")
    return dict(json.loads(lines[-1][len("RESULT "):]), stderr=result.stderr)


def journal_seqs(data_dir: Path, run_id: str) -> list[int]:
    """The seqs the run's journal holds, read through the read-only API."""
    return [record.seq for record in RunJournal.peek(data_dir / "journal", run_id).read_all()]


@pytest.fixture
def tiny_fs(mount_tmpfs: Callable[[str], Path]) -> Path:
    """A real 1 MiB tmpfs (see ``mount_tmpfs`` in conftest.py)."""
    return mount_tmpfs("1m")


# -- item 1: a failed journal write ------------------------------------------------------


def test_a_failed_journal_write_leaves_no_gap_and_nothing_hangs(tmp_path: Path) -> None:
    """ENOSPC on every commit for a while: log_metrics goes on, flush() returns within its
    timeout saying why, and once the disk takes writes every record arrives once, in order."""
    result = run_child("""
        tracker = trackmux.Tracker(["memory"], data_dir=data_dir, plugin_manager=pm)
        run = tracker.submit_job(run_id="r1")
        for step in range(100):
            tracker.log_metrics(run, {"x": step}, step=step)
        assert tracker.flush(timeout=60).delivered
        failing.set()
        for step in range(100, 2100):
            tracker.log_metrics(run, {"x": step}, step=step)   # never raises
        during = tracker.flush(timeout=1)                      # returns: no hang
        failing.clear()
        after = tracker.flush(timeout=60)
        final = tracker.finish(run, timeout=60)
        tracker.disconnect(timeout=60)
        done(during_error=during.journal_error, during_delivered=during.delivered,
             after=after.delivered, final=str(final), steps=memory.values(run, "_step"))
    """, tmp_path / "data")
    assert "No space left on device" in result["during_error"]
    assert not result["during_delivered"]
    assert result["after"], result["final"]
    assert result["steps"] == list(range(2100))  # no gap, nothing twice
    assert journal_seqs(tmp_path / "data", "r1") == list(range(2100))
    assert "cannot write its journal" in result["stderr"]
    assert "can write its journal again" in result["stderr"]


def test_a_real_full_disk_keeps_the_journal_whole_and_recovers(
        tmp_path: Path, tiny_fs: Path) -> None:
    """A 1 MiB tmpfs filled to the last byte mid-run: no torn frame, no gap; once space is
    freed every record is journaled and delivered, and the run opens again."""
    data_dir = tiny_fs / "data"
    result = run_child("""
        filler_path = sys.argv[2]
        tracker = trackmux.Tracker(["memory"], data_dir=data_dir, plugin_manager=pm)
        run = tracker.submit_job(run_id="r1")
        for step in range(100):
            tracker.log_metrics(run, {"x": step}, step=step)
        assert tracker.flush(timeout=60).delivered
        with open(filler_path, "wb", buffering=0) as filler:  # fill the disk to the end
            try:
                while True:
                    filler.write(b"\\1" * 4096)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
        for step in range(100, 5000):
            tracker.log_metrics(run, {"x": step, "a": step / 3, "b": step / 7}, step=step)
        during = tracker.flush(timeout=1)
        os.remove(filler_path)
        after = tracker.flush(timeout=60)
        final = tracker.finish(run, timeout=60)
        tracker.disconnect(timeout=60)
        done(during_error=during.journal_error, after=after.delivered, final=str(final),
             steps=memory.values(run, "_step"))
    """, data_dir, tiny_fs / "filler")
    assert result["during_error"] and "full" in result["during_error"].lower(), result
    assert result["after"], result["final"]
    assert result["steps"] == list(range(5000))
    assert journal_seqs(data_dir, "r1") == list(range(5000))
    RunJournal.open(data_dir / "journal", "r1").close()  # sync can open the run again


# -- item 2: crash tails ----------------------------------------------------------------


def _killed_writer(data_dir: Path) -> None:
    """A child journals 3,000 then 2,000 records and is SIGKILLed, leaving its WAL."""
    script = PRELUDE + textwrap.dedent("""
        tracker = trackmux.Tracker(["memory"], data_dir=data_dir, plugin_manager=pm)
        run = tracker.submit_job(run_id="r1")
        for step in range(5000):
            tracker.log_metrics(run, {"x": step}, step=step)
            if step in (2999, 4999):
                tracker.flush(timeout=60)
        print("ready", flush=True)
        threading.Event().wait()
    """)
    env = child_env()
    child = subprocess.Popen([sys.executable, "-c", script, str(data_dir)], env=env,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "ready\n"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=HANG)
        child.stdout.close()  # type: ignore[union-attr]


def _check_recovered(data_dir: Path, at_least: int) -> int:
    root = data_dir / "journal"
    journal = RunJournal.open(root, "r1")  # the crash left no lock behind
    count = journal.record_count
    journal.close()
    assert count >= at_least
    assert journal_seqs(data_dir, "r1") == list(range(count))
    report = trackmux.sync(["r1"], tracker="null", data_dir=data_dir)
    assert report.ok, report
    with trackmux.Tracker(["null"], data_dir=data_dir) as tracker:
        assert [row["x"] for row in tracker.get_history("r1")] == list(range(count))
        tracker.submit_job(run_id="r1")  # and the run goes on after its last record
        tracker.log_metrics("r1", {"x": count})
    assert journal_seqs(data_dir, "r1") == list(range(count + 1))
    return count


def test_a_zero_filled_tail_after_a_crash_is_a_tail_not_corruption(
        tmp_path: Path, isolated_env: None) -> None:
    """ext4 after a power loss: the file ends in zeros. Every committed record survives."""
    data_dir = tmp_path / "data"
    _killed_writer(data_dir)
    wal = data_dir / "journal" / "r1" / "journal.db-wal"
    assert wal.stat().st_size > 0, "the killed writer's commits are in its WAL"
    with open(wal, "ab") as handle:
        handle.write(bytes(256 * 1024))
    assert _check_recovered(data_dir, at_least=5000) == 5000


def test_a_torn_tail_after_a_crash_is_cut_off(tmp_path: Path, isolated_env: None) -> None:
    """The last write torn in half: the journal opens at the last whole commit."""
    data_dir = tmp_path / "data"
    _killed_writer(data_dir)
    wal = data_dir / "journal" / "r1" / "journal.db-wal"
    os.truncate(wal, wal.stat().st_size - 2000)  # the last page, half written
    _check_recovered(data_dir, at_least=3000)


# -- item 5: one writer per run -----------------------------------------------------------


def test_a_second_tracker_or_sync_in_the_same_process_is_refused(
        tmp_path: Path, isolated_env: None) -> None:
    data_dir = tmp_path / "data"
    first = trackmux.Tracker(["null"], data_dir=data_dir)
    run = first.submit_job(run_id="live")
    first.log_metrics(run, {"x": 0})
    second = trackmux.Tracker(["null"], data_dir=data_dir)
    try:
        with pytest.raises(RunLockedError, match=f"this process \\({os.getpid()}"):
            second.submit_job(run_id="live")
        report = trackmux.sync(["live"], tracker="null", data_dir=data_dir)
        assert report.runs[0].state == "failed"
        assert f"this process ({os.getpid()}" in (report.runs[0].error or "")
        first.log_metrics(run, {"x": 1})  # the first writer never noticed
        assert first.finish(run).delivered
        first.disconnect()
        second.submit_job(run_id="live")  # released: now it may resume
        second.log_metrics("live", {"x": 2})
    finally:
        first.disconnect()
        second.disconnect()
    assert journal_seqs(data_dir, "live") == [0, 1, 2]


def test_a_second_process_is_refused_naming_the_holder_until_it_dies(
        tmp_path: Path, isolated_env: None) -> None:
    """The lock is the kernel's: a SIGKILLed holder releases it, so a stale or reused pid
    recorded anywhere can never block the run."""
    data_dir = tmp_path / "data"
    script = PRELUDE + textwrap.dedent("""
        tracker = trackmux.Tracker(["memory"], data_dir=data_dir, plugin_manager=pm)
        run = tracker.submit_job(run_id="held")
        tracker.log_metrics(run, {"x": 0}, step=0)
        tracker.flush(timeout=60)
        print("ready", flush=True)
        threading.Event().wait()
    """)
    env = child_env()
    child = subprocess.Popen([sys.executable, "-c", script, str(data_dir), "--holder-flag"],
                             env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "ready\n"
        with pytest.raises(RunLockedError) as refused:
            RunJournal.open(data_dir / "journal", "held")
        message = str(refused.value)
        assert f"process {child.pid} on" in message and "--holder-flag" in message
        report = trackmux.sync(["held"], tracker="null", data_dir=data_dir)
        assert report.runs[0].state == "failed" and str(child.pid) in str(report.runs[0].error)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=HANG)
        child.stdout.close()  # type: ignore[union-attr]
    # what an old writer left behind names a live process (pid reuse): it does not matter
    meta_path = data_dir / "journal" / "held" / "run.json"
    meta = json.loads(meta_path.read_text())
    meta["writer"] = {"pid": os.getpid(), "host": os.uname().nodename}
    meta_path.write_text(json.dumps(meta))
    report = trackmux.sync(["held"], tracker="null", data_dir=data_dir)
    assert report.ok and report.runs[0].delivered == 1, report


def test_two_concurrent_cli_syncs_of_a_run_never_both_write_it(
        tmp_path: Path, isolated_env: None) -> None:
    """Two ``trackmux sync`` of one run at the same moment: the one that checks first but
    opens second is refused (naming the other), never both write; afterwards a sync finds
    the run up to date and the tracker holds every record once.

    The race is forced, not hoped for: sync B reads the run's state, then waits while sync A
    opens the run and starts delivering; only then does B go on to open it."""
    data_dir = tmp_path / "data"
    pm = get_plugin_manager(load_entry_points=False)
    pm.register(MemoryTracker(), name="memory")
    with trackmux.Tracker(["memory"], data_dir=data_dir, plugin_manager=pm) as tracker:
        tracker.submit_job(run_id="both")  # null has none of it yet
        for step in range(50):
            tracker.log_metrics("both", {"x": step}, step=step)
    a_may_finish, b_may_open = tmp_path / "a-may-finish", tmp_path / "b-may-open"
    sync_a = PRELUDE + textwrap.dedent("""
        import time
        from trackmux_spec import hookimpl

        class Slow:
            @hookimpl(wrapper=True)
            def log_metrics(self, session, job_id, records):
                print("delivering", flush=True)
                while not os.path.exists(sys.argv[2]):
                    time.sleep(0.01)
                return (yield)

        sync_pm = get_plugin_manager()
        sync_pm.register(Slow(), name="slow")
        report = trackmux.sync(["both"], tracker="null", data_dir=data_dir,
                               plugin_manager=sync_pm, timeout=60)
        done(ok=report.ok, delivered=report.runs[0].delivered)
    """)
    sync_b = PRELUDE + textwrap.dedent("""
        import time
        from trackmux._cli import main

        opening = threading.local()
        real_open, real_read_meta = RunJournal.open.__func__, RunJournal.read_meta

        def open_(cls, *args, **kwargs):
            opening.active = True
            try:
                return real_open(cls, *args, **kwargs)
            finally:
                opening.active = False

        def read_meta(root, run_id):
            meta = real_read_meta(root, run_id)
            if getattr(opening, "active", False):   # between reading the state and opening
                print("checked", flush=True)
                while not os.path.exists(sys.argv[2]):
                    time.sleep(0.01)
            return meta

        RunJournal.open = classmethod(open_)
        RunJournal.read_meta = staticmethod(read_meta)
        try:
            main(["--data-dir", data_dir, "sync", "both", "--tracker", "null"])
        except SystemExit as exc:
            print(f"exit {exc.code}", flush=True)
    """)
    b = subprocess.Popen([sys.executable, "-c", sync_b, str(data_dir), str(b_may_open)],
                         env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
    a: subprocess.Popen[str] | None = None
    try:
        assert b.stdout is not None
        assert b.stdout.readline() == "checked\n"
        a = subprocess.Popen([sys.executable, "-c", sync_a, str(data_dir), str(a_may_finish)],
                             env=child_env(), stdout=subprocess.PIPE, text=True)
        assert a.stdout is not None
        assert a.stdout.readline() == "delivering\n"
        b_may_open.touch()
        b_out, _ = b.communicate(timeout=HANG)
        a_may_finish.touch()
        a_out, _ = a.communicate(timeout=HANG)
    finally:
        for child in (a, b):
            if child is not None and child.poll() is None:
                child.kill()
                child.wait()
    assert a is not None and f"process {a.pid}" in b_out, b_out
    assert "exit 0" not in b_out, b_out
    assert json.loads(a_out.split("RESULT ", 1)[1])["ok"], a_out
    again = trackmux.sync(["both"], tracker="null", data_dir=data_dir)
    assert again.ok and again.runs[0].delivered == 0, again
    with trackmux.Tracker(["null"], data_dir=data_dir) as tracker:
        assert [row["x"] for row in tracker.get_history("both")] == list(range(50))


# -- item 6: disconnect(timeout) is a bound -----------------------------------------------


def test_disconnect_returns_within_its_bound_while_a_blocking_hook_hangs(tmp_path: Path) -> None:
    """A tracker's blocking ``log_metrics`` never returns: ``disconnect(timeout=1)`` still
    returns (its ``disconnect`` hook, queued behind the stuck call, is abandoned), and so
    does the interpreter's exit. Each record stays journaled for ``trackmux sync``."""
    result = run_child("""
        memory.gate.clear()          # every delivery blocks forever
        tracker = trackmux.Tracker(["memory"], data_dir=data_dir, plugin_manager=pm)
        run = tracker.submit_job(run_id="stuck")
        for step in range(10):
            tracker.log_metrics(run, {"x": step}, step=step)
        flushed = tracker.flush(timeout=0.5)
        report = tracker.disconnect(timeout=1)
        done(flushed=flushed.delivered, pending=report.trackers[0].pending)
    """, tmp_path / "data")
    assert result["flushed"] is False
    assert result["pending"] == 10
    assert "did not disconnect within" in result["stderr"]
    assert journal_seqs(tmp_path / "data", "stuck") == list(range(10))


# -- item 7: finished runs release their files --------------------------------------------


def test_a_sweep_of_hundreds_of_runs_never_runs_out_of_file_descriptors(tmp_path: Path) -> None:
    """300 runs one after another in one process with 64 descriptors allowed: every run is
    journaled and delivered; a finished run holds no file open."""
    result = run_child("""
        import resource
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
        pm = get_plugin_manager()  # the installed trackers (null), and the memory tracker
        pm.register(memory, name="memory")
        tracker = trackmux.Tracker(["memory", "null"], data_dir=data_dir, plugin_manager=pm)
        bad = []
        for index in range(300):
            run = tracker.submit_job(run_id=f"sweep{index}")
            for step in range(5):
                tracker.log_metrics(run, {"x": step}, step=step)
            report = tracker.finish(run, timeout=60)
            if not report.delivered:
                bad.append(str(report))
        tracker.disconnect(timeout=60)
        done(bad=bad[:3], stored=sum(len(memory.values(f"sweep{i}", "x")) for i in range(300)))
    """, tmp_path / "data")
    assert result["bad"] == []
    assert result["stored"] == 300 * 5
    assert "Too many open files" not in result["stderr"]


def test_a_forked_child_leaves_the_parents_lock_and_journal_alone(tmp_path: Path) -> None:
    """A fork (a DataLoader worker) that exits normally neither releases the parent's lock
    nor touches its journal: a second writer is still refused, and the parent goes on."""
    result = run_child("""
        tracker = trackmux.Tracker(["memory"], data_dir=data_dir, plugin_manager=pm)
        run = tracker.submit_job(run_id="forked")
        tracker.log_metrics(run, {"x": 0}, step=0)
        tracker.flush(timeout=60)
        pid = os.fork()
        if pid == 0:
            sys.exit(0)  # a normal exit: atexit handlers, finalizers, all of it
        os.waitpid(pid, 0)
        try:
            RunJournal.open(pathlib.Path(data_dir) / "journal", run)
        except RuntimeError as exc:
            refused = str(exc)
        else:
            refused = None
        tracker.log_metrics(run, {"x": 1}, step=1)
        report = tracker.finish(run, timeout=60)
        tracker.disconnect(timeout=60)
        done(refused=refused, delivered=report.delivered, steps=memory.values(run, "_step"),
             pid=os.getpid())
    """, tmp_path / "data")
    assert result["refused"] and f"this process ({result['pid']}" in result["refused"]
    assert result["delivered"] and result["steps"] == [0, 1]
    assert journal_seqs(tmp_path / "data", "forked") == [0, 1]


# -- item 10: bounded memory, back-pressure ------------------------------------------------


def test_bookkeeping_stays_bounded_behind_a_tracker_that_never_catches_up(
        tmp_path: Path, isolated_env: None) -> None:
    """A backend down for the whole run: its cursor never moves, yet the engine's per-run
    bookkeeping (commit-time marks) stays bounded however many commits the run makes."""
    from trackmux_spec import RetryableError

    pm = get_plugin_manager(load_entry_points=False)
    alive, down = MemoryTracker(), MemoryTracker()
    down.fail_with = RetryableError("backend down")
    pm.register(alive, name="alive")
    pm.register(down, name="down")
    tracker = trackmux.Tracker(["alive", "down"], data_dir=tmp_path / "data", plugin_manager=pm)
    try:
        run = tracker.submit_job(run_id="long")
        engine = tracker._engine
        for commit in range(1000):
            tracker.log_metrics(run, {"x": commit}, step=commit)
            tracker._wait(engine.commit_now())  # one commit each: a day of 50 ms commits
        marks = len(engine.runs[run].commit_seqs)
        status = {s.name: s for s in tracker.status().trackers}
    finally:
        tracker.disconnect(timeout=0.5)
    assert marks <= 257, f"{marks} commit marks kept for one run"
    assert status["down"].pending == 1000 and status["down"].behind_seconds >= 0
    assert journal_seqs(tmp_path / "data", "long") == list(range(1000))


@pytest.mark.parametrize("disk", ["full", "stalled"])
def test_log_metrics_never_raises_or_hangs_when_the_journal_cannot_keep_up(
        tmp_path: Path, disk: str) -> None:
    """The journal's disk is full (ENOSPC) or stalled (a write that hangs) while the loop
    logs far more than memory may hold: every call returns, nothing raises, memory stays
    bounded (the excess is dropped and counted); once the disk is back, everything kept is
    journaled and delivered, gap-free."""
    result = run_child("""
        mode = sys.argv[2]
        tracker = trackmux.Tracker(["memory"], data_dir=data_dir, plugin_manager=pm)
        run = tracker.submit_job(run_id="pressure")
        engine = tracker._engine
        engine.max_buffer, engine.max_block = 1000, 0.2
        (failing if mode == "full" else stalled).set()
        peak = 0
        for step in range(6000):
            tracker.log_metrics(run, {"x": step}, step=step)   # never raises, never hangs
            peak = max(peak, engine.runs[run].buffered)
        during = tracker.status()
        failing.clear(); stalled.clear(); resume.set()
        after = tracker.flush(timeout=60)
        final = tracker.finish(run, timeout=60)
        tracker.disconnect(timeout=60)
        done(peak=peak, dropped=after.dropped, delivered=after.delivered, final=str(final),
             during_dropped=during.dropped, steps=memory.values(run, "_step"))
    """, tmp_path / "data", disk)
    kept = journal_seqs(tmp_path / "data", "pressure")
    assert result["peak"] <= 2 * 1000  # the buffer, plus one batch put back after a failure
    assert result["dropped"] > 0 and result["during_dropped"] > 0
    assert len(kept) == 6000 - result["dropped"]
    assert kept == list(range(len(kept)))  # dropped records were never numbered: no gap
    assert len(result["steps"]) == len(kept)  # and the tracker got every kept one, once
    assert "records dropped so far" in result["stderr"]


# -- every wait has a deadline -------------------------------------------------------------


def test_every_public_wait_has_a_deadline_when_a_tracker_hangs(tmp_path: Path) -> None:
    """Deliveries and a query hook hang forever: ``flush()``/``finish()`` without a timeout
    return after ``close_timeout``, a query raises ``TimeoutError`` after the call deadline
    (sync and async APIs), ``disconnect()`` returns, and the process exits."""
    result = run_child("""
        import asyncio
        import trackmux._api as api
        from trackmux_spec import hookimpl

        api.DEFAULT_CALL_TIMEOUT = 0.5

        class HangingQueries:
            @hookimpl(wrapper=True)
            def get_job_status(self, session, job_id):
                threading.Event().wait()
                return (yield)

        pm.register(HangingQueries(), name="hang")
        memory.gate.clear()   # every delivery blocks forever too
        tracker = trackmux.Tracker(["memory"], data_dir=data_dir, plugin_manager=pm,
                                   close_timeout=1)
        run = tracker.submit_job(run_id="sync-api")
        tracker.log_metrics(run, {"x": 0}, step=0)
        flushed = tracker.flush()
        try:
            tracker.get_job_status(run)
        except TimeoutError as exc:
            sync_error = str(exc)
        finished = tracker.finish(run)
        tracker.disconnect()

        async def main():
            async with trackmux.AsyncTracker(["memory"], data_dir=data_dir + "-async",
                                             plugin_manager=pm, close_timeout=1) as tracker:
                run = await tracker.submit_job(run_id="async-api")
                await tracker.log_metrics(run, {"x": 0}, step=0)
                flushed = await tracker.flush()
                try:
                    await tracker.get_job_status(run)
                except TimeoutError as exc:
                    return flushed.delivered, str(exc)

        async_flushed, async_error = asyncio.run(main())
        done(flushed=flushed.delivered, finished=finished.delivered, sync_error=sync_error,
             async_flushed=async_flushed, async_error=async_error)
    """, tmp_path / "data")
    assert result["flushed"] is False and result["finished"] is False
    assert result["async_flushed"] is False
    assert "no answer within" in result["sync_error"]
    assert "no answer within" in result["async_error"]
