"""trackmux beside the official ``wandb`` SDK and MLflow, on this machine, in one run.

One command::

    python bench/compare.py [--steps 100000] [--quick] [--out FILE] [--json FILE]

(results and the profile of the misses: ``bench/RESULTS.md``)

measures, each library in fresh subprocesses:

* the cost of one ``log_metrics`` call with 5 floats (median and p99 of the mean per call
  over batches of 100 calls): ``Tracker.log_metrics`` (offline tracker),
  ``wandb`` ``run.log({...}, step=i)`` (offline), ``mlflow.log_metrics({...}, step=i)``
  synchronous and ``synchronous=False`` (MLflow's asynchronous logging), MLflow on a local
  SQLite store and on a local file store;
* ``import`` time in a fresh process (median of several);
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
* and checks the issue-6 targets.

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
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENV = HERE / ".venv-compare"
WANDB_VERSION = "0.31.0"

BATCH = 100  # calls per timed sample
JOURNAL_REPEATS = 5  # engine journal runs; the median is reported
#: MLflow modes, whose calls take milliseconds: their runs log --slow-steps steps (the
#: asynchronous mode on SQLite took 250 s to drain 20,000 steps).
SLOW = ("mlflow-sqlite-sync", "mlflow-file-sync", "mlflow-sqlite-async", "mlflow-file-async")
SLOW_BATCH = 5  # calls per timed sample when a call takes over 1 ms
N_METRICS = 5


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


def time_calls(call: Any, budget: float, max_samples: int, min_samples: int = 20) -> dict[str, Any]:
    """Per-call mean over batches of calls, until ``budget`` seconds or max_samples.

    A batch is BATCH calls, or SLOW_BATCH for calls slower than 1 ms (MLflow's synchronous
    ones take tens of ms: 20 batches of 100 would take a minute).
    """
    step = 0
    t = time.perf_counter()
    for _ in range(10):  # warm up
        call(step)
        step += 1
    batch = BATCH if (time.perf_counter() - t) / 10 < 1e-3 else SLOW_BATCH
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
        cpu_start = time.process_time()
        start = time.perf_counter()
        for i in range(steps):
            log(i)
        logged = time.perf_counter()
        session.close()
        finished = time.perf_counter()
        cpu = time.process_time() - cpu_start
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
    }


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


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
    parser.add_argument("--base-url", default="")
    parser.add_argument("--api-key", default="")
    parser.add_argument("--result", required=True)
    args = parser.parse_args(argv)
    if args.worker == "hot":
        result = worker_hot(args.lib, args.budget, args.max_samples)
    elif args.worker == "run":
        result = worker_run(args.lib, args.steps)
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


def say(message: str) -> None:
    print(f"[compare] {message}", file=sys.stderr, flush=True)


def venv_python(quiet: bool = False) -> Path:
    """bench/.venv-compare's Python, with mlflow (tests/mlflow helper) and wandb installed."""
    os.environ["TRACKMUX_MLFLOW_VENV"] = str(VENV)
    sys.path.insert(0, str(ROOT / "tests" / "mlflow"))
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

    import threading

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


def fmt_us(seconds: float) -> str:
    us = seconds * 1e6
    return f"{us:,.1f} µs" if us < 1000 else f"{us / 1000:,.2f} ms"


def fmt_ratio(theirs: float, ours: float) -> str:
    if not ours:
        return "-"
    ratio = theirs / ours
    return f"{ratio:,.0f}x" if ratio >= 10 else f"{ratio:.1f}x"


