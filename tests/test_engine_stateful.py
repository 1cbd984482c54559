"""A stateful property test of the delivery engine: nothing is lost, nothing stored twice.

Hypothesis drives an engine (virtual clock, ``blocking="inline"``) delivering to an
in-memory tracker registered on a fresh plugin manager, through random sequences of:
logging, flushing, letting virtual time pass, injected retryable failures (before the
tracker stored a batch, or after: a lost acknowledgement), process restarts (the engine is
closed without finishing; a new one resumes the run with ``submit(run_id=...)``),
disconnects, ``trackmux.sync`` and finishing runs; and the process's life-cycle events:
SIGTERM (every open run ends ``PREEMPTED`` with a bounded delivery, as the handler of
``trackmux._lifecycle`` does, then the process is gone), a restart while the backend is
down (the engine starts unconnected and connects in the background), and the tracker
refusing one run for good (that run stops on the tracker, the others go on);
failed journal writes (the next commits raise ENOSPC, as a full disk does), a second
writer (another engine, a sync, a bare ``RunJournal.open`` of a live run: each refused),
and a resume on a fresh journal (the journal is gone, as on a new node; the open runs are
resumed by id and numbered from 0 again).

To add an event: a ``@rule`` that acts, plus whatever it needs in ``_heal`` (the state
every closing rule starts from) or the invariants.

Invariants:

* the tracker only ever stores the next record of a run or a resend identical to what it
  holds (no gap, no seq reused for other values: nothing lost on the way, nothing twice);
* what the tracker holds is a prefix of what was logged, and all of it after a flush,
  a disconnect, a sync or a finish;
* what was accepted is journaled: at the end a fresh ``trackmux.sync`` (no faults)
  delivers every run completely.
"""

from __future__ import annotations

import asyncio
import errno
import random
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import pluggy
import trackmux
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from trackmux import JobStatus, TrainingConfig, UnknownJobError
from trackmux._engine import Engine
from trackmux._journal import RunJournal, RunLockedError
from trackmux._plugins import get_plugin_manager, tracker_caller
from trackmux._retry import Backoff
from trackmux.testing import FaultInjector, VirtualTimeLoop
from trackmux_spec import (
    ConnectContext,
    MetricRecord,
    PermanentError,
    ResumePoint,
    TrackerInfo,
    hookimpl,
)

NAME = "memory"


class MemoryTracker:
    """A tracker keeping rows in memory by seq; it notes every protocol violation."""

    def __init__(self) -> None:
        self.rows: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        self.status: dict[str, JobStatus] = {}
        self.violations: list[str] = []
        self.resent = 0
        self.down = 0  # connection attempts still to refuse (the backend is down)
        self.refused: set[str] = set()  # runs refused for good (PermanentError)

    @hookimpl
    def tracker_info(self) -> TrackerInfo:
        return TrackerInfo(max_batch_records=37, min_batch_interval=1.0)

    @hookimpl
    def connect(self, credentials: Any, context: ConnectContext) -> object:
        if self.down > 0:
            self.down -= 1
            raise ConnectionError("the backend is down")
        return self

    @hookimpl
    def disconnect(self, session: object) -> None:
        return None

    @hookimpl
    def submit_job(self, session: object, run_id: str, config: TrainingConfig) -> str:
        self.rows.setdefault(run_id, [])
        self.status.setdefault(run_id, JobStatus.RUNNING)
        return run_id

    @hookimpl
    def resume_point(self, session: object, job_id: str) -> ResumePoint:
        rows = self.rows.get(job_id, [])
        return ResumePoint(next_seq=len(rows), last_step=rows[-1][0] if rows else None)

    @hookimpl
    def log_metrics(self, session: object, job_id: str, records: Sequence[MetricRecord]) -> None:
        if job_id in self.refused:
            raise PermanentError(f"run {job_id} refused")
        stored = self.rows.get(job_id)
        if stored is None:
            self.violations.append(f"log_metrics for unknown job {job_id}")
            return
        for record in records:
            row = (record.step, dict(record.values))
            if record.seq < len(stored):
                self.resent += 1
                if stored[record.seq] != row:
                    self.violations.append(
                        f"{job_id}: seq {record.seq} resent as {row}, stored {stored[record.seq]}")
            elif record.seq == len(stored):
                stored.append(row)
            else:
                self.violations.append(
                    f"{job_id}: got seq {record.seq} while holding {len(stored)} (a gap)")

    @hookimpl
    def finish_job(self, session: object, job_id: str, status: JobStatus) -> None:
        self.status[job_id] = status

    @hookimpl
    def get_job_status(self, session: object, job_id: str) -> JobStatus:
        if job_id not in self.status:
            raise UnknownJobError(job_id)
        return self.status[job_id]

    @hookimpl
    def get_run_url(self, session: object, job_id: str) -> str:
        return f"memory://{job_id}"

    @hookimpl
    def get_history(self, session: object, job_id: str) -> list[dict[str, Any]]:
        return [{**values, "_step": step} for step, values in self.rows.get(job_id, [])]


