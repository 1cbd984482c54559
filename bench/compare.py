"""trackmux beside the official ``wandb`` SDK and MLflow, on this machine, in one run.

One command makes the figures of bench/RESULTS.md and README.md's Performance table::

    python bench/compare.py --load 0,2 --save

(an idle run, then one beside 2 CPU-burning processes; ``--quick``, ``--skip-mlflow``,
``--skip-mlflow-server``, ``--skip-latency`` and ``--skip-sdk-online`` shorten a run while
developing; ``--out FILE``
and ``--json FILE`` keep its tables or raw figures.) It measures, each library in fresh
subprocesses:

* the total CPU per record: N ``log_metrics`` calls with 5 floats then ``flush()``, the
  process's CPU time (every thread) divided by N (``bench/total_cost.py``'s ``run``); for
  wandb offline, N ``run.log`` calls then ``run.finish()`` likewise, and the ``wandb-core``
  process's CPU over the same span (from ``/proc``);
* the cost of one ``log_metrics`` call with 5 floats (median and p99 of the mean per call
  over batches of 100 calls): ``Tracker.log_metrics`` (offline tracker),
  ``wandb`` ``run.log({...}, step=i)`` (offline), ``mlflow.log_metrics({...}, step=i)``
  synchronous and ``synchronous=False`` (MLflow's asynchronous logging), MLflow on a local
  SQLite store and on a local file store;
* the tail: every call timed on its own, p50/p99/p99.9/max and the calls over 1 and 5 ms
  (``bench/hot_path.py``'s ``bench_tail``, GC on and off; the same loop without trackmux for
  the machine's own pauses; wandb's ``run.log`` timed the same way);
* ``import trackmux``, ``trackmux --help`` and ``python -c pass`` (``bench/import_time.py``,
  median of 20 fresh processes), ``import wandb`` and ``import mlflow`` (median of 7);
* peak RSS (``ru_maxrss``) of a process that logs ``--steps`` steps, and the wall time from
  the first log until everything is flushed and the run finished (``Tracker.disconnect()``,
  ``run.finish()``, ``flush_async_logging()`` + ``end_run()``); for wandb, the user process
  (``wandb-core`` is a separate process, reported beside it); MLflow, whose calls take
  milliseconds, logs ``--slow-steps`` steps and is compared per step;
* the W&B wire: requests and bytes per 1,000 rows, trackmux's W&B plugin and the official
  SDK (online, ``WANDB_BASE_URL``) against the same ``FakeWandB`` on 127.0.0.1;
* the engine's journal throughput: rows per second from the first ``log_metrics`` until
  the journal holds them (and until a tracker that acknowledges instantly did), median of
  5; and the committer alone (encode + append);
* the delivery latency to W&B (``bench/latency.py``'s ``measure``: FakeWandB over loopback,
  20 rows/s for ``--latency-seconds``, healthy and under issue 15's fault burst), beside
* a real ``mlflow server`` (``bench/mlflow_throughput.py``'s measures): rows/s of trackmux's
  MLflow plugin, ``MlflowClient.log_batch`` and raw httpx, interleaved rounds, then
  trackmux's delivery latency to it.

``--load N`` runs N CPU-burning processes for the whole run (killed at its end, however it
ends) and says so in the report's first line, with the load average. ``bench/compare_report.py``
renders the tables and the targets' verdicts (issues 6 and 15) from the raw figures;
``--save`` keeps them in ``bench/results.json`` and rewrites the generated blocks of README.md
and bench/RESULTS.md.

``wandb`` and ``mlflow`` are never trackmux dependencies: they are installed into a virtual
environment of this benchmark's own, ``bench/.venv-compare`` (gitignored; reused while it
holds the pinned versions). The MLflow part reuses ``tests/mlflow/_mlflow_server.ensure_venv``
(pointed at that directory through ``TRACKMUX_MLFLOW_VENV``); ``wandb`` is added next to it.
trackmux's measurements run with ``sys.executable``, the others with that venv's Python.

This file is also the subprocess worker (``--worker``); the worker half imports only the
standard library at module level, so it runs in either interpreter.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import compare_report

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENV = HERE / ".venv-compare"
WANDB_VERSION = "0.31.0"

BATCH = 100  # calls per timed sample
JOURNAL_REPEATS = 5  # engine journal runs; the median is reported
#: MLflow modes, whose calls take milliseconds: their runs log --slow-steps steps (the
#: asynchronous mode on SQLite took 250 s to drain 20,000 steps).
SLOW = ("mlflow-sqlite-sync", "mlflow-file-sync", "mlflow-sqlite-async", "mlflow-file-async")
SLOW_BATCH = 5  # calls per timed sample when a call takes over 1 ms, and for MLflow's
SLOW_SAMPLES = 40  # timed samples at most for MLflow's calls
N_METRICS = 5
LATENCY_RATE = 20.0  # rows per second for the delivery-latency runs


def metrics(i: int) -> dict[str, float]:
    """The row every library logs at step ``i``: 5 floats."""
    return {
        "loss": 1.0 / (i + 1),
        "acc": 0.5 + (i % 100) / 1000.0,
        "lr": 3e-4,
        "grad_norm": 1.25 + (i % 7) / 10.0,
        "tokens": float(i * 512),
    }


#: The rows logged, built before any timing (every library gets the same dicts; none of
#: them mutates its argument): the loops time the log call, not building the dict.
ROWS = [metrics(i) for i in range(1000)]


def rss_now_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def time_calls(
    call: Any, budget: float, max_samples: int, min_samples: int = 20, slow: bool = False
) -> dict[str, Any]:
    """Per-call mean over batches of calls, until ``budget`` seconds or max_samples.

    A batch is BATCH calls, or SLOW_BATCH for calls slower than 1 ms or when ``slow``
    (MLflow's synchronous calls take milliseconds: 20 batches of 100 would take a minute;
    its asynchronous ones queue what SQLite drains at ~100 steps/s once the run ends).
    """
    step = 0
    t = time.perf_counter()
    for _ in range(10):  # warm up
        call(step)
        step += 1
    batch = BATCH if (time.perf_counter() - t) / 10 < 1e-3 and not slow else SLOW_BATCH
    samples: list[float] = []
    started = time.perf_counter()
    while len(samples) < max_samples and (
        len(samples) < min_samples or time.perf_counter() - started < budget
    ):
        t = time.perf_counter()
        for _ in range(batch):
            call(step)
            step += 1
        samples.append((time.perf_counter() - t) / batch)
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, max(0, int(len(ordered) * 0.99) - 1))]
    return {
        "median": statistics.median(ordered),
        "p99": p99,
        "samples": len(ordered),
        "calls": len(ordered) * batch,
        "batch": batch,
    }


# ------------------------------------------------------------------------------------------
# workers: one library, one measurement, in a fresh process; the result goes to --result
# ------------------------------------------------------------------------------------------


def _wandb_env(workdir: str) -> None:
    os.environ.update(
        {
            "WANDB_MODE": "offline",
            "WANDB_SILENT": "true",
            "WANDB_DIR": workdir,
            "WANDB_CONFIG_DIR": os.path.join(workdir, "config"),
            "WANDB_CACHE_DIR": os.path.join(workdir, "cache"),
            "WANDB_DATA_DIR": os.path.join(workdir, "data"),
        }
    )


def _mlflow_env(workdir: str, store: str) -> None:
    if store == "sqlite":
        uri = f"sqlite:///{workdir}/mlflow.db"
    else:
        uri = Path(workdir, "mlruns").as_uri()
    os.environ["MLFLOW_TRACKING_URI"] = uri
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"  # MLflow 3 refuses file stores without it
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")


class _Session:
    """Open a run of one library; ``log(i)``; ``close()`` flushes and finishes it."""

    def __init__(self, lib: str, workdir: str) -> None:
        self.lib = lib
        self.extra: dict[str, Any] = {}
        if lib == "trackmux":
            import trackmux

            self.tracker = trackmux.Tracker(["null"], data_dir=workdir)
            self.run = self.tracker.submit_job(name="bench")
            log, run = self.tracker.log_metrics, self.run
            self.log = lambda i: log(run, ROWS[i % 1000], i)
        elif lib == "wandb":
            _wandb_env(workdir)
            import wandb

            self.wandb = wandb
            self.run = wandb.init(project="bench", dir=workdir, mode="offline")
            log = self.run.log
            self.log = lambda i: log(ROWS[i % 1000], step=i)
        elif lib.startswith("mlflow"):
            _, store, mode = lib.split("-")  # mlflow-sqlite-sync
            _mlflow_env(workdir, store)
            import mlflow

            self.mlflow = mlflow
            mlflow.set_experiment("bench")
            self.run = mlflow.start_run()
            log = mlflow.log_metrics
            if mode == "sync":
                self.log = lambda i: log(ROWS[i % 1000], step=i)
            else:
                self.log = lambda i: log(ROWS[i % 1000], step=i, synchronous=False)
        else:
            raise ValueError(lib)

    def close(self) -> None:
        if self.lib == "trackmux":
            self.tracker.disconnect()  # finishes open runs, delivers, closes
        elif self.lib == "wandb":
            self.run.finish()
        else:
            if self.lib.endswith("async"):
                self.mlflow.flush_async_logging()
            self.mlflow.end_run()

    def after_close(self) -> None:
        if self.lib == "wandb":
            self.wandb.teardown()  # ends the wandb-core service so RUSAGE_CHILDREN counts it


def worker_hot(lib: str, budget: float, max_samples: int) -> dict[str, Any]:
    workdir = tempfile.mkdtemp(prefix="trackmux-compare-")
    try:
        session = _Session(lib, workdir)
        if lib in SLOW:  # at most 40 batches of 5: fewer queued calls to drain at the end
            result = time_calls(session.log, budget, min(max_samples, SLOW_SAMPLES), slow=True)
        else:
            result = time_calls(session.log, budget, max_samples)
        session.close()
        session.after_close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return result


def worker_run(lib: str, steps: int) -> dict[str, Any]:
    workdir = tempfile.mkdtemp(prefix="trackmux-compare-")
    try:
        session = _Session(lib, workdir)
        rss_before = rss_now_kb()
        log = session.log
        children_before = _cpu(resource.RUSAGE_CHILDREN)
        core_before = descendants_cpu()
        cpu_start = time.process_time()
        start = time.perf_counter()
        for i in range(steps):
            log(i)
        logged = time.perf_counter()
        session.close()
        finished = time.perf_counter()
        cpu = time.process_time() - cpu_start
        core_cpu = descendants_cpu() - core_before
        peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, rss_now_kb(), rss_before)
        session.after_close()
        children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        children_cpu = _cpu(resource.RUSAGE_CHILDREN) - children_before
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return {
        "steps": steps,
        "log_loop": logged - start,
        "wall": finished - start,
        "close": finished - logged,
        "cpu": cpu,
        "peak_rss_kb": peak,
        "rss_before_kb": rss_before,
        "children_peak_rss_kb": children,
        "children_cpu": children_cpu,
        "core_cpu": core_cpu,
    }


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _proc_stat(pid: str) -> tuple[int, float] | None:
    """(parent pid, CPU seconds of the process and its reaped children) from /proc."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rpartition(")")[2].split()
    except OSError:  # gone, or not Linux
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return int(fields[1]), sum(int(f) for f in fields[11:15]) / ticks


