"""``trackmux sync`` interrupted (Ctrl-C) while W&B keeps answering 503: it says what
happened and how to go on, exits 130, and the next sync delivers every row exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import trackmux
from trackmux_wandb.testing import FakeWandB, Status

PROJECT = "interrupted"


def test_an_interrupted_sync_says_how_to_go_on_and_the_next_sends_each_row_once(
        fake: FakeWandB, tmp_path: Path) -> None:
    with trackmux.Tracker(["null"], data_dir=tmp_path) as offline:
        run = offline.submit_job(project_name=PROJECT)
        for step in range(400):
            offline.log_metrics(run, {"loss": 1.0 / (step + 1)}, step=step)
    fake.inject(Status(503), count=10**6, match="file_stream")
    with fake.serve() as url:
        env = {**os.environ, "WANDB_API_KEY": fake.api_key, "WANDB_BASE_URL": url,
               "TRACKMUX_DIR": str(tmp_path)}
        child = subprocess.Popen(
            [sys.executable, "-m", "trackmux", "sync", "--tracker", "wandb", "--all", "--yes"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lines: list[str] = []
        retrying = threading.Event()

        def read() -> None:
            assert child.stderr is not None
            for line in child.stderr:
                lines.append(line)
                if "retrying" in line:
                    retrying.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            assert retrying.wait(60), "".join(lines)
            child.send_signal(signal.SIGINT)
            child.wait(60)
        finally:
            if child.poll() is None:
                child.kill()
        reader.join(10)
        stderr = "".join(lines)
        assert child.returncode == 130, stderr
        assert "Interrupted." in stderr and "sync --tracker wandb" in stderr, stderr
        assert "Traceback" not in stderr, stderr

        fake.clear_faults()
        report = trackmux.sync([run], tracker="wandb", data_dir=tmp_path, timeout=60,
                               credentials={"api_key": fake.api_key},
                               settings={"wandb": {"base_url": url}})
    assert [(r.run_id, r.state) for r in report.runs] == [(run, "synced")]
    assert [row["_step"] for row in fake.history(fake.entity, PROJECT, run)] == list(range(400))
