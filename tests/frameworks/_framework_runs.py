"""Running training scripts with the frameworks' Python, and reading what each tracker
stored (the offline tracker through trackmux, W&B through the fake's state)."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import trackmux
from _frameworks_venv import script_env
from trackmux_wandb.testing import FakeWandB

#: A script's own limit: tiny models, a few steps.
SCRIPT_TIMEOUT = 300
PROJECT = "frameworks"


class Scripts:
    """Runs training scripts with the frameworks' Python, logging to ``null`` and W&B."""

    def __init__(self, python: Path, work: Path, fake: FakeWandB) -> None:
        self.python = python
        self.work = work
        self.fake = fake
        self.data_dir = work / "data"

    def env(self, **extra: str) -> dict[str, str]:
        return script_env(self.work, TRACKMUX_TRACKERS="null,wandb",
                          WANDB_BASE_URL=self.fake.url, WANDB_API_KEY=self.fake.api_key,
                          WANDB_PROJECT=PROJECT, **extra)

    def run(self, body: str, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        """Run ``body`` as a script in the work directory; fail the test if it fails."""
        script = self.work / "train.py"
        script.write_text(textwrap.dedent(body))
        done = subprocess.run([str(self.python), str(script), *args], cwd=self.work,
                              env=self.env(**extra), capture_output=True, text=True,
                              timeout=SCRIPT_TIMEOUT, check=False)
        assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr[-6000:]}"
        return done


def offline_run(data_dir: Path) -> dict[str, Any]:
    """The one run the offline tracker holds: id, state, config, rows (by step)."""
    runs = sorted(p.name for p in (data_dir / "journal").iterdir())
    assert len(runs) == 1, f"expected one run, the journal holds {runs}"
    run_id = runs[0]
    with trackmux.Tracker(["null"], data_dir=data_dir) as reader:
        rows = reader.get_history(run_id)
        state = reader.get_job_status(run_id)
        config = reader.compare_experiments([run_id])["runs"][0]["config"]
    return {"id": run_id, "state": state, "config": dict(config), "rows": rows}


def by_step(rows: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Rows merged per ``_step`` (W&B shows one row per step), without ``_`` columns."""
    merged: dict[int, dict[str, Any]] = {}
    for row in rows:
        values = {k: v for k, v in row.items() if not k.startswith("_")}
        merged.setdefault(int(row["_step"]), {}).update(values)
    return merged


def wandb_run(fake: FakeWandB, run_id: str) -> dict[str, Any]:
    """What the fake W&B holds for a run: state, config (unwrapped), rows, artifacts."""
    run = fake.run(fake.entity, PROJECT, run_id)
    config = {k: v["value"] for k, v in fake.config(fake.entity, PROJECT, run_id).items()
              if k != "_wandb"}
    artifacts = [a for a in fake.artifacts(fake.entity, PROJECT) if a.run_name == run_id]
    return {"state": run.state, "config": config, "name": run.display_name,
            "rows": fake.history(fake.entity, PROJECT, run_id), "artifacts": artifacts}


def offline_artifacts(data_dir: Path, run_id: str) -> list[dict[str, Any]]:
    """The offline tracker's artifact manifests of a run."""
    folder = data_dir / "trackers" / "null" / "artifacts"
    manifests = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    return [m for m in manifests if m.get("job_id") == run_id]
