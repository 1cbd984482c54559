"""Tests of the ``trackmux`` command line (click's CliRunner, offline, one data dir per test)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trackmux
from click.testing import CliRunner, Result
from trackmux import _cli
from trackmux._journal import RunJournal
from trackmux._runs import config_values, differing_keys, json_safe


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty data dir, with no configuration file or tracker list leaking in."""
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)  # no trackmux.toml / pyproject.toml above a tmp dir
    for var in ("TRACKMUX_TRACKERS", "TRACKMUX_DIR", "WANDB_MODE"):
        monkeypatch.delenv(var, raising=False)
    directory = tmp_path / "data"
    yield directory


def invoke(data_dir: Path, *args: str) -> Result:
    runner = CliRunner(env={"TRACKMUX_DIR": str(data_dir), "COLUMNS": "200"})
    return runner.invoke(_cli.cli, list(args), catch_exceptions=False)


def invoke_json(data_dir: Path, *args: str) -> Any:
    result = invoke(data_dir, *args, "--json")
    assert result.exit_code == 0, result.output

    def strict(constant: str) -> None:
        raise AssertionError(f"not strict JSON: {constant}")

    return json.loads(result.output, parse_constant=strict)


def make_run(data_dir: Path, rows: list[dict[str, Any]], *, finish: bool = True,
             **config: Any) -> str:
    """A run of the offline tracker with one record per row (steps 0, 1, 2...)."""
    with trackmux.Tracker(["null"], data_dir=data_dir) as tracker:
        run = tracker.submit_job(**config)
        for step, row in enumerate(rows):
            tracker.log_metrics(run, row, step=step)
        if finish:
            report = tracker.finish(run)
            assert report.delivered, report
        else:
            tracker.flush()
    return run


# -- plugins ------------------------------------------------------------------------------


def test_plugins_json_lists_null_with_its_distribution_and_hooks(data_dir: Path) -> None:
    plugins = {p["name"]: p for p in invoke_json(data_dir, "plugins")}
    null = plugins["null"]
    assert null["distribution"] == "trackmux"
    assert null["version"] == trackmux.__version__
    assert null["tracker"] is True
    assert {"connect", "submit_job", "log_metrics", "finish_job", "get_run_url"} <= set(
        null["hooks"])


def test_plugins_table(data_dir: Path) -> None:
    result = invoke(data_dir, "plugins")
    assert result.exit_code == 0
    assert "null" in result.output
    assert "trackmux" in result.output
    assert "log_metrics" in result.output


# -- demo ---------------------------------------------------------------------------------


def test_demo_creates_a_run_visible_in_runs_and_show(data_dir: Path) -> None:
    result = invoke(data_dir, "demo", "--steps", "30", "--project", "cli-test")
    assert result.exit_code == 0, result.output
    runs = invoke_json(data_dir, "runs")
    assert len(runs) == 1
    run = runs[0]
    run_id = run["run_id"]
    assert run_id in result.output
    assert f"trackmux show {run_id}" in result.output
    assert f"trackmux compare {run_id}" in result.output
    assert str(data_dir) in result.output
    assert (data_dir / "trackers" / "null" / "runs" / run_id).as_uri() in result.output
    assert run["record_count"] == 30
    assert run["status"] == "finished"
    assert run["project"] == "cli-test"
    assert run["trackers"] == [{"name": "null", "job_id": run_id, "acknowledged": 30,
                                "total": 30, "finished": True, "offline": False,
                                "pending": False}]

    shown = invoke_json(data_dir, "show", run_id)
    assert shown["record_count"] == 30
    assert shown["config"]["project_name"] == "cli-test"
    metrics = shown["metrics"]
    assert {"train/loss", "train/accuracy", "lr", "eval/loss"} <= set(metrics)
    assert metrics["train/loss"]["count"] == 30
    assert metrics["train/loss"]["last_step"] == 29
    assert 0 < metrics["eval/loss"]["count"] < 30
    assert metrics["lr"]["max"] == pytest.approx(3e-4)

    text = invoke(data_dir, "runs").output
    assert run_id in text and "cli-test" in text and "finished" in text
    assert "null 30/30" in text


def test_demo_with_a_tracker_not_installed_lists_the_installed_ones(data_dir: Path) -> None:
    result = invoke(data_dir, "demo", "--steps", "3", "--trackers", "nosuchtracker")
    assert result.exit_code == 1
    assert "tracker 'nosuchtracker' is not installed" in result.output
    assert "null" in result.output
    assert "Traceback" not in result.output


