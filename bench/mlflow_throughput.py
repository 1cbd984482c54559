"""Rows per second into a real MLflow server, and delivery latency: trackmux beside MLflow's
own client and beside plain HTTP requests.

Starts ``mlflow server`` (SQLite store, one worker, from the tests' private virtual
environment, see ``tests/mlflow/_mlflow_server.py``) and measures, against that one server,
rows of 5 metrics into a fresh run each time:

* ``trackmux``: ``trackmux.Tracker(["mlflow"])`` with its defaults, timed from the first
  ``log_metrics`` until ``flush()`` returns (every row acknowledged); read back and counted
  afterwards. The run holds the user's 5 metrics and nothing else: trackmux's bookkeeping is
  the ``trackmux.seq`` run tag, set once per batch after the batch's metrics are stored.
* ``MlflowClient.log_batch``: the same rows sent by MLflow's own client in batches of 200
  rows (1,000 metrics, MLflow's per-request limit), run with the venv's Python in a
  subprocess, timed around its loop.
* ``raw httpx``: the same rows as prebuilt JSON bodies of 1,000 metrics (the largest
  ``log-batch`` MLflow accepts), POSTed by ``httpx.AsyncClient`` one at a time and two at a
  time: the ceiling the server allows a client that does nothing else.

The kinds run interleaved for ``--rounds`` rounds; the table shows each kind's median and
range of rows/s (wall time), and the server's CPU time per 1,000 rows over the same spans
(the server's process group, read from /proc): what each client costs the server, which a
loaded machine moves far less than wall time.

Then the delivery latency with the default settings (5 s batch interval): rows logged at
``--rate`` per second for ``--latency-seconds``, no ``flush()``; a poller reads the run's
latest ``tokens`` metric (its value is the row's step) with ``runs/get`` every 50 ms and
notes when each row first shows as stored. Goal: p99 <= 6 s.

Run: ``python bench/mlflow_throughput.py [--rows 10000] [--rounds 3] [--rate 20]
[--latency-seconds 40]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import trackmux

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "mlflow"))

from _mlflow_server import MLFLOW_VERSION, MLflowServer, ensure_venv, start_server
from latency import log_paced, row_values

#: MLflow's own client, started and stopped by the parent (one line each way) so that the
#: server's CPU is read around the loop alone, not the client's imports or the read-back.
_CLIENT_SCRIPT = """
import json, sys, time, uuid
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
url, rows = sys.argv[1], int(sys.argv[2])
client = MlflowClient(tracking_uri=url)
exp = client.create_experiment(f"bench-mlflow-client-{uuid.uuid4().hex[:8]}")
run = client.create_run(exp).info.run_id
print("ready", flush=True)
sys.stdin.readline()
start = time.perf_counter()
now = int(time.time() * 1000)
for first in range(0, rows, 200):
    metrics = []
    for step in range(first, min(rows, first + 200)):
        values = {"loss": 1.0 / (step + 1), "acc": 0.5, "lr": 3e-4, "grad_norm": 1.25,
                  "tokens": float(step)}
        metrics += [Metric(k, v, now + step, step) for k, v in values.items()]
    client.log_batch(run, metrics=metrics)
elapsed = time.perf_counter() - start
print(json.dumps({"elapsed": elapsed}), flush=True)
sys.stdin.readline()
print(json.dumps({"stored": len(client.get_metric_history(run, "loss"))}), flush=True)
"""

_API = "/api/2.0/mlflow/"
_POLL = 0.05


def server_cpu(server: MLflowServer) -> float:
    """CPU seconds used so far by the server's processes (its session, from /proc)."""
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == server.process.pid:  # session id: started with a new session
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def new_run(url: str, label: str) -> str:
    """A fresh run in a fresh experiment, for the raw requests."""
    api = url + _API
    exp = httpx.post(api + "experiments/create",
                     json={"name": f"bench-{label}-{uuid.uuid4().hex[:8]}"}).json()
    run = httpx.post(api + "runs/create", json={"experiment_id": exp["experiment_id"]}).json()
    return str(run["run"]["info"]["run_id"])