def descendants_cpu() -> float:
    """CPU seconds used so far by this process's live descendants (wandb-core, for wandb).

    Read from ``/proc`` while they run, so it can be taken before and after a span (the
    ``RUSAGE_CHILDREN`` figure only counts children once reaped, their whole life).
    """
    stats = {pid: _proc_stat(pid) for pid in os.listdir("/proc") if pid.isdigit()}
    children: dict[int, list[int]] = {}
    for pid, stat in stats.items():
        if stat is not None:
            children.setdefault(stat[0], []).append(int(pid))
    total, todo = 0.0, list(children.get(os.getpid(), []))
    while todo:
        pid = todo.pop()
        stat = stats.get(str(pid))
        total += stat[1] if stat else 0.0
        todo.extend(children.get(pid, []))
    return total


def tail_stats(laps_ns: list[int], overhead_ns: float) -> dict[str, Any]:
    """p50/p99/p99.9/max in µs and the calls over 1 and 5 ms, as ``hot_path.bench_tail``."""
    ordered = sorted(laps_ns)

    def at(q: float) -> float:
        return (ordered[min(len(ordered) - 1, int(len(ordered) * q))] - overhead_ns) / 1e3

    return {
        "calls": len(ordered),
        "p50": at(0.5),
        "p99": at(0.99),
        "p99.9": at(0.999),
        "max": (ordered[-1] - overhead_ns) / 1e3,
        "over_1ms": sum(lap > 1_000_000 for lap in ordered),
        "over_5ms": sum(lap > 5_000_000 for lap in ordered),
    }