def test_demo_honours_data_dir_option_and_prints_it_in_the_hints(data_dir: Path,
                                                                 tmp_path: Path) -> None:
    other = tmp_path / "other"
    result = invoke(data_dir, "--data-dir", str(other), "demo", "--steps", "2")
    assert result.exit_code == 0, result.output
    assert f"--data-dir {other} show" in result.output
    assert invoke_json(data_dir, "runs") == []
    assert len(invoke_json(data_dir, "--data-dir", str(other), "runs")) == 1


def test_demo_sleeps_little() -> None:
    assert _cli._DEMO_SLEEP_BUDGET <= 1.0


# -- runs ---------------------------------------------------------------------------------


def test_runs_empty(data_dir: Path) -> None:
    assert invoke_json(data_dir, "runs") == []
    result = invoke(data_dir, "runs")
    assert result.exit_code == 0
    assert "No runs" in result.output


def test_runs_newest_last_with_names_and_progress(data_dir: Path) -> None:
    first = make_run(data_dir, [{"loss": 1.0}], name="first", project_name="p")
    second = make_run(data_dir, [{"loss": 1.0}, {"loss": 0.5}], finish=False, name="second")
    runs = invoke_json(data_dir, "runs")
    assert [r["run_id"] for r in runs] == [first, second]
    assert runs[0]["name"] == "first" and runs[0]["project"] == "p"
    assert runs[1]["project"] is None
    # the tracker was closed without finish(): disconnect() marks it finished
    assert runs[1]["status"] == "finished"
    assert runs[1]["record_count"] == 2
    assert runs[1]["trackers"][0]["acknowledged"] == 2


def test_runs_counts_acknowledged_from_the_cursor(data_dir: Path) -> None:
    run = make_run(data_dir, [{"loss": float(i)} for i in range(4)])
    journal = RunJournal.open(data_dir / "journal", run)
    journal.write_cursor("null", 1)  # as if the tracker had acknowledged one record
    journal.write_cursor("wandb", 0)  # a tracker that acknowledged nothing yet
    journal.meta["final_status"] = None
    journal.save_meta()
    journal.close()
    (listed,) = invoke_json(data_dir, "runs")
    assert listed["status"] == "crashed"  # no final state, and no process writes it
    progress = {t["name"]: (t["acknowledged"], t["total"]) for t in listed["trackers"]}
    assert progress == {"null": (1, 4), "wandb": (0, 4)}
    assert "crashed" in invoke(data_dir, "runs").output


# -- show ---------------------------------------------------------------------------------


def test_show_json_structure_and_stats(data_dir: Path) -> None:
    rows = [
        {"loss": 2.0, "acc": 0.1, "tokens": 10},
        {"loss": float("nan"), "acc": 0.5, "tokens": 30},
        {"loss": 0.5, "tokens": 20},
        {"loss": 1.5, "grad": float("inf")},
        {"loss": float("nan")},
    ]
    run = make_run(data_dir, rows, project_name="proj", learning_rate=0.01, rank=4,
                   tags=["a"], extra={"warmup": 10})
    shown = invoke_json(data_dir, "show", run)
    assert set(shown) >= {"run_id", "created", "created_local", "name", "project",
                          "record_count", "status", "trackers", "config", "metrics"}
    assert shown["run_id"] == run
    assert shown["record_count"] == 5
    assert shown["status"] == "finished"
    assert shown["config"] == {"rank": 4, "project_name": "proj", "learning_rate": 0.01,
                               "tags": ["a"], "extra": {"warmup": 10}}
    assert shown["trackers"] == [{"name": "null", "job_id": run, "acknowledged": 5,
                                  "total": 5, "finished": True, "offline": False,
                                  "pending": False}]
    metrics = shown["metrics"]
    assert list(metrics) == ["loss", "acc", "tokens", "grad"]
    assert metrics["loss"] == {"count": 5, "last": "NaN", "last_step": 4, "min": 0.5,
                               "max": 2.0}
    assert metrics["acc"] == {"count": 2, "last": 0.5, "last_step": 1, "min": 0.1, "max": 0.5}
    assert metrics["tokens"] == {"count": 3, "last": 20, "last_step": 2, "min": 10, "max": 30}
    assert metrics["grad"] == {"count": 1, "last": "Infinity", "last_step": 3,
                               "min": "Infinity", "max": "Infinity"}


