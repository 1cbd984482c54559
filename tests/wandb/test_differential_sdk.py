"""The same script through the official ``wandb`` SDK and through trackmux, against one
FakeWandB on 127.0.0.1: the stored runs must match field by field.

The scenario is the issue's, and lean: a run with nested config, tags, group and notes,
200 steps with train and eval logged at the same step, NaN and infinities, a two-file
artifact; then a second run that fails. Only SDK-internal fields may differ: ``_wandb``,
``_runtime``, ``_timestamp``, system metrics and code files (none are sent: stats off,
code saving off).

The SDK runs in a virtual environment of its own (``_wandb_sdk.py``), never in
trackmux's. Where the fake disagreed with what the SDK expects, the fake was fixed.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest
import trackmux
from _wandb_sdk import WandBSDKUnavailable, ensure_venv
from trackmux_wandb.testing import FakeWandB

#: Each client logs into a project of its own, so W&B's artifact deduplication (same digest
#: in one collection) cannot hide one client's artifact behind the other's.
SDK_PROJECT, OUR_PROJECT = "differential-sdk", "differential-trackmux"
CONFIG = {"learning_rate": 3e-4, "model": {"name": "llama", "layers": [64, 64]}, "seed": 7}
META = {"tags": ["lora", "small"], "group": "sweep-1", "notes": "same script", "job_type": "train"}
_INTERNAL = ("_wandb", "_runtime", "_timestamp")


def rows(step: int) -> list[dict[str, float]]:
    """What the script logs at ``step``: train metrics, then eval at every 10th step."""
    logged = [{"train/loss": 1.0 / (step + 1), "lr": 3e-4}]
    if step % 10 == 0:
        logged.append({"eval/loss": 2.0 / (step + 1), "eval/acc": step / 200})
    if step in (50, 60, 70):
        logged.append({"odd": {50: math.nan, 60: math.inf, 70: -math.inf}[step]})
    return logged


SDK_SCRIPT = textwrap.dedent(
    """
    import json, math, sys
    import wandb

    project, workdir, files, spec = sys.argv[1], sys.argv[2], sys.argv[3:5], json.loads(sys.argv[5])
    def settings():  # a fresh one per run: wandb.init writes the run's tags and group into it
        return wandb.Settings(init_timeout=60, x_disable_stats=True, x_disable_meta=True,
                              console="off", save_code=False, disable_git=True)

    run = wandb.init(project=project, id="sdkrun01", name="first", dir=workdir,
                     config=spec["config"], settings=settings(), **spec["meta"])
    for step, logged in enumerate(spec["rows"]):
        for row in logged:
            run.log({k: float(v) for k, v in row.items()}, step=step)
    artifact = wandb.Artifact("ckpt", type="model")
    for path in files:
        artifact.add_file(path)
    run.log_artifact(artifact)
    run.finish()
    second = wandb.init(project=project, id="sdkrun02", name="second", dir=workdir,
                        settings=settings())
    second.log({"loss": 1.0}, step=0)
    second.finish(exit_code=1)
    """
)


def _encoded_rows() -> list[list[dict[str, Any]]]:
    # NaN/inf travel as JSON tokens (json.dumps default), parsed back by the script
    return [rows(step) for step in range(200)]


def run_sdk(python: Path, url: str, api_key: str, tmp_path: Path, files: list[Path]) -> None:
    script = tmp_path / "sdk_script.py"
    script.write_text(SDK_SCRIPT)
    spec = json.dumps({"config": CONFIG, "meta": META, "rows": _encoded_rows()})
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "TRACKMUX_"))}
    env.update(
        WANDB_BASE_URL=url,
        WANDB_API_KEY=api_key,
        WANDB_MODE="online",
        WANDB_SILENT="true",
        WANDB_CONFIG_DIR=str(tmp_path / "wandb-config"),
        WANDB_CACHE_DIR=str(tmp_path / "wandb-cache"),
        WANDB_DATA_DIR=str(tmp_path / "wandb-data"),
        HOME=str(tmp_path / "home"),
    )
    workdir = tmp_path / "sdk"
    workdir.mkdir()
    done = subprocess.run(
        [str(python), str(script), SDK_PROJECT, str(workdir), *map(str, files), spec],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def run_trackmux(url: str, api_key: str, tmp_path: Path, folder: Path) -> None:
    tracker = trackmux.Tracker(
        ["wandb"], data_dir=tmp_path / "trackmux", settings={"wandb": {"base_url": url}}
    )
    tracker.connect({"api_key": api_key})
    run = tracker.submit_job(
        project_name=OUR_PROJECT, run_id="tmxrun01", name="first", extra=CONFIG, **META
    )
    for step, logged in enumerate(_encoded_rows()):
        for row in logged:
            tracker.log_metrics(run, row, step=step)
    tracker.upload_artifact(folder, {"name": "ckpt", "type": "model"}, job_id=run)
    tracker.finish(run)
    second = tracker.submit_job(project_name=OUR_PROJECT, run_id="tmxrun02", name="second")
    tracker.log_metrics(second, {"loss": 1.0}, step=0)
    tracker.finish(second, exit_code=1)
    assert tracker.disconnect().delivered


def _numbers(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_numbers(v) for v in value]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return value


def _plain(value: Any) -> Any:
    """JSON text with NaN/Infinity tokens: equal when the values are (NaN included). JSON
    numbers compare as numbers: the SDK's Go encoder writes 2.0 as ``2``, Python ``2.0``,
    and both are the same JSON number to W&B."""
    return json.dumps(_numbers(value), sort_keys=True, allow_nan=True)


def stored(fake: FakeWandB, project: str, name: str) -> dict[str, Any]:
    """One stored run, without the SDK-internal fields."""
    entity = fake.entity
    run = fake.run(entity, project, name)
    config = {k: v for k, v in fake.config(entity, project, name).items()
              if k not in ("_wandb", "wandb_version")}
    history = [{k: v for k, v in row.items() if k not in _INTERNAL}
               for row in fake.history(entity, project, name)]
    summary = {k: v for k, v in fake.summary(entity, project, name).items()
               if k not in _INTERNAL}
    artifacts = [
        (a.collection, a.type, a.state, sorted(a.files.items()))
        for a in fake.artifacts(entity, project)
        if a.run_name == name
    ]
    return {
        "display_name": run.display_name,
        "tags": run.tags,
        "group": run.group,
        "notes": run.notes,
        "job_type": run.job_type,
        "state": run.state,
        "config": _plain(config),
        "history": [_plain(row) for row in history],
        "summary": _plain(summary),
        "artifacts": artifacts,
    }


def test_trackmux_stores_the_run_the_official_sdk_stores(tmp_path: Path) -> None:
    try:
        python = ensure_venv(log=lambda line: print(f"\n[wandb-sdk] {line}", flush=True))
    except WandBSDKUnavailable as exc:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"no wandb SDK for the differential test: {exc}", pytrace=False)
        pytest.skip(f"no wandb SDK for the differential test: {exc}")
    folder = tmp_path / "ckpt"
    folder.mkdir()
    files = [folder / "weights.bin", folder / "config.json"]
    files[0].write_bytes(bytes(range(256)) * 8)
    files[1].write_text('{"r": 16}')
    fake = FakeWandB()
    with fake.serve() as url:
        run_sdk(python, url, fake.api_key, tmp_path, files)
        run_trackmux(url, fake.api_key, tmp_path, folder)

    for sdk_name, ours_name in (("sdkrun01", "tmxrun01"), ("sdkrun02", "tmxrun02")):
        sdk, ours = stored(fake, SDK_PROJECT, sdk_name), stored(fake, OUR_PROJECT, ours_name)
        for field in sdk:
            assert ours[field] == sdk[field], f"{ours_name} differs from the SDK's in {field}"
    first = stored(fake, OUR_PROJECT, "tmxrun01")
    assert len(first["history"]) == 200 and first["state"] == "finished"
    assert len(first["artifacts"]) == 1 and len(first["artifacts"][0][3]) == 2
    assert stored(fake, OUR_PROJECT, "tmxrun02")["state"] == "failed"