def timer_cost_ns() -> float:
    """The median cost of one ``perf_counter_ns`` pair, subtracted from every lap."""
    clock = time.perf_counter_ns
    laps = []
    for _ in range(100_000):
        start = clock()
        laps.append(clock() - start)
    return statistics.median(laps)


#: What the tables use of ``hot_path.bench_tail``'s figures (p50...max in µs).
TAIL_FIGURES = ("p50", "p99", "p99.9", "max", "over_1ms", "over_5ms", "collections")


def worker_tail(lib: str, calls: int) -> dict[str, Any]:
    """Every call timed on its own: trackmux (GC on, off) and a floor loop, or wandb.

    trackmux's runs are ``bench/hot_path.py``'s ``bench_tail``; wandb's are the same loop
    around ``run.log`` (hot_path imports trackmux, which the wandb venv lacks).
    """
    if lib == "trackmux":
        sys.path.insert(0, str(HERE))
        import hot_path

        overhead = hot_path._timer_cost()
        out: dict[str, Any] = {}
        for key, collect in (("trackmux_gc", True), ("trackmux_nogc", False)):
            with tempfile.TemporaryDirectory() as data_dir:
                figures = hot_path.bench_tail(
                    data_dir, overhead, collect, attribute=False, calls=calls
                )
            out[key] = {name: figures[name] for name in TAIL_FIGURES} | {"calls": calls}
        out["floor"] = _floor_tail(calls, overhead * 1e9)
        return out
    overhead_ns = timer_cost_ns()
    workdir = tempfile.mkdtemp(prefix="trackmux-compare-")
    try:
        session = _Session(lib, workdir)
        log = session.log
        clock = time.perf_counter_ns
        laps = [0] * calls
        for i in range(calls):
            start = clock()
            log(i)
            laps[i] = clock() - start
        session.close()
        session.after_close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return tail_stats(laps, overhead_ns)


def _floor_tail(calls: int, overhead_ns: float) -> dict[str, Any]:
    """The tail loop around a call that appends to a list: the machine's own pauses."""
    kept: list[object] = []

    def log(run: str, values: dict[str, float], step: int) -> None:
        kept.append((step, values))
        if len(kept) > 10_000:
            kept.clear()

    clock = time.perf_counter_ns
    laps = [0] * calls
    for step in range(calls):
        start = clock()
        log("run", ROWS[step % 1000], step)
        laps[step] = clock() - start
    return tail_stats(laps, overhead_ns)


def worker_latency(seconds: float, burst_at: float) -> dict[str, Any]:
    """``bench/latency.py``'s measure: log to stored on FakeWandB, healthy and under the burst.

    Rows of 5 floats at 20 per second for ``seconds``, W&B's default intervals, no flush;
    each row's latency in seconds, summarised (p50, p99, max) per case.
    """
    sys.path.insert(0, str(HERE))
    import latency

    out: dict[str, Any] = {"seconds": seconds, "rate": LATENCY_RATE, "burst_at": burst_at}
    for case, burst in (("healthy", None), ("burst", burst_at)):
        try:
            values = latency.measure(seconds, LATENCY_RATE, burst)
        except AssertionError as exc:  # rows not all stored, or faults left unconsumed
            out[case] = {"error": str(exc) or "latency.measure's check failed"}
            continue
        out[case] = {
            "rows": len(values),
            "p50": latency.quantile(values, 0.5),
            "p99": latency.quantile(values, 0.99),
            "max": max(values),
        }
    return out