def test_show_all_nan_metric_has_no_min_max(data_dir: Path) -> None:
    run = make_run(data_dir, [{"x": float("nan")}, {"x": float("nan")}])
    stats = invoke_json(data_dir, "show", run)["metrics"]["x"]
    assert stats == {"count": 2, "last": "NaN", "last_step": 1, "min": None, "max": None}


def test_show_table(data_dir: Path) -> None:
    run = make_run(data_dir, [{"loss": 2.0}, {"loss": 0.25}], project_name="proj",
                   extra={"warmup": 10})
    result = invoke(data_dir, "show", run)
    assert result.exit_code == 0
    out = result.output
    assert f"Run {run}" in out
    assert "proj" in out and "extra.warmup" in out
    assert "base_model" not in out  # unset fields are not shown
    assert "loss" in out and "0.25" in out and "2 " in out


def test_show_draws_a_sparkline_per_metric(data_dir: Path) -> None:
    rows = [{"loss": 8.0 - i, "acc": i / 8} for i in range(8)]
    run = make_run(data_dir, rows)
    out = invoke(data_dir, "show", run).output
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert lines["loss"].rstrip().endswith("█▇▆▅▄▃▂▁")
    assert lines["acc"].rstrip().endswith("▁▂▃▄▅▆▇█")


def test_show_metric_plot_draws_every_metric_of_that_name(data_dir: Path) -> None:
    rows = [{"train/loss": 3.0 - i / 10, "eval/loss": 3.5 - i / 10, "lr": 0.1}
            for i in range(30)]
    run = make_run(data_dir, rows, name="plotted")
    result = invoke(data_dir, "show", run, "--metric", "loss", "--plot")
    assert result.exit_code == 0, result.output
    out = result.output
    assert f"train/loss  ({run}, plotted)" in out and f"eval/loss  ({run}, plotted)" in out
    assert "lr  (" not in out
    assert "\x1b[" not in out  # no colour codes when not writing to a terminal
    assert sum(0x2801 <= ord(ch) <= 0x28FF for ch in out) >= 40  # braille dots: two lines
    assert "min 0.6 at step 29" in out and "max 3.5 at step 0" in out


def test_show_metric_filters_the_json_too(data_dir: Path) -> None:
    run = make_run(data_dir, [{"a/x": 1.0, "b/x": 2.0, "y": 3.0}])
    assert list(invoke_json(data_dir, "show", run, "--metric", "x")["metrics"]) == ["a/x",
                                                                                   "b/x"]
    assert list(invoke_json(data_dir, "show", run, "--metric", "a/x")["metrics"]) == ["a/x"]


def test_show_unknown_metric_names_it_and_lists_the_run_s(data_dir: Path) -> None:
    run = make_run(data_dir, [{"loss": 1.0, "acc": 0.5}])
    result = invoke(data_dir, "show", run, "--metric", "nope", "--plot")
    assert result.exit_code == 1
    assert "no metric 'nope' in this run (its metrics: loss, acc)" in result.output


def test_show_accepts_an_unambiguous_prefix(data_dir: Path) -> None:
    run = make_run(data_dir, [{"loss": 1.0}])
    assert invoke_json(data_dir, "show", run[:4])["run_id"] == run


def test_show_ambiguous_prefix(data_dir: Path) -> None:
    with trackmux.Tracker(["null"], data_dir=data_dir) as tracker:
        tracker.submit_job(run_id="same-1")
        tracker.submit_job(run_id="same-2")
    result = invoke(data_dir, "show", "same")
    assert result.exit_code == 1
    assert "ambiguous" in result.output and "same-1" in result.output


@pytest.mark.parametrize("ref", ["nosuchrun", "../..", "a/b", ""])
def test_show_unknown_run_exits_1_with_a_message(data_dir: Path, ref: str) -> None:
    make_run(data_dir, [{"loss": 1.0}], extra={"secret_looking": "hunter2"})
    result = invoke(data_dir, "show", ref)
    assert result.exit_code == 1
    assert result.output.startswith("Error: ")
    assert repr(ref) in result.output
    assert "Traceback" not in result.output
    assert "hunter2" not in result.output


