"""Distributed training: only the main rank sends by default; ``ranks="all"`` gives each its run."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import trackmux
from trackmux import JobStatus, TrainingConfig, load_settings
from trackmux._ranks import RankPolicy, detect_rank, rank_policy

_DISTRIBUTED = ("RANK", "LOCAL_RANK", "SLURM_PROCID", "OMPI_COMM_WORLD_RANK", "PMI_RANK",
                "WORLD_SIZE", "TRACKMUX_RANKS", "TRACKMUX_GROUP", "TORCHELASTIC_RUN_ID",
                "SLURM_JOB_ID", "TRACKMUX_TRACKERS", "TRACKMUX_DIR")


@pytest.fixture(autouse=True)
def _no_launcher_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in _DISTRIBUTED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize(("environ", "rank"), [
    ({}, None),
    ({"RANK": "3"}, 3),
    ({"RANK": "0", "LOCAL_RANK": "2"}, 0),
    ({"LOCAL_RANK": "2", "SLURM_PROCID": "7"}, 2),
    ({"SLURM_PROCID": "7"}, 7),
    ({"OMPI_COMM_WORLD_RANK": "5"}, 5),
    ({"PMI_RANK": "1"}, 1),
    ({"RANK": " ", "PMI_RANK": "4"}, 4),
])
def test_rank_comes_from_the_first_launcher_variable_set(environ: dict[str, str],
                                                         rank: int | None) -> None:
    assert detect_rank(environ) == rank


def test_a_malformed_rank_is_an_error_naming_the_variable() -> None:
    with pytest.raises(ValueError, match="SLURM_PROCID='x' is not a process rank"):
        detect_rank({"SLURM_PROCID": "x"})


def test_only_non_main_ranks_in_main_mode_are_silent() -> None:
    assert not rank_policy("main", {}).silent
    assert not rank_policy("main", {"RANK": "0"}).silent
    assert rank_policy("main", {"RANK": "1"}).silent
    assert not rank_policy("all", {"RANK": "1"}).silent


def test_ranks_mode_precedence_argument_environment_file(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "trackmux.toml").write_text('ranks = "all"\n')
    assert load_settings(cwd=project, environ={}).ranks == "all"
    assert load_settings(cwd=project, environ={"TRACKMUX_RANKS": "main"}).ranks == "main"
    assert load_settings(ranks="all", cwd=project, environ={"TRACKMUX_RANKS": "main"}).ranks \
        == "all"
    assert load_settings(cwd=tmp_path, environ={}).ranks == "main"
    with pytest.raises(ValueError, match="ranks in TRACKMUX_RANKS must be 'main' or 'all'"):
        load_settings(environ={"TRACKMUX_RANKS": "some"})


def test_all_mode_names_groups_and_tags_each_rank_run() -> None:
    policy = RankPolicy("all", 2, "job42")
    config, run_id = policy.adapt(TrainingConfig(name="sft", tags=["a"]), "myrun")
    assert (config.name, config.group, config.tags, run_id) == \
        ("sft-rank-2", "job42", ("a", "rank:2"), "myrun-rank-2")
    config, run_id = policy.adapt(TrainingConfig(group="mine"), None)
    assert (config.name, config.group, run_id) == ("rank-2", "mine", None)


def test_a_non_main_rank_validates_but_creates_and_sends_nothing(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RANK", "1")
    data = tmp_path / "data"
    tracker = trackmux.Tracker(["null"], data_dir=data)
    run = tracker.submit_job(name="silent", learning_rate=0.1)
    tracker.log_metrics(run, {"loss": 1.0}, step=0)
    with pytest.raises(TypeError):
        tracker.log_metrics(run, {"loss": "high"})
    with pytest.raises(ValueError, match="step"):
        tracker.log_metrics(run, {"loss": 1.0}, step=-1)
    with pytest.raises(trackmux.UnknownJobError):
        tracker.log_metrics("other", {"loss": 1.0})
    assert tracker.get_job_status(run) == JobStatus.RUNNING
    assert tracker.get_history(run) == []
    assert tracker.get_run_url(run) == ""
    assert tracker.compare_experiments([run]) == {"runs": [], "url": None}
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"w")
    assert tracker.upload_artifact(weights, job_id=run) == ""
    with pytest.raises(FileNotFoundError):
        tracker.upload_artifact(tmp_path / "missing", job_id=run)
    with pytest.raises(RuntimeError, match="not available on rank 1"):
        tracker.download_artifact("anything", tmp_path / "out")
    assert tracker.finish(run, exit_code=1).delivered
    assert tracker.get_job_status(run) == JobStatus.FAILED
    assert tracker.disconnect().delivered
    assert not data.exists()


def test_a_non_main_rank_is_silent_through_the_async_api(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SLURM_PROCID", "3")

    async def main() -> None:
        async with trackmux.AsyncTracker(["null"], data_dir=tmp_path / "data") as tracker:
            run = await tracker.submit_job(name="silent")
            await tracker.log_metrics(run, {"loss": 0.5})
            assert (await tracker.flush()).delivered
            assert await tracker.get_history(run) == []

    asyncio.run(main())
    assert not (tmp_path / "data").exists()


_SCRIPT = textwrap.dedent("""
    import os
    import trackmux

    rank = int(os.environ["RANK"])
    with trackmux.Tracker(batch_interval=0.1) as tracker:
        run = tracker.submit_job(name="train", learning_rate=0.1)
        for step in range(20):
            tracker.log_metrics(run, {"rank": rank, "i": step}, step=step)