#: ``bench/mlflow_throughput.py``'s clients, in the order each round runs them.
MLFLOW_CLIENTS = ("trackmux", "mlflow-client", "raw-1", "raw-2")


def worker_mlflow_server(rows: int, rounds: int, seconds: float) -> dict[str, Any]:
    """``bench/mlflow_throughput.py``'s measures against one real ``mlflow server``.

    Rows/s of trackmux's MLflow plugin, of ``MlflowClient.log_batch`` and of raw httpx
    (one and two requests in flight), interleaved for ``rounds`` rounds; then trackmux's
    delivery latency to it (20 rows/s for ``seconds``, default settings, no flush).
    """
    sys.path.insert(0, str(HERE))
    os.environ["TRACKMUX_MLFLOW_VENV"] = str(VENV)  # the same MLflow as the rest of the run
    import mlflow_throughput as bench

    clients = {
        "trackmux": bench.measure_trackmux,
        "mlflow-client": bench.measure_mlflow_client,
        "raw-1": lambda server, rows: bench.measure_raw(server, rows, 1),
        "raw-2": lambda server, rows: bench.measure_raw(server, rows, 2),
    }
    rates: dict[str, list[float]] = {name: [] for name in MLFLOW_CLIENTS}
    cpu: dict[str, list[float]] = {name: [] for name in MLFLOW_CLIENTS}
    with tempfile.TemporaryDirectory() as workdir:
        server = bench.start_server(Path(workdir), bench.ensure_venv(log=lambda _: None))
        try:
            for _ in range(rounds):
                for name in MLFLOW_CLIENTS:
                    figures = clients[name](server, rows)
                    rates[name].append(rows / figures["elapsed"])
                    cpu[name].append(figures["server_cpu"] / rows)
            values = bench.measure_latency(server, seconds, LATENCY_RATE)
        finally:
            server.stop()
    return {
        "rows": rows,
        "rounds": rounds,
        "rows_per_s": rates,
        "server_cpu_per_row": cpu,
        "latency": {
            "seconds": seconds,
            "rate": LATENCY_RATE,
            "rows": len(values),
            "p50": bench.quantile(values, 0.5),
            "p99": bench.quantile(values, 0.99),
            "max": max(values),
        },
    }


def worker_total(records: int, repeats: int) -> dict[str, Any]:
    """``bench/total_cost.py``'s measure, ``repeats`` times: process and caller CPU seconds."""
    sys.path.insert(0, str(HERE))
    import total_cost

    results = [total_cost.run(records) for _ in range(repeats)]
    return {
        "records": records,
        "cpu": [cpu for cpu, _ in results],
        "own": [own for _, own in results],
    }


def worker_journal(rows: int) -> dict[str, Any]:
    """Rows/s into the journal: the engine end to end (no-op tracker), and the committer."""
    import trackmux
    from trackmux._journal import RunJournal
    from trackmux._plugins import get_plugin_manager
    from trackmux_spec import JobStatus, TrackerInfo, hookimpl

    class Noop:
        """A tracker that acknowledges every batch at once."""

        @hookimpl
        def tracker_info(self) -> TrackerInfo:
            return TrackerInfo(max_batch_records=10_000)

        @hookimpl
        def connect(self, credentials: Any, context: Any) -> object:
            return self

        @hookimpl
        def disconnect(self, session: object) -> None:
            return None

        @hookimpl
        def submit_job(self, session: object, run_id: str, config: Any) -> str:
            return run_id

        @hookimpl
        def log_metrics(self, session: object, job_id: str, records: Any) -> None:
            return None

        @hookimpl
        def finish_job(self, session: object, job_id: str, status: JobStatus) -> None:
            return None

    out: dict[str, Any] = {"rows": rows, "repeats": JOURNAL_REPEATS}
    trials: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as workdir:
        pm = get_plugin_manager(load_entry_points=False)
        pm.register(Noop(), name="noop")
        for trial in range(JOURNAL_REPEATS):
            data_dir = Path(workdir, f"trial{trial}")
            with trackmux.Tracker(["noop"], data_dir=data_dir, plugin_manager=pm) as tracker:
                run = tracker.submit_job(name="journal")
                log = tracker.log_metrics
                cpu_start = time.process_time()
                start = time.perf_counter()
                for i in range(rows):
                    log(run, ROWS[i % 1000], i)
                logged = time.perf_counter()
                tracker._wait(tracker._engine.commit_now())  # the journal holds every row
                committed = time.perf_counter()
                committed_cpu = time.process_time() - cpu_start
                report = tracker.flush()  # ... and the tracker acknowledged them
                flushed = time.perf_counter()
                cpu = time.process_time() - cpu_start
                assert report.delivered, report
            held = RunJournal.peek(data_dir / "journal", run).count()
            assert held == rows, (held, rows)
            trials.append(
                {
                    "journal_rows_per_s": rows / (committed - start),
                    "journal_rows_per_cpu_s": rows / committed_cpu,
                    "engine_rows_per_s": rows / (flushed - start),
                    "engine_rows_per_cpu_s": rows / cpu,
                    "engine_commit_s": committed - logged,
                    "engine_log_loop_s": logged - start,
                    "engine_drain_s": flushed - committed,
                }
            )
        for key in trials[0]:
            out[key] = statistics.median(t[key] for t in trials)
        out["journal_rows_per_s_all"] = [t["journal_rows_per_s"] for t in trials]

        # the committer alone: encode + append of group commits of 10,000 records
        # (the engine's buffer: step, timestamp, values flat; see RunJournal.append)
        fields = [x for i in range(rows) for x in (i, 1.7e9 + i * 1e-3, metrics(i))]
        journal = RunJournal.create(Path(workdir, "committer"), "committer", {})
        chunk = 10_000
        cpu_start = time.process_time()
        start = time.perf_counter()
        for first in range(0, rows, chunk):
            journal.append(first, fields[3 * first : 3 * (first + chunk)])
        out["committer_rows_per_s"] = rows / (time.perf_counter() - start)
        out["committer_rows_per_cpu_s"] = rows / (time.process_time() - cpu_start)
        journal.close()
    return out