def measure_trackmux(server: MLflowServer, rows: int) -> dict[str, float]:
    """Rows through ``trackmux.Tracker(["mlflow"])``, first log to ``flush()``."""
    with tempfile.TemporaryDirectory() as data_dir:
        tracker = trackmux.Tracker(
            ["mlflow"], data_dir=data_dir,
            settings={"mlflow": {"experiment": f"bench-trackmux-{uuid.uuid4().hex[:8]}"}},
        )
        tracker.connect({"tracking_uri": server.url})
        with tracker:
            run = tracker.submit_job()
            cpu = server_cpu(server)
            start = time.perf_counter()
            for step in range(rows):
                tracker.log_metrics(run, row_values(step), step)
            report = tracker.flush(timeout=600)
            elapsed = time.perf_counter() - start
            cpu = server_cpu(server) - cpu
            assert report.delivered, report
            stored = len(tracker.get_history(run))
    assert stored == rows, (stored, rows)
    return {"elapsed": elapsed, "server_cpu": cpu}


def measure_mlflow_client(server: MLflowServer, rows: int) -> dict[str, float]:
    """The same rows through ``MlflowClient.log_batch`` (200 rows a request)."""
    client = subprocess.Popen(
        [str(server.python), "-c", _CLIENT_SCRIPT, server.url, str(rows)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert client.stdin is not None and client.stdout is not None
    try:
        assert client.stdout.readline().strip() == "ready"
        cpu = server_cpu(server)
        client.stdin.write("\n")
        client.stdin.flush()
        result = json.loads(client.stdout.readline())
        cpu = server_cpu(server) - cpu
        client.stdin.write("\n")
        client.stdin.flush()
        stored = json.loads(client.stdout.readline())["stored"]
    finally:
        client.wait(timeout=600)
    assert stored == rows, (stored, rows)
    return {"elapsed": result["elapsed"], "server_cpu": cpu}


def raw_bodies(run_id: str, rows: int) -> list[bytes]:
    """``log-batch`` bodies of 200 rows (1,000 metrics), encoded beforehand."""
    now = int(time.time() * 1000)
    bodies = []
    for first in range(0, rows, 200):
        metrics = [
            {"key": key, "value": value, "timestamp": now + step, "step": step}
            for step in range(first, min(rows, first + 200))
            for key, value in row_values(step).items()
        ]
        bodies.append(json.dumps({"run_id": run_id, "metrics": metrics},
                                 separators=(",", ":")).encode())
    return bodies


def measure_raw(server: MLflowServer, rows: int, parallel: int) -> dict[str, float]:
    """Prebuilt bodies POSTed by ``parallel`` senders sharing one ``httpx.AsyncClient``."""
    run_id = new_run(server.url, f"raw{parallel}")
    bodies = iter(raw_bodies(run_id, rows))
    url = server.url + _API + "runs/log-batch"

    async def send_all() -> float:
        async with httpx.AsyncClient(timeout=120) as client:
            async def sender() -> None:
                for body in bodies:
                    answer = await client.post(
                        url, content=body, headers={"Content-Type": "application/json"})
                    answer.raise_for_status()
            start = time.perf_counter()
            await asyncio.gather(*(sender() for _ in range(parallel)))
            return time.perf_counter() - start

    cpu = server_cpu(server)
    elapsed = asyncio.run(send_all())
    cpu = server_cpu(server) - cpu
    history = httpx.get(server.url + _API + "metrics/get-history",
                        params={"run_id": run_id, "metric_key": "loss",
                                "max_results": rows + 1}).json()
    assert len(history.get("metrics") or []) == rows
    return {"elapsed": elapsed, "server_cpu": cpu}


def measure_latency(server: MLflowServer, seconds: float, rate: float) -> list[float]:
    """Per-row seconds from ``log_metrics`` to the row stored, default settings, no flush."""
    stored_at: dict[int, float] = {}
    done = threading.Event()
    count = int(seconds * rate)
    with tempfile.TemporaryDirectory() as data_dir:
        tracker = trackmux.Tracker(
            ["mlflow"], data_dir=data_dir,
            settings={"mlflow": {"experiment": f"bench-latency-{uuid.uuid4().hex[:8]}"}},
        )
        tracker.connect({"tracking_uri": server.url})
        with tracker:
            run = tracker.submit_job()
            job_id = tracker.get_run_url(run).rsplit("/", 1)[-1]  # .../runs/<MLflow run id>

            def poll() -> None:
                seen = -1
                with httpx.Client(base_url=server.url + _API, timeout=30) as http:
                    while not done.is_set():
                        answer = http.get("runs/get", params={"run_id": job_id}).json()
                        now = time.perf_counter()
                        for metric in answer["run"]["data"].get("metrics") or []:
                            if metric["key"] == "tokens":
                                top = int(metric["value"])
                                for step in range(seen + 1, top + 1):
                                    stored_at[step] = now
                                seen = max(seen, top)
                        time.sleep(_POLL)

            poller = threading.Thread(target=poll, daemon=True)
            poller.start()
            logged = log_paced(tracker, run, count, rate, stored_at)
            done.set()
            poller.join()
            assert len(stored_at) >= count, f"{len(stored_at)} of {count} rows stored"
            assert len(tracker.get_history(run)) == count
    return [stored_at[step] - at for step, at in enumerate(logged)]


def quantile(values: list[float], q: float) -> float:
    """The ``q`` quantile (inclusive method, 1000 cut points)."""
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 1000) - 1]


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000, help="rows per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--rate", type=float, default=20.0, help="latency: rows per second")
    parser.add_argument("--latency-seconds", type=float, default=40.0,
                        help="latency: seconds of logging (0: skip)")
    args = parser.parse_args()
    python = ensure_venv()
    kinds: dict[str, Callable[[MLflowServer, int], dict[str, float]]] = {
        "trackmux (Tracker -> plugin)": measure_trackmux,
        "MlflowClient.log_batch": measure_mlflow_client,
        "raw httpx, 1 at a time": lambda server, rows: measure_raw(server, rows, 1),
        "raw httpx, 2 at a time": lambda server, rows: measure_raw(server, rows, 2),
    }
    results: dict[str, list[dict[str, float]]] = {name: [] for name in kinds}
    latency: list[float] = []
    print(f"load average at start {load()}", flush=True)
    with tempfile.TemporaryDirectory() as workdir:
        server = start_server(Path(workdir), python)
        try:
            print(f"mlflow {MLFLOW_VERSION} server at {server.url} (SQLite, 1 worker; answered "
                  f"/health in {server.start_seconds:.1f} s); {args.rows} rows of 5 metrics, "
                  f"{args.rounds} rounds", flush=True)
            for _ in range(args.rounds):
                for name, measure in kinds.items():
                    results[name].append(measure(server, args.rows))
            if args.latency_seconds > 0:
                latency = measure_latency(server, args.latency_seconds, args.rate)
        finally:
            server.stop()
    print(f"load average at end {load()}")
    print()
    print("| client | rows/s, median | rows/s, range | server CPU per 1,000 rows |")
    print("|---|---|---|---|")
    for name, runs in results.items():
        rates = [args.rows / r["elapsed"] for r in runs]
        cpu = statistics.median(r["server_cpu"] for r in runs) / args.rows * 1e6
        print(f"| {name} | {statistics.median(rates):,.0f} | {min(rates):,.0f}-{max(rates):,.0f} "
              f"| {cpu:,.0f} ms |")
    if latency:
        print()
        print(f"| MLflow delivery latency, {args.rate:g} rows/s for {args.latency_seconds:g} s, "
              "default settings | p50 | p99 | max |")
        print("|---|---|---|---|")
        p50, p99 = quantile(latency, 0.5), quantile(latency, 0.99)
        print(f"| healthy server | {p50:.2f} s | {p99:.2f} s | {max(latency):.2f} s |")


if __name__ == "__main__":
    main()