def fmt_mb(kb: int) -> str:
    return f"{kb / 1024:,.0f} MB"


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--steps",
        type=int,
        default=100_000,
        help="steps for the RSS / wall-time / wire / journal runs (100,000)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="shorter timing budgets, fewer import repeats, 20,000 steps",
    )
    parser.add_argument(
        "--slow-steps",
        type=int,
        default=2_000,
        help="steps for the MLflow runs, whose calls take milliseconds (and "
        "whose asynchronous queue drains at ~100 steps/s on SQLite): "
        "100,000 of them would take from minutes to hours (default 2,000)",
    )
    parser.add_argument(
        "--wire-steps", type=int, default=10_000, help="rows for the W&B wire runs (default 10,000)"
    )
    parser.add_argument(
        "--skip-sdk-online",
        action="store_true",
        help="do not try the official SDK against FakeWandB",
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
    args = parser.parse_args(argv)
    steps = 20_000 if args.quick and args.steps == 100_000 else args.steps
    slow_steps = min(steps, args.slow_steps)
    wire_steps = min(steps, args.wire_steps)
    budget, max_samples, repeats = (1.0, 200, 3) if args.quick else (3.0, 500, 7)
    began = time.perf_counter()
    load_start = os.getloadavg()

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

    libs = {
        "trackmux": sys.executable,
        "wandb": other,
        "mlflow-sqlite-sync": other,
        "mlflow-sqlite-async": other,
        "mlflow-file-sync": other,
        "mlflow-file-async": other,
    }

    hot: dict[str, dict[str, Any]] = {}
    for lib, python in libs.items():
        say(f"log_metrics cost: {lib}")
        hot[lib] = worker(python, "hot", lib=lib, budget=budget, max_samples=max_samples)

    say("import times")
    imports = {
        "trackmux": import_time(sys.executable, "trackmux", repeats),
        "wandb": import_time(other, "wandb", repeats),
        "mlflow": import_time(other, "mlflow", repeats),
    }

    runs: dict[str, dict[str, Any]] = {}
    for lib in (
        "trackmux",
        "wandb",
        "mlflow-sqlite-async",
        "mlflow-file-async",
        "mlflow-sqlite-sync",
        "mlflow-file-sync",
    ):
        n = slow_steps if lib in SLOW else steps
        say(f"{n:,} steps: {lib}")
        runs[lib] = worker(libs[lib], "run", lib=lib, steps=n)

    say("journal throughput")
    journal = worker(sys.executable, "journal", steps=max(steps, 100_000))
    say("W&B wire (trackmux plugin vs FakeWandB)")
    wire = worker(sys.executable, "wire", steps=wire_steps)
    sdk_wire: dict[str, Any] | None = None
    if not args.skip_sdk_online:
        say("W&B wire: official SDK online against FakeWandB")
        sdk_wire = sdk_online_wire(other, wire_steps)
    load_end = os.getloadavg()
    total = time.perf_counter() - began
    if args.json:
        raw = {
            "steps": steps,
            "versions": versions,
            "hot": hot,
            "imports": imports,
            "runs": runs,
            "journal": journal,
            "wire": wire,
            "sdk_wire": sdk_wire,
            "load_start": load_start,
            "load_end": load_end,
            "total": total,
        }
        args.json.write_text(json.dumps(raw, indent=1))

    report = render(
        args,
        steps,
        versions,
        hot,
        imports,
        runs,
        journal,
        wire,
        sdk_wire,
        load_start,
        load_end,
        total,
    )
    print(report)
    if args.out:
        args.out.write_text(report)
        say(f"wrote {args.out}")


def render(
    args: Any,
    steps: int,
    versions: dict[str, str],
    hot: dict[str, dict[str, Any]],
    imports: dict[str, float],
    runs: dict[str, dict[str, Any]],
    journal: dict[str, Any],
    wire: dict[str, Any],
    sdk_wire: dict[str, Any] | None,
    load_start: tuple[float, ...],
    load_end: tuple[float, ...],
    total: float,
) -> str:
    labels = {
        "trackmux": "trackmux `Tracker.log_metrics` (offline tracker)",
        "wandb": "wandb `run.log` (offline)",
        "mlflow-sqlite-sync": "mlflow `log_metrics` sync, sqlite store",
        "mlflow-file-sync": "mlflow `log_metrics` sync, file store",
        "mlflow-sqlite-async": "mlflow `log_metrics(synchronous=False)`, sqlite store",
        "mlflow-file-async": "mlflow `log_metrics(synchronous=False)`, file store",
    }
    ours = hot["trackmux"]
    lines = []
    add = lines.append
    command = (
        "python bench/compare.py"
        + (" --quick" if args.quick else "")
        + (f" --steps {args.steps}" if args.steps != 100_000 else "")
    )
    add(
        f"Command: `{command}` — {platform.python_implementation()} "
        f"{platform.python_version()}, {os.cpu_count()} cores, {platform.machine()}; "
        f"trackmux {versions['trackmux']}, wandb {versions['wandb']}, "
        f"mlflow {versions['mlflow']}. Load average (1/5/15 min) at start "
        f"{load_start[0]:.2f}/{load_start[1]:.2f}/{load_start[2]:.2f}, at end "
        f"{load_end[0]:.2f}/{load_end[1]:.2f}/{load_end[2]:.2f}; took {total:.0f} s."
    )
    add("")
    add("### Cost of one `log_metrics` call, 5 floats")
    add("")
    add(
        f"Mean per call over batches of {BATCH} calls, in a fresh process per library; "
        '"trackmux is Nx cheaper" = their median / trackmux\'s median (p99 likewise).'
    )
    add("")
    add("| library / call | median | p99 | trackmux cheaper by (median) | (p99) | calls timed |")
    add("|---|---|---|---|---|---|")
    for lib, r in hot.items():
        ratio = "-" if lib == "trackmux" else fmt_ratio(r["median"], ours["median"])
        ratio99 = "-" if lib == "trackmux" else fmt_ratio(r["p99"], ours["p99"])
        add(
            f"| {labels[lib]} | {fmt_us(r['median'])} | {fmt_us(r['p99'])} | {ratio} "
            f"| {ratio99} | {r['calls']:,} |"
        )
    add("")
    add("### Import time (fresh process, median)")
    add("")
    add("| module | import time | trackmux faster by |")
    add("|---|---|---|")
    for module, seconds in imports.items():
        ratio = "-" if module == "trackmux" else fmt_ratio(seconds, imports["trackmux"])
        add(f"| `import {module}` | {seconds * 1e3:,.0f} ms | {ratio} |")
    add("")
    add(f"### A run of {steps:,} steps: peak RSS, and time until flushed and finished")
    add("")
    add(
        "Peak RSS is `ru_maxrss` of the logging process (imports and run setup included). "
        "The wall time runs from the first log call until the run is finished and everything "
        "is written (trackmux: `Tracker.disconnect()`, which finishes the run and waits until "
        "the offline tracker stored every row; wandb: `run.finish()`; MLflow: "
        "`flush_async_logging()` + `end_run()`). CPU is the logging process's user+system "
        "time over the same span. **wandb's RSS and CPU are the user process only: the "
        "`wandb-core` service is a separate process**, shown in its own column (its peak RSS "
        "and CPU, read through `RUSAGE_CHILDREN` after `wandb.teardown()`). MLflow modes whose "
        "calls take milliseconds log fewer steps (`--slow-steps`); their ratios compare "
        "per-step times."
    )
    add("")
    add(
        "| library | steps | peak RSS | RSS before logging | separate process "
        "| log loop | first log → finished | CPU | steps/s | trackmux faster by |"
    )
    add("|---|---|---|---|---|---|---|---|---|---|")
    base = runs["trackmux"]
    names = {
        "trackmux": "trackmux (offline tracker)",
        "wandb": "wandb (offline)",
        "mlflow-sqlite-sync": "mlflow sync, sqlite",
        "mlflow-file-sync": "mlflow sync, file",
        "mlflow-sqlite-async": "mlflow async, sqlite",
        "mlflow-file-async": "mlflow async, file",
    }
    for lib, r in runs.items():
        other = (
            f"wandb-core: {fmt_mb(r['children_peak_rss_kb'])}, {r['children_cpu']:.1f} s CPU"
            if lib == "wandb"
            else "-"
        )
        per_step_ours = base["wall"] / base["steps"]
        per_step = r["wall"] / r["steps"]
        ratio = "-" if lib == "trackmux" else fmt_ratio(per_step, per_step_ours)
        add(
            f"| {names[lib]} | {r['steps']:,} | {fmt_mb(r['peak_rss_kb'])} "
            f"| {fmt_mb(r['rss_before_kb'])} | {other} | {r['log_loop']:.2f} s "
            f"| {r['wall']:.2f} s | {r['cpu']:.2f} s | {r['steps'] / r['wall']:,.0f} | {ratio} |"
        )
    add("")
    add("### The journal: rows per second")
    add("")
    add(
        f"Median of {journal['repeats']} runs in one process (journal rows/s of each run: "
        + ", ".join(f"{v:,.0f}" for v in journal["journal_rows_per_s_all"])
        + ")."
    )
    add("")
    add(
        "| measurement " + f"({journal['rows']:,} rows x 5 floats) | rows/s (wall) "
        "| rows per CPU-second (all threads) |"
    )
    add("|---|---|---|")
    add(
        f"| engine: first `log_metrics` → the journal holds every row (log loop "
        f"{journal['engine_log_loop_s']:.2f} s, then the last commit "
        f"{journal['engine_commit_s']:.2f} s) | {journal['journal_rows_per_s']:,.0f} "
        f"| {journal['journal_rows_per_cpu_s']:,.0f} |"
    )
    add(
        f"| engine: first `log_metrics` → `flush()` returned, a no-op tracker acknowledging "
        f"at once (then {journal['engine_drain_s']:.2f} s until acknowledged) "
        f"| {journal['engine_rows_per_s']:,.0f} | {journal['engine_rows_per_cpu_s']:,.0f} |"
    )
    add(
        f"| committer alone: `RunJournal.append` (marshal + SQLite), 10,000-record commits "
        f"| {journal['committer_rows_per_s']:,.0f} | {journal['committer_rows_per_cpu_s']:,.0f} |"
    )
    add("")
    add(f"### W&B on the wire ({wire['rows']:,} rows x 5 floats, logged as fast as possible)")
    add("")
    add(
        "Both clients online against `FakeWandB` served on 127.0.0.1 (the same fake: W&B's "
        "GraphQL + file_stream protocol), counted from the first log until the run is "
        "finished; body bytes as sent. The SDK runs with system metrics off."
    )
    add("")
    add(
        "| client | file_stream requests with rows / 1k rows | their bytes / 1k rows "
        "| all requests / 1k rows | all bytes / 1k rows | first log → finished |"
    )
    add("|---|---|---|---|---|---|")
    clients = [("trackmux W&B plugin", wire)]
    if sdk_wire is not None and "error" not in sdk_wire:
        clients.append((f"official wandb SDK {versions['wandb']}", sdk_wire))
    for label, w in clients:
        add(
            f"| {label} | {w['requests_per_1k']:.2f} | {w['bytes_per_1k']:,.0f} "
            f"| {w['all_requests_per_1k']:.2f} | {w['all_bytes_per_1k']:,.0f} "
            f"| {w['wall']:.2f} s |"
        )
    if sdk_wire is None:
        add("| official wandb SDK | not attempted (`--skip-sdk-online`) | | | | |")
    elif "error" in sdk_wire:
        rejected = "; ".join(sdk_wire.get("rejected") or []) or "none recorded"
        add(
            f"| official wandb SDK → FakeWandB | not measurable: {sdk_wire['error']} "
            f"(requests the fake rejected: {rejected}) | | | | |"
        )
    else:
        add("")
        add(
            f"Requests seen: trackmux {', '.join(wire['operations'])}; "
            f"SDK {', '.join(sdk_wire['operations'])}. Rows stored by the fake: trackmux "
            f"{wire['stored']:,}, SDK {sdk_wire['stored']:,}."
        )
    add("")
    add("### Issue 6 targets")
    add("")
    wandb_log = hot["wandb"]["median"] / ours["median"]
    mlflow_log = (
        min(hot[k]["median"] for k in ("mlflow-sqlite-sync", "mlflow-file-sync")) / ours["median"]
    )
    import_ratio = imports["wandb"] / imports["trackmux"]
    rss_ours, rss_wandb = runs["trackmux"]["peak_rss_kb"], runs["wandb"]["peak_rss_kb"]
    rows_s = journal["journal_rows_per_s"]

    def verdict(ok: bool) -> str:
        return "**holds**" if ok else "**missed**"

    add("| target | measured | verdict |")
    add("|---|---|---|")
    add(
        f"| `log_metrics` ≥ 50x cheaper than wandb `run.log` (offline), median | {wandb_log:,.0f}x "
        f"| {verdict(wandb_log >= 50)} |"
    )
    add(
        f"| `log_metrics` ≥ 100x cheaper than MLflow's synchronous call (its faster store), "
        f"median | {mlflow_log:,.0f}x | {verdict(mlflow_log >= 100)} |"
    )
    add(
        f"| `import trackmux` ≥ 3x faster than `import wandb` | {import_ratio:.1f}x "
        f"| {verdict(import_ratio >= 3)} |"
    )
    add(
        f"| peak RSS for {steps:,} steps ≤ the wandb user process's | {fmt_mb(rss_ours)} vs "
        f"{fmt_mb(rss_wandb)} ({(rss_ours / rss_wandb - 1) * 100:+.0f}%) "
        f"| {verdict(rss_ours <= rss_wandb)} |"
    )
    add(
        f"| the engine moves ≥ 200,000 rows/s into the journal on one core | {rows_s:,.0f} rows/s "
        f"({journal['journal_rows_per_cpu_s']:,.0f} per CPU-second) "
        f"| {verdict(rows_s >= 200_000)} |"
    )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    if "--worker" in sys.argv:
        run_worker(sys.argv[1:])
    else:
        main(sys.argv[1:])