def wire_figures(fake: Any, requests: list[Any], rows: int) -> dict[str, Any]:
    """file_stream requests carrying rows, and every request, per 1,000 rows."""
    with_rows = [r for r in requests if r.operation == "file_stream" and r.history_lines]
    stored = sum(len(fake.history(run.entity, run.project, run.name)) for run in fake.runs())
    return {
        "rows": rows,
        "stored": stored,
        "requests_per_1k": len(with_rows) / rows * 1000,
        "bytes_per_1k": sum(r.body_bytes for r in with_rows) / rows * 1000,
        "all_requests_per_1k": len(requests) / rows * 1000,
        "all_bytes_per_1k": sum(r.body_bytes for r in requests) / rows * 1000,
        "operations": sorted({str(r.operation) for r in requests}),
    }


def worker_wire(rows: int) -> dict[str, Any]:
    """trackmux's W&B plugin against FakeWandB on 127.0.0.1 (as bench/wandb_wire.py does).

    Counts from the first log to the end of ``disconnect()`` (run finished).
    """
    import trackmux
    from trackmux_wandb.testing import FakeWandB

    fake = FakeWandB()
    url = fake.start()
    try:
        with tempfile.TemporaryDirectory() as workdir:
            tracker = trackmux.Tracker(
                ["wandb"], data_dir=workdir, settings={"wandb": {"base_url": url}}
            )
            tracker.connect({"api_key": fake.api_key})
            run = tracker.submit_job(project_name="bench")
            fake.clear_requests()
            start = time.perf_counter()
            for i in range(rows):
                tracker.log_metrics(run, ROWS[i % 1000], i)
            report = tracker.disconnect()
            elapsed = time.perf_counter() - start
            assert report.delivered, report
        figures = wire_figures(fake, fake.requests, rows)
    finally:
        fake.stop()
    assert figures["stored"] == rows, figures
    figures["wall"] = elapsed
    return figures


def worker_sdk_online(rows: int, base_url: str, api_key: str) -> dict[str, Any]:
    """The official SDK, online, pointed at FakeWandB (WANDB_BASE_URL)."""
    workdir = tempfile.mkdtemp(prefix="trackmux-compare-")
    try:
        _wandb_env(workdir)
        os.environ.update(
            {
                "WANDB_MODE": "online",
                "WANDB_BASE_URL": base_url,
                "WANDB_API_KEY": api_key,
                "WANDB_ENTITY": "bench-entity",
            }
        )
        import wandb

        run = wandb.init(
            project="bench",
            dir=workdir,
            settings=wandb.Settings(init_timeout=30, x_disable_stats=True),
        )
        marker = Path(os.environ["COMPARE_MARKER"])
        marker.write_text("logging")  # the driver counts requests from here
        start = time.perf_counter()
        for i in range(rows):
            run.log(ROWS[i % 1000], step=i)
        run.finish()
        return {"wall": time.perf_counter() - start, "run": run.id}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run_worker(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", required=True)
    parser.add_argument("--lib", default="trackmux")
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--budget", type=float, default=3.0)
    parser.add_argument("--max-samples", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--burst-at", type=float, default=5.0)
    parser.add_argument("--base-url", default="")
    parser.add_argument("--api-key", default="")
    parser.add_argument("--result", required=True)
    args = parser.parse_args(argv)
    if args.worker == "hot":
        result = worker_hot(args.lib, args.budget, args.max_samples)
    elif args.worker == "run":
        result = worker_run(args.lib, args.steps)
    elif args.worker == "latency":
        result = worker_latency(args.seconds, args.burst_at)
    elif args.worker == "mlflow-server":
        result = worker_mlflow_server(args.steps, args.repeats, args.seconds)
    elif args.worker == "total":
        result = worker_total(args.steps, args.repeats)
    elif args.worker == "tail":
        result = worker_tail(args.lib, args.steps)
    elif args.worker == "journal":
        result = worker_journal(args.steps)
    elif args.worker == "wire":
        result = worker_wire(args.steps)
    elif args.worker == "sdk-online":
        result = worker_sdk_online(args.steps, args.base_url, args.api_key)
    else:
        raise SystemExit(f"unknown worker {args.worker}")
    Path(args.result).write_text(json.dumps(result))


# ------------------------------------------------------------------------------------------
# the driver
# ------------------------------------------------------------------------------------------


_STARTED = time.monotonic()


def say(message: str) -> None:
    """A progress line on stderr, with the seconds since the driver started."""
    elapsed = time.monotonic() - _STARTED
    print(f"[compare {elapsed:4.0f} s] {message}", file=sys.stderr, flush=True)


def venv_python(quiet: bool = False) -> Path:
    """bench/.venv-compare's Python, with mlflow (tests/mlflow helper) and wandb installed."""
    os.environ["TRACKMUX_MLFLOW_VENV"] = str(VENV)
    sys.path[:0] = [str(ROOT / "tests" / "mlflow"), str(ROOT / "tests")]
    import _mlflow_server  # the MLflow tests' helper: creates the venv, installs the pin

    python = _mlflow_server.ensure_venv(log=say)
    check = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('wandb'))"],
        capture_output=True,
        text=True,
    )
    if check.returncode != 0 or check.stdout.strip() != WANDB_VERSION:
        say(f"installing wandb=={WANDB_VERSION} into {VENV}")
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", f"wandb=={WANDB_VERSION}"], check=True
        )
    return python