def test_show_reads_a_live_run_beside_its_writer_without_touching_it(data_dir: Path) -> None:
    """``show`` of a run another Tracker is writing right now: it sees what is committed,
    changes no file, and the writer goes on undisturbed."""
    with trackmux.Tracker(["null"], data_dir=data_dir) as tracker:
        run = tracker.submit_job()
        for step in range(3):
            tracker.log_metrics(run, {"loss": float(step)}, step=step)
        tracker.flush()
        files = sorted((data_dir / "journal" / run).iterdir())
        before = {path.name: (path.stat().st_size, path.stat().st_mtime_ns) for path in files}
        shown = invoke_json(data_dir, "show", run)
        assert shown["record_count"] == 3
        assert shown["metrics"]["loss"]["last"] == 2.0
        after = {path.name: (path.stat().st_size, path.stat().st_mtime_ns) for path in files}
        assert after == before
        tracker.log_metrics(run, {"loss": 9.0}, step=3)
        tracker.flush()
        assert invoke_json(data_dir, "show", run)["record_count"] == 4


# -- compare ------------------------------------------------------------------------------


def test_compare_shows_only_differing_config(data_dir: Path) -> None:
    a = make_run(data_dir, [{"loss": 3.0}, {"loss": 1.0}], project_name="same",
                 learning_rate=0.1, rank=8, extra={"warmup": 10, "seed": 1})
    b = make_run(data_dir, [{"loss": 2.0}, {"loss": float("nan")}, {"acc": 0.9}],
                 project_name="same", learning_rate=0.2, rank=8, extra={"seed": 1})
    data = invoke_json(data_dir, "compare", a, b)
    assert [r["run_id"] for r in data["runs"]] == [a, b]
    assert data["config"] == {
        "learning_rate": {a: 0.1, b: 0.2},
        "extra.warmup": {a: 10, b: None},
    }
    assert data["metrics"]["loss"][a] == {"count": 2, "last": 1.0, "last_step": 1,
                                          "min": 1.0, "max": 3.0}
    assert data["metrics"]["loss"][b] == {"count": 2, "last": "NaN", "last_step": 1,
                                          "min": 2.0, "max": 2.0}
    assert data["metrics"]["acc"] == {a: None, b: {"count": 1, "last": 0.9, "last_step": 2,
                                                   "min": 0.9, "max": 0.9}}

    out = invoke(data_dir, "compare", a, b).output
    assert "learning_rate" in out and "extra.warmup" in out and "(unset)" in out
    assert "project_name" not in out and "rank" not in out and "extra.seed" not in out
    assert "loss" in out and "acc" in out


def test_compare_identical_configs(data_dir: Path) -> None:
    a = make_run(data_dir, [{"loss": 1.0}], rank=2)
    b = make_run(data_dir, [{"loss": 2.0}], rank=2)
    assert invoke_json(data_dir, "compare", a, b)["config"] == {}
    assert "same config" in invoke(data_dir, "compare", a, b).output


def test_compare_needs_two_known_runs(data_dir: Path) -> None:
    a = make_run(data_dir, [{"loss": 1.0}])
    result = invoke(data_dir, "compare", a, "nosuchrun")
    assert result.exit_code == 1
    assert "nosuchrun" in result.output
    result = invoke(data_dir, "compare", a, a)
    assert result.exit_code == 1
    assert "two" in result.output
    assert invoke(data_dir, "compare").exit_code == 2  # usage error


# -- helpers ------------------------------------------------------------------------------


def test_config_values_and_differing_keys() -> None:
    a = config_values({"rank": 4, "alpha": None, "tags": [], "extra": {"x": 1, "y": [1]}})
    assert a == {"rank": 4, "extra.x": 1, "extra.y": [1]}
    b = config_values({"rank": 4.0, "extra": {"x": 2, "y": [1]}})
    assert differing_keys([a, b]) == ["extra.x"]
    assert differing_keys([a, {"rank": 4}]) == ["extra.x", "extra.y"]
    assert differing_keys([{"r": float("nan")}, {"r": float("nan")}]) == []
    assert differing_keys([{"f": True}, {"f": 1}]) == ["f"]


def test_json_safe() -> None:
    assert json_safe({"a": [math.nan, math.inf, -math.inf, 1.5]}) == {
        "a": ["NaN", "Infinity", "-Infinity", 1.5]}


def test_import_trackmux_does_not_import_the_cli() -> None:
    code = "import sys, trackmux; print('trackmux._cli' in sys.modules, 'click' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.split() == ["False", "False"]


def test_python_dash_m_trackmux_is_the_command(data_dir: Path) -> None:
    """``python -m trackmux`` works where the ``trackmux`` script is not on PATH."""
    make_run(data_dir, [{"loss": 0.5}])
    done = subprocess.run([sys.executable, "-m", "trackmux", "--data-dir", str(data_dir),
                           "runs", "--json"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)) == 1
