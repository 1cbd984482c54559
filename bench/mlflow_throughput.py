"""Rows per second into a real MLflow server: trackmux's MLflow plugin beside MLflow's client.

Starts ``mlflow server`` (SQLite store, from the tests' private virtual environment, see
``tests/mlflow/_mlflow_server.py``) and measures, against that one server:

* ``trackmux``: N rows of 5 metrics logged through ``trackmux.Tracker(["mlflow"])``, timed
  from the first ``log_metrics`` until ``flush()`` returns (every row acknowledged), then
  read back and counted. Each row also carries the ``_trackmux.seq`` marker metric.
* ``MlflowClient.log_batch``: the same rows sent by MLflow's own client in batches of 200
  rows (1,000 metrics, MLflow's per-request limit), run with the venv's Python in a
  subprocess.

Run: ``python bench/mlflow_throughput.py [--rows 20000]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trackmux

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "mlflow"))

from _mlflow_server import MLFLOW_VERSION, ensure_venv, start_server

_CLIENT_SCRIPT = """
import json, sys, time
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
url, rows = sys.argv[1], int(sys.argv[2])
client = MlflowClient(tracking_uri=url)
exp = client.create_experiment("bench-mlflow-client")
run = client.create_run(exp).info.run_id
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
stored = len(client.get_metric_history(run, "loss"))
print(json.dumps({"elapsed": elapsed, "stored": stored}))
"""


def measure_trackmux(url: str, rows: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as data_dir:
        tracker = trackmux.Tracker(
            ["mlflow"], data_dir=data_dir, settings={"mlflow": {"experiment": "bench-trackmux"}}
        )
        tracker.connect({"tracking_uri": url})
        with tracker:
            run = tracker.submit_job()
            start = time.perf_counter()
            for step in range(rows):
                tracker.log_metrics(
                    run,
                    {
                        "loss": 1.0 / (step + 1),
                        "acc": 0.5,
                        "lr": 3e-4,
                        "grad_norm": 1.25,
                        "tokens": float(step),
                    },
                    step,
                )
            report = tracker.flush(timeout=600)
            elapsed = time.perf_counter() - start
            assert report.delivered, report
            stored = len(tracker.get_history(run))
    assert stored == rows, (stored, rows)
    return {"elapsed": elapsed, "stored": stored}


def measure_mlflow_client(python: Path, url: str, rows: int) -> dict[str, float]:
    done = subprocess.run(
        [str(python), "-c", _CLIENT_SCRIPT, url, str(rows)],
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["stored"] == rows, result
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    args = parser.parse_args()
    python = ensure_venv()
    with tempfile.TemporaryDirectory() as workdir:
        server = start_server(Path(workdir), python)
        try:
            print(
                f"mlflow {MLFLOW_VERSION} server at {server.url} "
                f"(answered /health in {server.start_seconds:.1f} s); {args.rows} rows of 5 "
                f"metrics"
            )
            results = {
                "trackmux (Tracker -> plugin)": measure_trackmux(server.url, args.rows),
                "MlflowClient.log_batch": measure_mlflow_client(python, server.url, args.rows),
            }
        finally:
            server.stop()
    print(f"{'client':<30} {'seconds':>9} {'rows/s':>10} {'metrics/s':>11}")
    for name, result in results.items():
        rate = args.rows / result["elapsed"]
        print(f"{name:<30} {result['elapsed']:>9.2f} {rate:>10.0f} {rate * 5:>11.0f}")


if __name__ == "__main__":
    main()