""")


def _launch(tmp_path: Path, mode: str) -> Path:
    """Run the script as 4 ranks sharing one data directory; return that directory."""
    data = tmp_path / f"data-{mode}"
    script = tmp_path / "train.py"
    script.write_text(_SCRIPT)
    base = {key: value for key, value in os.environ.items()
            if key not in _DISTRIBUTED}
    procs = [
        subprocess.Popen(
            [sys.executable, str(script)], cwd=tmp_path,
            env={**base, "RANK": str(rank), "WORLD_SIZE": "4", "TRACKMUX_DIR": str(data),
                 "TRACKMUX_TRACKERS": "null", "TRACKMUX_RANKS": mode,
                 "TORCHELASTIC_RUN_ID": "job42"},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for rank in range(4)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, out + err
    return data


def _runs(data: Path) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Every run the null tracker holds in ``data``: its metadata and its history."""
    runs = []
    with trackmux.Tracker(["null"], data_dir=data) as reader:
        for run_dir in sorted((data / "trackers" / "null" / "runs").iterdir()):
            meta = json.loads((run_dir / "meta.json").read_text())
            runs.append((meta, reader.get_history(run_dir.name)))
    return runs


@pytest.mark.slow
def test_four_ranks_by_default_make_one_run_with_rank_0_rows(tmp_path: Path) -> None:
    data = _launch(tmp_path, "main")
    runs = _runs(data)
    assert len(runs) == 1
    meta, rows = runs[0]
    assert meta["name"] == "train" and meta["state"] == "finished"
    assert [(row["rank"], row["i"]) for row in rows] == [(0, step) for step in range(20)]
    assert len(list((data / "journal").iterdir())) == 1


@pytest.mark.slow
def test_four_ranks_in_all_mode_make_one_grouped_run_each(tmp_path: Path) -> None:
    runs = _runs(_launch(tmp_path, "all"))
    assert len(runs) == 4
    by_name = {meta["name"]: (meta, rows) for meta, rows in runs}
    assert sorted(by_name) == [f"train-rank-{rank}" for rank in range(4)]
    for rank in range(4):
        meta, rows = by_name[f"train-rank-{rank}"]
        config = meta["config"]
        assert config["group"] == "job42"
        assert f"rank:{rank}" in config["tags"]
        assert [(row["rank"], row["i"]) for row in rows] == [(rank, step) for step in range(20)]