def worker(python: Path | str, name: str, timeout: float = 1800, **options: Any) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        result = handle.name
    command = [str(python), str(Path(__file__).resolve()), "--worker", name, "--result", result]
    for key, value in options.items():
        command += [f"--{key.replace('_', '-')}", str(value)]
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "MLFLOW_", "TRACKMUX_"))
    }
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd=tempfile.gettempdir(),
        )
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-12:])
            raise RuntimeError(f"worker {name} {options} failed ({done.returncode}):\n{tail}")
        return json.loads(Path(result).read_text())
    finally:
        os.unlink(result)


def import_time(python: Path | str, module: str, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        done = subprocess.run(
            [
                str(python),
                "-c",
                f"import time; t = time.perf_counter(); import {module}; "
                "print(time.perf_counter() - t)",
            ],
            capture_output=True,
            text=True,
            check=True,
            cwd=tempfile.gettempdir(),
            env={k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "MLFLOW_"))},
        )
        times.append(float(done.stdout.strip().splitlines()[-1]))
    return statistics.median(times)


def sdk_online_wire(python: Path, rows: int) -> dict[str, Any]:
    """Point the official SDK at FakeWandB (online); its requests and bytes, or why not.

    Requests are counted from the first ``run.log`` (the worker touches a marker file) to
    the end of ``run.finish()``; system metrics are off (``x_disable_stats``).
    """
    from trackmux_wandb.testing import FakeWandB

    fake = FakeWandB()
    url = fake.start()
    marker = Path(tempfile.mkdtemp(prefix="trackmux-compare-")) / "marker"
    os.environ["COMPARE_MARKER"] = str(marker)
    seen_at_start: list[int] = []

    def watch() -> None:
        while not marker.exists() and not stop.is_set():
            time.sleep(0.001)
        seen_at_start.append(len(fake.requests))

    stop = threading.Event()
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        try:
            result = worker(
                python, "sdk-online", timeout=600, steps=rows, base_url=url, api_key=fake.api_key
            )
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            rejected = [
                f"{r.operation or r.path} -> {r.status}"
                for r in fake.requests
                if (r.status or 599) >= 400
            ][:5]
            return {"error": str(exc).splitlines()[0][:200], "rejected": rejected}
        stop.set()
        watcher.join()
        first = seen_at_start[0] if seen_at_start else 0
        figures = wire_figures(fake, fake.requests[first:], rows)
        figures["wall"] = result["wall"]
        return figures
    finally:
        stop.set()
        fake.stop()
        del os.environ["COMPARE_MARKER"]
        shutil.rmtree(marker.parent, ignore_errors=True)


#: A CPU-burning process for ``--load``: it spins until killed, or until its parent (the
#: pid it is given: it may be gone before the burner starts) is gone, so a driver killed
#: with SIGKILL does not leave it spinning.
BURNER = (
    "import os, sys\n"
    "parent = int(sys.argv[1])\n"
    "while os.getppid() == parent:\n"
    "    for _ in range(1_000_000):\n"
    "        pass\n"
)


class Burners:
    """``count`` CPU-burning processes for the length of a ``with`` block (``--load N``).

    They are killed when the block ends, however it ends (an exception, Ctrl-C, or SIGTERM,
    which the driver turns into ``SystemExit``); their CPU time is read just before.
    """

    def __init__(self, count: int) -> None:
        self.count = count
        self.processes: list[subprocess.Popen[bytes]] = []
        self.cpu_s = 0.0

    def __enter__(self) -> Burners:
        for _ in range(self.count):
            command = [sys.executable, "-c", BURNER, str(os.getpid())]
            self.processes.append(subprocess.Popen(command))
        return self

    def __exit__(self, *exc: object) -> None:
        for process in self.processes:
            stat = _proc_stat(str(process.pid))
            self.cpu_s += stat[1] if stat else 0.0
            process.kill()
        for process in self.processes:
            process.wait()
        self.processes.clear()


class LoadWatch:
    """The load average at start and end, and the highest 1-minute figure in between."""

    def __init__(self) -> None:
        self.start = list(os.getloadavg())
        self.max1 = self.start[0]

    def sample(self) -> None:
        self.max1 = max(self.max1, os.getloadavg()[0])

    def figures(self) -> dict[str, Any]:
        self.sample()
        return {"start": self.start, "end": list(os.getloadavg()), "max1": self.max1}


class Background:
    """``call(*args, **options)`` in a thread (or nothing when ``call`` is None)."""

    def __init__(self, call: Any, *args: Any, **options: Any) -> None:
        self._value: Any = None
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        if call is not None:

            def run() -> None:
                try:
                    self._value = call(*args, **options)
                except BaseException as exc:
                    self._error = exc

            self._thread = threading.Thread(target=run, daemon=True)
            self._thread.start()

    def result(self) -> Any:
        """Its value once it ended (None if nothing ran); its exception, raised here."""
        if self._thread is not None:
            self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value


def trackmux_script() -> list[str]:
    """``trackmux`` as installed beside this interpreter (what a user runs)."""
    script = Path(sys.executable).with_name("trackmux")
    if script.exists():
        return [str(script)]
    found = shutil.which("trackmux")
    return [found] if found else [sys.executable, "-m", "trackmux._cli"]


