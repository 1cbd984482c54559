"""The module-level API: trackmux.init / log / log_artifact / finish and the current run.

Failure paths first: logging without a run, bad values, a script that dies of an uncaught
exception (the run is failed), one that just ends (finished, everything delivered), a
forked child; then the wandb-shaped happy paths, read back row by row from the offline
tracker.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trackmux
from trackmux import JobStatus
from trackmux._journal import RunJournal

pytestmark = pytest.mark.usefixtures("isolated_env")


@pytest.fixture(autouse=True)
def no_current_run() -> Iterator[None]:
    yield
    trackmux.finish()


def stored(data_dir: Path, run_id: str) -> dict[str, Any]:
    """What the offline tracker holds for a run: rows, state and config."""
    with trackmux.Tracker(["null"], data_dir=data_dir) as reader:
        reader.connect()
        rows = reader.get_history(run_id)
        state = reader.get_job_status(run_id)
        config = reader.compare_experiments([run_id])["runs"][0]["config"]
        reader._engine.runs.clear()  # read-only: finish nothing on exit
    return {"rows": [{k: v for k, v in row.items() if k != "_timestamp"} for row in rows],
            "state": state, "config": config}


def run_script(body: str, data_dir: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TRACKMUX_DIR": str(data_dir), "TRACKMUX_TRACKERS": "null"}
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(body)], capture_output=True,
                          text=True, timeout=120, env=env, check=False)
    if check:
        assert done.returncode == 0, done.stderr
    return done


# -- failure paths ---------------------------------------------------------------------------


def test_logging_without_a_run_says_to_call_init() -> None:
    assert trackmux.run is None and trackmux.config is None
    with pytest.raises(RuntimeError, match=r"trackmux.init\(\)"):
        trackmux.log({"loss": 1.0})
    with pytest.raises(RuntimeError, match=r"trackmux.init\(\)"):
        trackmux.log_artifact(__file__)
    assert not trackmux.finish().trackers


def test_a_rejected_call_logs_nothing_and_keeps_what_was_logged(tmp_path: Path) -> None:
    run = trackmux.init(project="p", trackers="null", dir=tmp_path)
    trackmux.log({"loss": 1.0}, step=0)
    with pytest.raises(TypeError, match="'note'"):
        trackmux.log({"loss": 2.0, "note": "diverging"}, step=1)
    with pytest.raises(TypeError, match="mapping"):
        run.config.update(["not", "a", "mapping"])
    trackmux.log({"loss": 3.0}, step=1)
    assert dict(run.summary) == {"loss": 3.0}
    trackmux.finish()
    assert stored(tmp_path, run.id)["rows"] == [{"loss": 1.0, "_step": 0},
                                                {"loss": 3.0, "_step": 1}]


def test_an_uncaught_exception_fails_the_run_and_keeps_its_rows(tmp_path: Path) -> None:
    done = run_script("""
        import trackmux
        run = trackmux.init(project="p", config={"lr": 0.1})
        print(run.id, flush=True)
        for step in range(3):
            trackmux.log({"loss": 1.0 / (step + 1)}, step=step)
        raise RuntimeError("training diverged")
    """, tmp_path, check=False)
    assert done.returncode == 1 and "training diverged" in done.stderr
    result = stored(tmp_path, done.stdout.strip())
    assert result["state"] == JobStatus.FAILED
    assert [row["_step"] for row in result["rows"]] == [0, 1, 2]


def test_a_script_that_just_ends_finishes_its_run_with_every_row(tmp_path: Path) -> None:
    done = run_script("""
        import trackmux
        run = trackmux.init(project="p")
        print(run.id, flush=True)
        for step in range(500):
            trackmux.log({"loss": 1.0 / (step + 1)})
    """, tmp_path)
    result = stored(tmp_path, done.stdout.strip())
    assert result["state"] == JobStatus.FINISHED
    assert [row["_step"] for row in result["rows"]] == list(range(500))


def test_a_forked_child_does_not_see_or_end_the_parent_s_run(tmp_path: Path) -> None:
    done = run_script("""
        import os, sys, trackmux
        run = trackmux.init(project="p")
        trackmux.log({"loss": 1.0}, step=0)
        pid = os.fork()
        if pid == 0:  # ends through sys.exit: the exit hooks run in the child too
            ok = trackmux.run is None
            try:
                trackmux.log({"loss": 99.0}, step=1)
            except RuntimeError as exc:  # says whose the run is and what to do
                ok = ok and f"run {run.id!r} belongs to the parent process" in str(exc)
                sys.exit(0 if ok and "trackmux.init() here" in str(exc) else 3)
            sys.exit(4)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, status
        trackmux.log({"loss": 2.0}, step=1)
        print(run.id, flush=True)
    """, tmp_path)
    result = stored(tmp_path, done.stdout.strip())
    assert result["state"] == JobStatus.FINISHED
    assert result["rows"] == [{"loss": 1.0, "_step": 0}, {"loss": 2.0, "_step": 1}]


def test_an_artifact_logged_just_before_the_script_ends_reaches_wandb(tmp_path: Path) -> None:
    # delivered by the exit hook, after interpreter shutdown began: no executor may be used
    from trackmux_wandb.testing import FakeWandB

    fake = FakeWandB()
    (tmp_path / "weights.bin").write_bytes(b"\x02" * 4096)
    with fake.serve() as url:
        done = subprocess.run([sys.executable, "-c", textwrap.dedent("""
            import trackmux
            run = trackmux.init(project="p", config={"lr": 0.1})
            trackmux.log({"loss": 1.0})
            trackmux.log_artifact("weights.bin", name="weights", type="model")
            print(run.id, flush=True)
        """)], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
            env={**os.environ, "TRACKMUX_DIR": str(tmp_path / "data"),
                 "TRACKMUX_TRACKERS": "wandb", "WANDB_BASE_URL": url,
                 "WANDB_API_KEY": fake.api_key})
    assert done.returncode == 0, done.stderr
    assert "refused" not in done.stderr and "not yet delivered" not in done.stderr, done.stderr
    run_id = done.stdout.strip()
    assert fake.run(fake.entity, "p", run_id).state == "finished"
    assert [a.collection for a in fake.artifacts(fake.entity, "p")] == ["weights"]


def test_config_values_change_only_when_allowed(tmp_path: Path) -> None:
    run = trackmux.init(project="p", config={"lr": 0.1}, trackers="null", dir=tmp_path)
    with pytest.raises(ValueError, match=r"'lr' would change from 0\.1 to 0\.2"):
        run.config.update({"lr": 0.2})
    with pytest.raises(ValueError, match="allow_val_change"):
        run.config.lr = 0.3
    with pytest.raises(TypeError, match="cannot be removed"):
        del run.config["lr"]
    with pytest.raises(TypeError, match="read-only"):
        run.summary["best"] = 1.0  # type: ignore[index]
    run.config.update({"lr": 0.1, "layers": 2})       # same value: fine
    run.config.update({"lr": 0.2}, allow_val_change=True)
    assert dict(run.config) == {"lr": 0.2, "layers": 2}
    trackmux.finish()
    assert stored(tmp_path, run.id)["config"] == {"lr": 0.2, "layers": 2}
    assert RunJournal.peek(tmp_path / "journal", run.id).config_version == 2


def test_resume_must_and_never_check_the_journal(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no run 'abc'"):
        trackmux.init(id="abc", resume="must", trackers="null", dir=tmp_path)
    with pytest.raises(ValueError, match="needs the run's id"):
        trackmux.init(resume="must", trackers="null", dir=tmp_path)
    first = trackmux.init(id="abc", trackers="null", dir=tmp_path)
    trackmux.log({"loss": 1.0}, step=0)
    first.finish()
    with pytest.raises(ValueError, match="already exists"):
        trackmux.init(id="abc", resume="never", trackers="null", dir=tmp_path)
    again = trackmux.init(id="abc", resume="must", trackers="null", dir=tmp_path)
    trackmux.log({"loss": 0.5})
    again.finish()
    assert [r["_step"] for r in stored(tmp_path, "abc")["rows"]] == [0, 1]


# -- happy paths -------------------------------------------------------------------------------


def test_import_trackmux_as_wandb_runs_a_wandb_script(tmp_path: Path) -> None:
    done = run_script("""
        import argparse
        import trackmux as wandb

        args = argparse.Namespace(lr=3e-4, epochs=2)
        with wandb.init(project="mnist", config={"lr": args.lr, "epochs": args.epochs},
                        name="baseline", tags=["cnn"]) as run:
            assert wandb.run is run and wandb.config.lr == 3e-4
            for epoch in range(wandb.config.epochs):
                wandb.log({"train": {"loss": 1.0 / (epoch + 1)}, "epoch": epoch})
                wandb.log({"val_acc": 0.5 + epoch / 10}, commit=False)
            wandb.log({"test_acc": 0.9})
            wandb.config.update({"best_epoch": 1})
            assert wandb.summary["val_acc"] == 0.6
            print(run.id, run.name, run.url, flush=True)
        assert wandb.run is None
    """, tmp_path)
    run_id, name, url = done.stdout.split()
    assert name == "baseline" and url.startswith("file://")
    result = stored(tmp_path, run_id)
    assert result["state"] == JobStatus.FINISHED
    assert result["config"] == {"lr": 3e-4, "epochs": 2, "best_epoch": 1}
    assert result["rows"] == [
        {"train/loss": 1.0, "epoch": 0, "_step": 0},
        {"train/loss": 0.5, "epoch": 1, "val_acc": 0.5, "_step": 1},
        {"val_acc": 0.6, "test_acc": 0.9, "_step": 2},
    ]


def test_config_may_be_a_namespace_a_dataclass_or_a_training_config(tmp_path: Path) -> None:
    import argparse
    import dataclasses

    @dataclasses.dataclass
    class Optim:
        lr: float = 0.1
        betas: tuple[float, float] = (0.9, 0.99)

    run = trackmux.init(trackers="null", dir=tmp_path,
                        config=argparse.Namespace(epochs=3, data=Path("/data/train")))
    run.config.update(Optim())
    run.config.update(trackmux.TrainingConfig(rank=8, extra={"alpha_scale": 2}))
    assert dict(run.config) == {"epochs": 3, "data": "/data/train", "lr": 0.1,
                                "betas": [0.9, 0.99], "rank": 8, "alpha_scale": 2}


def test_works_inside_a_running_event_loop(tmp_path: Path) -> None:
    async def notebook_cell() -> str:
        run = trackmux.init(project="nb", trackers="null", dir=tmp_path, config={"a": 1})
        for step in range(3):
            trackmux.log({"loss": float(step)}, step=step)
            await asyncio.sleep(0)
        run.config.update({"b": 2})
        trackmux.finish()
        return run.id

    run_id = asyncio.run(notebook_cell())
    result = stored(tmp_path, run_id)
    assert [r["loss"] for r in result["rows"]] == [0.0, 1.0, 2.0]
    assert result["config"] == {"a": 1, "b": 2}


def test_one_tracker_per_process_and_reinit_finishes_the_previous_run(tmp_path: Path) -> None:
    first = trackmux.init(project="p", trackers="null", dir=tmp_path)
    trackmux.log({"x": 1.0})
    assert trackmux.init(reinit="return_previous", trackers="null", dir=tmp_path) is first
    second = trackmux.init(project="p", trackers="null", dir=tmp_path)
    assert second.tracker is first.tracker and second.id != first.id
    assert trackmux.run is second
    trackmux.log({"x": 2.0})
    trackmux.finish()
    assert stored(tmp_path, first.id)["state"] == JobStatus.FINISHED
    assert stored(tmp_path, second.id)["rows"] == [{"x": 2.0, "_step": 0}]


def test_log_artifact_stores_the_file_on_the_run(tmp_path: Path) -> None:
    weights = tmp_path / "model.bin"
    weights.write_bytes(b"\x01" * 64)
    run = trackmux.init(project="p", trackers="null", dir=tmp_path / "data")
    artifact = trackmux.log_artifact(weights, name="model", type="model")
    out = tmp_path / "out"
    got = run.tracker.download_artifact(artifact, out)
    assert Path(got).read_bytes() == weights.read_bytes()


def test_a_non_main_rank_validates_and_stores_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "1")
    run = trackmux.init(project="p", trackers="null", dir=tmp_path, config={"lr": 0.1})
    trackmux.log({"loss": 1.0})
    with pytest.raises(TypeError):
        trackmux.log({"loss": "high"})
    run.config.update({"layers": 2})
    assert run.url == ""
    trackmux.finish()
    assert not (tmp_path / "journal").exists()


def test_a_wandb_name_trackmux_does_not_cover_says_so() -> None:
    """A script moved with ``import trackmux as wandb`` that calls ``wandb.watch`` learns
    that trackmux does not cover it and where the list is; an unknown name stays a plain
    AttributeError, and ``hasattr`` keeps working."""
    with pytest.raises(AttributeError, match=r"does not cover wandb\.watch; docs/module-api"):
        trackmux.watch  # noqa: B018
    assert not hasattr(trackmux, "Image")
    with pytest.raises(AttributeError) as caught:
        trackmux.no_such_thing  # noqa: B018
    assert "does not cover" not in str(caught.value)