class Faults:
    """The plan of a FaultInjector: fail the next ``count`` delivery calls in ``mode``."""

    def __init__(self) -> None:
        self.count = 0
        self.mode = "before"

    def __call__(self, hook: str, records: Any) -> str | None:
        if self.count <= 0 or hook == "submit_job":
            return None
        self.count -= 1
        return self.mode


class JournalFaults:
    """Make the next ``count`` journal commits fail as a full disk does."""

    def __init__(self) -> None:
        self.count = 0
        self.real_append = RunJournal.append

    def install(self) -> None:
        faults = self

        def append(journal: RunJournal, *args: Any, **kwargs: Any) -> None:
            if faults.count > 0:
                faults.count -= 1
                raise OSError(errno.ENOSPC, "No space left on device (injected)")
            faults.real_append(journal, *args, **kwargs)

        RunJournal.append = append  # type: ignore[method-assign]

    def uninstall(self) -> None:
        RunJournal.append = self.real_append  # type: ignore[method-assign]


class EngineMachine(RuleBasedStateMachine):
    """Random sessions of one process, restarted now and then, over one data directory."""

    def __init__(self) -> None:
        super().__init__()
        self.data_dir = Path(tempfile.mkdtemp(prefix="trackmux-stateful-"))
        self.tracker = MemoryTracker()
        self.faults = Faults()
        self.pm: pluggy.PluginManager = get_plugin_manager(load_entry_points=False)
        self.pm.register(self.tracker, name=NAME)
        self.pm.register(FaultInjector(self.faults, clock=lambda: 0.0), name="faults")
        self.loop = VirtualTimeLoop()
        self.journal_faults = JournalFaults()
        self.journal_faults.install()
        self.engine: Engine | None = None
        self.logged: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        self.finished: set[str] = set()
        self.final: dict[str, JobStatus] = {}
        self.left_for_sync: set[str] = set()  # ended by SIGTERM: only sync delivers the rest
        self.counter = 0
        self._start_engine()

    # -- plumbing -------------------------------------------------------------------------

    def _run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def _start_engine(self) -> None:
        engine = Engine(self.pm, [tracker_caller(self.pm, NAME)], self.data_dir,
                        blocking="inline", batch_size=20, batch_interval=2.0,
                        backoff=Backoff(rng=random.Random(0)))
        self._run(engine.start({}, retry_unreachable=True))
        self.engine = engine
        for run_id in self.logged:  # a restarted process resumes its runs by id
            if run_id not in self.finished:
                self._run(engine.submit(TrainingConfig(), run_id))

    def _heal(self) -> None:
        """Let the disk recover and the engine journal what it holds (virtual time)."""
        assert self.engine is not None
        self.journal_faults.count = 0
        for _ in range(100):
            if self.engine.journal_error is None and not any(
                    run.buffered for run in self.engine.runs.values()):
                break
            self._run(asyncio.sleep(10.0))
        else:
            raise AssertionError(f"the journal never recovered: {self.engine.report()}")
        assert self.engine.report().dropped == 0

    def _stop_engine(self, timeout: float | None) -> trackmux.DeliveryReport:
        assert self.engine is not None
        self._heal()
        report = self._run(self.engine.close(timeout))
        self.engine = None
        return report

    def _stopped_runs(self) -> set[str]:
        """Runs the tracker refused for good in this engine's session (they wait for sync)."""
        if self.engine is None or NAME not in self.engine.workers:
            return set()
        lanes = self.engine.workers[NAME].lanes
        return {run_id for run_id, lane in lanes.items() if lane.failed is not None}

    @staticmethod
    def _stopped(report: trackmux.DeliveryReport) -> set[str]:
        return {run for status in report.trackers for run in status.failed_runs}

    def _assert_all_delivered(self, but: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        for run_id, rows in self.logged.items():
            if run_id in but or run_id in self.left_for_sync:
                continue
            assert self.tracker.rows.get(run_id, []) == rows, (
                f"{run_id}: {len(self.tracker.rows.get(run_id, []))} stored of {len(rows)}")

    def _sync(self) -> trackmux.SyncReport:
        return self._sync_runs(None)

    def _sync_runs(self, run_ids: list[str] | None) -> trackmux.SyncReport:
        faults, self.faults.count = self.faults.count, 0  # sync runs in real time: no faults
        journal_faults, self.journal_faults.count = self.journal_faults.count, 0
        self.tracker.refused.clear()  # the cause of a refusal was fixed before syncing
        self.tracker.down = 0
        try:
            report = trackmux.sync(run_ids, tracker=NAME, data_dir=self.data_dir,
                                   plugin_manager=self.pm, timeout=30)
            if report.ok and run_ids is None:
                self.left_for_sync.clear()
            return report
        finally:
            self.faults.count = faults
            self.journal_faults.count = journal_faults

    # -- rules ----------------------------------------------------------------------------

    @precondition(lambda self: len(self.logged) < 3)
    @rule()
    def new_run(self) -> None:
        assert self.engine is not None
        run_id = self._run(self.engine.submit(TrainingConfig(name="stateful"),
                                              f"run{len(self.logged)}"))  # deterministic
        self.logged[run_id] = []

    @precondition(lambda self: any(r not in self.finished for r in self.logged))
    @rule(data=st.data(), count=st.integers(min_value=1, max_value=60))
    def log(self, data: st.DataObject, count: int) -> None:
        assert self.engine is not None
        run_id = data.draw(st.sampled_from([r for r in self.logged
                                           if r not in self.finished]))
        rows = self.logged[run_id]
        for _ in range(count):
            step = len(rows)
            values = {"v": self.counter, "loss": 1.0 / (self.counter + 1)}
            self.counter += 1
            self.engine.log(run_id, values, step)
            rows.append((step, values))

    @rule(seconds=st.sampled_from([0.01, 0.06, 1.0, 2.5, 10.0, 60.0]))
    def let_time_pass(self, seconds: float) -> None:
        self._run(asyncio.sleep(seconds))

    @rule(count=st.integers(min_value=1, max_value=6), mode=st.sampled_from(["before", "after"]))
    def inject_faults(self, count: int, mode: str) -> None:
        self.faults.count, self.faults.mode = count, mode

    @rule(count=st.integers(min_value=1, max_value=4))
    def journal_write_fails(self, count: int) -> None:
        """The next ``count`` commits fail (ENOSPC): records wait in memory with their
        seqs, nothing is numbered twice or skipped, the commit is retried."""
        self.journal_faults.count = count

    @precondition(lambda self: any(r not in self.finished for r in self.logged))
    @rule(data=st.data(), how=st.sampled_from(["open", "engine", "sync"]))
    def second_writer(self, data: st.DataObject, how: str) -> None:
        """Another writer of a live run is refused, however it comes; the first goes on."""
        assert self.engine is not None
        run_id = data.draw(st.sampled_from([r for r in self.logged if r not in self.finished]))
        if how == "open":
            try:
                RunJournal.open(self.data_dir / "journal", run_id).close()
            except RunLockedError:
                pass
            else:
                raise AssertionError(f"a second RunJournal.open of live run {run_id} worked")
        elif how == "engine":
            other = Engine(self.pm, [tracker_caller(self.pm, NAME)], self.data_dir,
                           blocking="inline")
            down, self.tracker.down = self.tracker.down, 0  # the outage is the first's
            try:
                self._run(other.start({}))
            finally:
                self.tracker.down = down
            try:
                self._run(other.submit(TrainingConfig(), run_id))
            except RunLockedError:
                pass
            else:
                raise AssertionError(f"a second engine resumed live run {run_id}")
            finally:
                self._run(other.close(0))
        else:
            report = self._sync_runs([run_id])
            assert report.runs[0].state == "failed", report
            assert "being written by this process" in str(report.runs[0].error)

    @rule()
    def flush(self) -> None:
        assert self.engine is not None
        report = self._run(self.engine.flush())
        if self.journal_faults.count or self.engine.journal_error is not None:
            # the flush returned although the journal failed; it says so, loses nothing
            self._heal()
            report = self._run(self.engine.flush())
        stopped = self._stopped(report)
        assert report.delivered or stopped, str(report)
        self._assert_all_delivered(but=stopped | self.tracker.refused)

    @rule(wait=st.sampled_from([0.0, 0.5, 3.0]))
    def restart_process(self, wait: float) -> None:
        """Close without finishing (like a process ending early), then resume by run id."""
        self._stop_engine(wait)
        self._start_engine()

    @rule()
    def disconnect_and_reconnect(self) -> None:
        """Close with an unbounded wait: everything is delivered before it returns."""
        report = self._stop_engine(None)
        stopped = self._stopped(report)
        assert report.delivered or stopped, str(report)
        self._assert_all_delivered(but=stopped | self.tracker.refused)
        self._start_engine()

    @rule(attempts=st.integers(min_value=1, max_value=4))
    def restart_while_the_backend_is_down(self, attempts: int) -> None:
        """A new process whose tracker cannot connect for ``attempts`` tries: it starts
        anyway, journals, and connects in the background."""
        self._stop_engine(0)
        self.tracker.down = attempts
        self._start_engine()

    @precondition(lambda self: any(r not in self.finished for r in self.logged))
    @rule(data=st.data())
    def refuse_a_run_for_good(self, data: st.DataObject) -> None:
        run_id = data.draw(st.sampled_from([r for r in self.logged if r not in self.finished]))
        self.tracker.refused.add(run_id)

    @rule()
    def sigterm(self) -> None:
        """SIGTERM: every open run ends PREEMPTED at once (journaled), delivery is bounded,
        and the process is gone; a new one starts."""
        assert self.engine is not None
        open_runs = [r for r in self.logged if r not in self.finished]
        for run_id in open_runs:
            self._run(self.engine.finish(run_id, JobStatus.PREEMPTED, 0))
            self.finished.add(run_id)
            self.final[run_id] = JobStatus.PREEMPTED
            self.left_for_sync.add(run_id)
        self._stop_engine(5.0)
        self._start_engine()

    @precondition(lambda self: not self.tracker.refused and not self.left_for_sync)
    @rule()
    def resume_on_a_fresh_journal(self) -> None:
        """The job restarts on a fresh node: everything was delivered, the journal is gone,
        and the open runs are resumed by id from new, empty journals numbering from 0. The
        tracker must see their records after what it holds (no seq reused, no gap)."""
        report = self._stop_engine(None)
        if report.delivered and (self.data_dir / "journal").exists():
            shutil.rmtree(self.data_dir / "journal")
        self._start_engine()

    @rule()
    def sync_between_sessions(self) -> None:
        """Close at once, deliver the rest with trackmux.sync, start again."""
        self._stop_engine(0)
        report = self._sync()
        assert report.ok, report
        self._assert_all_delivered()
        self._start_engine()

    @precondition(lambda self: any(r not in self.finished for r in self.logged))
    @rule(data=st.data())
    def finish(self, data: st.DataObject) -> None:
        assert self.engine is not None
        run_id = data.draw(st.sampled_from([r for r in self.logged
                                           if r not in self.finished]))
        self._run(self.engine.finish(run_id, JobStatus.FINISHED, None))
        self.finished.add(run_id)
        self.final[run_id] = JobStatus.FINISHED
        if run_id in self._stopped_runs() | self.tracker.refused:
            return  # delivered by sync at the end
        assert self.tracker.rows[run_id] == self.logged[run_id]
        assert self.tracker.status[run_id] == JobStatus.FINISHED

    # -- invariants -----------------------------------------------------------------------

    @invariant()
    def the_tracker_saw_no_gap_and_no_changed_resend(self) -> None:
        assert self.tracker.violations == []

    @invariant()
    def what_the_tracker_holds_is_a_prefix_of_what_was_logged(self) -> None:
        for run_id, stored in self.tracker.rows.items():
            logged = self.logged.get(run_id, [])
            assert stored == logged[:len(stored)], run_id

    def teardown(self) -> None:
        try:
            if self.engine is not None:
                self._stop_engine(0)
            report = self._sync()  # what was accepted is journaled: sync delivers it all
            assert report.ok, report
            self._assert_all_delivered()
            for run_id, status in self.final.items():
                assert self.tracker.status[run_id] == status, run_id
            assert self.tracker.violations == []
        finally:
            self.journal_faults.uninstall()
            self.loop.close()
            shutil.rmtree(self.data_dir, ignore_errors=True)


EngineMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=30, deadline=None,
    suppress_health_check=[HealthCheck.too_slow])
TestEngineNeverLosesOrDuplicates = EngineMachine.TestCase