def startup_times(runs: int) -> dict[str, Any]:
    """``bench/import_time.py``'s measures: import trackmux, ``trackmux --help``, bare Python."""
    sys.path.insert(0, str(HERE))
    import import_time as startup

    wall, cpu = startup.import_times(runs)
    return {
        "runs": runs,
        "import_wall": wall,
        "import_cpu": cpu,
        "help": startup.wall_times([*trackmux_script(), "--help"], runs),
        "bare": startup.wall_times([sys.executable, "-c", "pass"], runs),
    }


def measure(args: argparse.Namespace, watch: LoadWatch) -> dict[str, Any]:
    """Every figure of one run (raw, JSON-ready); ``compare_report`` renders them."""
    quick = args.quick
    steps = 20_000 if quick and args.steps == 100_000 else args.steps
    slow_steps = min(steps, args.slow_steps)
    wire_steps = min(steps, args.wire_steps)
    tail_calls = 200_000 if quick and args.tail_calls == 1_000_000 else args.tail_calls
    wandb_tail = min(tail_calls, 5_000 if quick else args.wandb_tail_calls)
    budget, max_samples, repeats = (1.0, 200, 3) if quick else (3.0, 500, 7)
    startup_runs = 7 if quick else 20
    mlflow = not args.skip_mlflow

    def phase(message: str) -> None:
        watch.sample()
        say(message)

    other = venv_python()
    versions = json.loads(
        subprocess.run(
            [
                str(other),
                "-c",
                "import json, importlib.metadata as m; print(json.dumps("
                "{d: m.version(d) for d in ('wandb', 'mlflow')}))",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    import importlib.metadata

    versions["trackmux"] = importlib.metadata.version("trackmux")

    libs = {"trackmux": sys.executable, "wandb": other}
    if mlflow:
        libs.update({lib: other for lib in SLOW})

    hot: dict[str, dict[str, Any]] = {}
    for lib, python in libs.items():
        phase(f"log_metrics cost: {lib}")
        hot[lib] = worker(python, "hot", lib=lib, budget=budget, max_samples=max_samples)

    phase(f"total CPU per record: trackmux, {steps:,} records x {repeats // 2 + 1}")
    total = worker(sys.executable, "total", steps=steps, repeats=repeats // 2 + 1)

    phase(f"tail: trackmux, {tail_calls:,} calls each timed (GC on, off, floor)")
    tail = worker(sys.executable, "tail", lib="trackmux", steps=tail_calls)
    phase(f"tail: wandb, {wandb_tail:,} calls each timed")
    tail["wandb"] = worker(other, "tail", lib="wandb", steps=wandb_tail)

    phase(f"import trackmux, trackmux --help: {startup_runs} fresh processes each")
    started = startup_times(startup_runs)
    phase("import wandb, mlflow")
    imports = {"wandb": import_time(other, "wandb", repeats)}
    if mlflow:
        imports["mlflow"] = import_time(other, "mlflow", repeats)

    runs: dict[str, dict[str, Any]] = {}
    order = ["trackmux", "wandb"] + (
        ["mlflow-sqlite-async", "mlflow-file-async", "mlflow-sqlite-sync", "mlflow-file-sync"]
        if mlflow
        else []
    )
    for lib in order:
        n = slow_steps if lib in SLOW else steps
        phase(f"{n:,} steps: {lib}")
        runs[lib] = worker(libs[lib], "run", lib=lib, steps=n)

    phase("journal throughput")
    journal = worker(sys.executable, "journal", steps=max(steps, 100_000))
    phase("W&B wire (trackmux plugin vs FakeWandB)")
    wire = worker(sys.executable, "wire", steps=wire_steps)
    sdk_wire: dict[str, Any] | None = None
    if not args.skip_sdk_online:
        phase("W&B wire: official SDK online against FakeWandB")
        sdk_wire = sdk_online_wire(other, wire_steps)
    delivery: dict[str, Any] | None = None
    mlflow_server: dict[str, Any] | None = None
    seconds = 25.0 if quick else args.latency_seconds
    latency_run = Background(
        None if args.skip_latency else worker,
        sys.executable,
        "latency",
        seconds=seconds,
        burst_at=5.0,
    )
    if not args.skip_latency:
        # sleeps between 20 rows/s: it runs beside the MLflow server measures
        phase(f"delivery latency to FakeWandB: {seconds:g} s healthy, {seconds:g} s with a burst")
    if mlflow and not args.skip_mlflow_server:
        rows, rounds = (1_000, 1) if quick else (args.mlflow_server_rows, 3)
        phase(f"a real mlflow server: {rows:,} rows x {rounds} rounds per client, then latency")
        mlflow_server = worker(
            sys.executable, "mlflow-server", steps=rows, repeats=rounds, seconds=seconds
        )
    delivery = latency_run.result()
    return {
        "steps": steps,
        "batch": BATCH,
        "import_repeats": repeats,
        "versions": versions,
        "hot": hot,
        "total_cpu": total,
        "tail": tail,
        "startup": started,
        "imports": imports,
        "runs": runs,
        "journal": journal,
        "wire": wire,
        "sdk_wire": sdk_wire,
        "latency": delivery,
        "mlflow_server": mlflow_server,
    }


def load_list(text: str) -> list[int]:
    """``--load``'s value, ``2`` or ``0,2``: CPU burners per run (one idle, one loaded at most)."""
    try:
        loads = [int(part) for part in text.split(",")]
    except ValueError:
        loads = []
    if not loads or any(n < 0 for n in loads):
        raise argparse.ArgumentTypeError(
            f"--load takes a count of processes or a comma-separated list of them "
            f"(0 = idle), got {text!r}"
        )
    if sum(1 for n in loads if n == 0) > 1 or sum(1 for n in loads if n > 0) > 1:
        raise argparse.ArgumentTypeError(
            f"--load: at most one idle (0) and one loaded run, got {text!r}"
        )
    return loads


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="The two runs of bench/RESULTS.md and the README table, in one command: "
        "`python bench/compare.py --load 0,2 --save`.",
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=100_000,
        help="steps for the RSS / wall-time / total-CPU / wire / journal runs (100,000)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="shorter timing budgets, fewer repeats, 20,000 steps, 200,000 tail calls",
    )
    parser.add_argument(
        "--slow-steps",
        type=int,
        default=1_000,
        help="steps for the MLflow runs, whose calls take milliseconds (and "
        "whose asynchronous queue drains at ~100 steps/s on SQLite): "
        "100,000 of them would take from minutes to hours (default 1,000)",
    )
    parser.add_argument(
        "--wire-steps", type=int, default=10_000, help="rows for the W&B wire runs (default 10,000)"
    )
    parser.add_argument(
        "--tail-calls",
        type=int,
        default=1_000_000,
        help="trackmux calls each timed for the tail (default 1,000,000)",
    )
    parser.add_argument(
        "--wandb-tail-calls",
        type=int,
        default=20_000,
        help="wandb run.log calls each timed for the tail (default 20,000: ~100x dearer each)",
    )
    parser.add_argument(
        "--load",
        type=load_list,
        default=[0],
        metavar="N[,N...]",
        help="run N CPU-burning processes beside the whole run (a loaded machine; killed at "
        "the end); a list runs once per N, in order: '--load 0,2 --save' makes and stores "
        "the idle and the loaded run in one command (default 0)",
    )
    parser.add_argument(
        "--skip-sdk-online",
        action="store_true",
        help="do not try the official SDK against FakeWandB",
    )
    parser.add_argument(
        "--latency-seconds",
        type=float,
        default=30.0,
        help="seconds of logging (20 rows/s) per delivery-latency case (default 30)",
    )
    parser.add_argument(
        "--skip-latency",
        action="store_true",
        help="leave the delivery-latency runs out (their targets then read 'missed')",
    )
    parser.add_argument(
        "--mlflow-server-rows",
        type=int,
        default=10_000,
        help="rows per client and round against the real MLflow server (default 10,000, "
        "bench/mlflow_throughput.py's: fewer rows weigh a pipelined client's start and drain)",
    )
    parser.add_argument(
        "--skip-mlflow-server",
        action="store_true",
        help="leave out the real MLflow server's rows/s and latency",
    )
    parser.add_argument(
        "--skip-mlflow",
        action="store_true",
        help="leave MLflow out (faster while developing; its targets then read 'missed')",
    )
    parser.add_argument(
        "--save",
        action="store_true",
        help="store the run in bench/results.json (as 'idle', or 'loaded' with --load) and "
        "rewrite the generated blocks of README.md and bench/RESULTS.md from that file",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        help="also write the raw measurements (JSON) to this file",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="also write the report (markdown) to this file"
    )
    return parser.parse_args(argv)


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through Burners.__exit__


def run_command(argv: list[str], load: int) -> str:
    """The command that repeats one run: ``argv`` for that ``load``, output paths left out."""
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("--load", "--json", "--out"):
            skip = True
        elif not arg.startswith(("--load=", "--json=", "--out=")):
            kept.append(arg)
    return " ".join(["python bench/compare.py", *([f"--load {load}"] if load else []), *kept])


def one_run(args: argparse.Namespace, argv: list[str], load: int) -> dict[str, Any]:
    """Measure once with ``load`` CPU burners beside the benchmark; the raw figures."""
    began = time.perf_counter()
    watch = LoadWatch()
    with Burners(load) as burners:
        if load:
            say(f"--load {load}: {load} CPU-burning processes run until this run ends")
        raw = measure(args, watch)
    raw.update(
        {
            "command": run_command(argv, load),
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "platform": {
                "python": f"{platform.python_implementation()} {platform.python_version()}",
                "cores": os.cpu_count(),
                "machine": platform.machine(),
            },
            "loadavg": watch.figures(),
            "burners": {"count": load, "cpu_s": burners.cpu_s},
            "total": time.perf_counter() - began,
        }
    )
    return raw


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    raws: dict[str, dict[str, Any]] = {}
    reports = []
    for load in args.load:
        mode = "loaded" if load else "idle"
        raw = raws[mode] = one_run(args, argv, load)
        reports.append(compare_report.render_run(raw))
        print(reports[-1], flush=True)
        if args.save:
            compare_report.store(mode, raw)
            changed = compare_report.write_all(compare_report.load_results())
            say(
                f"stored the {mode} run in bench/results.json; rewrote "
                + (", ".join(str(p.relative_to(ROOT)) for p in changed) or "nothing")
            )
    if args.json:
        one = len(raws) == 1
        args.json.write_text(json.dumps(next(iter(raws.values())) if one else raws, indent=1))
    if args.out:
        args.out.write_text("\n".join(reports))
        say(f"wrote {args.out}")


if __name__ == "__main__":
    if "--worker" in sys.argv:
        run_worker(sys.argv[1:])
    else:
        main(sys.argv[1:])
