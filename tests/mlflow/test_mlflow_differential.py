"""The same script through MLflow's own ``MlflowClient`` and through trackmux, against the
real server: params, metrics (no extra keys), tags apart from the documented
``trackmux.*`` ones, status and artifacts must match.

``MlflowClient`` runs in the MLflow server's virtual environment (never in trackmux's).
The config is flat scalars: for lists and dicts MLflow's client stores ``str(value)``
(Python's repr) where trackmux stores JSON, a deliberate difference (README).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import httpx
import trackmux
from trackmux._journal import RunJournal

CONFIG = {"learning_rate": 0.0003, "rank": 16, "base_model": "llama"}


def rows(step: int) -> list[dict[str, float]]:
    """Train metrics every step, eval at every 10th step, NaN and infinities once each."""
    logged = [{"train/loss": 1.0 / (step + 1)}]
    if step % 10 == 0:
        logged.append({"eval/loss": 2.0 / (step + 1)})
    if step in (50, 60, 70):
        logged.append({"odd": {50: math.nan, 60: math.inf, 70: -math.inf}[step]})
    return logged


CLIENT_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag

    experiment, folder, spec = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    client = MlflowClient()
    exp_id = client.create_experiment(experiment)
    run = client.create_run(exp_id, run_name="first",
                            tags={"mlflow.note.content": "same script", "lora": "", "small": ""})
    run_id = run.info.run_id
    client.log_batch(run_id, params=[Param(k, str(v)) for k, v in spec["config"].items()])
    now = int(time.time() * 1000)
    metrics = [Metric(k, float(v), now + step, step)
               for step, logged in enumerate(spec["rows"])
               for row in logged for k, v in row.items()]
    client.log_batch(run_id, metrics=metrics)  # one request: the test's time is the server's
    client.log_artifacts(run_id, folder, artifact_path="ckpt")
    client.set_terminated(run_id, "FINISHED")
    second = client.create_run(exp_id, run_name="second")
    client.log_metric(second.info.run_id, "loss", 1.0, step=0)
    client.set_terminated(second.info.run_id, "FAILED")
    print(json.dumps([run_id, second.info.run_id]))
    """
)


def run_client(server: Any, experiment: str, folder: Path, tmp_path: Path) -> list[str]:
    script = tmp_path / "client_script.py"
    script.write_text(CLIENT_SCRIPT)
    spec = json.dumps({"config": CONFIG, "rows": [rows(s) for s in range(200)]})
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "TRACKMUX_"))}
    env["MLFLOW_TRACKING_URI"] = server.url
    done = subprocess.run(
        [str(server.python), str(script), experiment, str(folder), spec],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return list(json.loads(done.stdout.strip().splitlines()[-1]))


def run_trackmux(server: Any, experiment: str, folder: Path, tmp_path: Path) -> list[str]:
    tracker = trackmux.Tracker(
        ["mlflow"], data_dir=tmp_path / "trackmux",
        settings={"mlflow": {"tracking_uri": server.url, "experiment": experiment}},
    )
    tracker.connect()
    run = tracker.submit_job(name="first", notes="same script", tags=["lora", "small"],
                             extra=CONFIG)
    for step in range(200):
        for row in rows(step):
            tracker.log_metrics(run, row, step=step)
    tracker.upload_artifact(folder, {"name": "ckpt"}, job_id=run)
    tracker.finish(run)
    second = tracker.submit_job(name="second")
    tracker.log_metrics(second, {"loss": 1.0}, step=0)
    tracker.finish(second, exit_code=1)
    assert tracker.disconnect().delivered
    journal = tmp_path / "trackmux" / "journal"
    return [str(RunJournal.peek(journal, r).tracker_job("mlflow")) for r in (run, second)]


def _api(server: Any, method: str, endpoint: str, **kwargs: Any) -> dict[str, Any]:
    response = httpx.request(method, f"{server.url}/api/2.0/mlflow/{endpoint}", **kwargs)
    response.raise_for_status()
    return dict(response.json())


def _artifacts(server: Any, run_id: str, path: str = "") -> list[tuple[str, int]]:
    listed = _api(server, "GET", "artifacts/list", params={"run_id": run_id, "path": path})
    found: list[tuple[str, int]] = []
    for entry in listed.get("files") or []:
        if entry.get("is_dir"):
            found += _artifacts(server, run_id, entry["path"])
        else:
            found.append((entry["path"], int(entry["file_size"])))
    return sorted(found)


def stored(server: Any, run_id: str) -> dict[str, Any]:
    """One run as MLflow holds it; tags without trackmux's documented ``trackmux.*``."""
    run = _api(server, "GET", "runs/get", params={"run_id": run_id})["run"]
    data = run.get("data") or {}
    histories = {}
    for metric in data.get("metrics") or []:
        key = metric["key"]
        entries = _api(server, "GET", "metrics/get-history",
                       params={"run_id": run_id, "metric_key": key, "max_results": 25000})
        histories[key] = sorted(
            (int(e.get("step", 0)), json.dumps(e["value"])) for e in entries["metrics"]
        )
    return {
        "status": run["info"]["status"],
        "run_name": run["info"]["run_name"],
        "params": sorted((p["key"], p["value"]) for p in data.get("params") or []),
        "tags": sorted((t["key"], t["value"]) for t in data.get("tags") or []
                       if not t["key"].startswith("trackmux.")),
        "metrics": histories,
        "artifacts": _artifacts(server, run_id),
    }


def test_trackmux_stores_the_run_mlflow_client_stores(mlflow_server, tmp_path: Path) -> None:
    folder = tmp_path / "ckpt"
    (folder / "sub").mkdir(parents=True)
    (folder / "weights.bin").write_bytes(bytes(range(256)) * 8)
    (folder / "sub" / "config.json").write_text('{"r": 16}')
    theirs = run_client(mlflow_server, "differential-client", folder, tmp_path)
    ours = run_trackmux(mlflow_server, "differential-trackmux", folder, tmp_path)

    for their_id, our_id in zip(theirs, ours, strict=True):
        expected, got = stored(mlflow_server, their_id), stored(mlflow_server, our_id)
        for field in expected:
            assert got[field] == expected[field], f"{our_id} differs from the client's in {field}"
    first = stored(mlflow_server, ours[0])
    assert sorted(first["metrics"]) == ["eval/loss", "odd", "train/loss"], "no extra metric"
    assert len(first["metrics"]["train/loss"]) == 200
    assert first["artifacts"] == [("ckpt/sub/config.json", 9), ("ckpt/weights.bin", 2048)]
