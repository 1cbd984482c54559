"""The README's Performance table and bench/RESULTS.md's results are generated, not typed.

``bench/compare.py --save`` keeps its raw measurements in ``bench/results.json`` and renders
the blocks between ``<!-- compare:begin -->`` and ``<!-- compare:end -->`` from them
(``bench/compare_report.py``). These tests re-render both blocks from the committed JSON and
compare: a hand edit between the markers, or a JSON changed without re-rendering, fails
here. They also check the verdicts follow the figures, and that ``--load``'s CPU burners
never outlive the benchmark. Nothing is timed; wandb and MLflow are not needed.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import compare_report  # noqa: E402  (bench/ is not a package)


@pytest.fixture(scope="module")
def results() -> dict[str, Any]:
    return compare_report.load_results()


def test_results_json_holds_an_idle_and_a_loaded_run(results: dict[str, Any]) -> None:
    assert set(results) == {"idle", "loaded"}
    assert results["idle"]["burners"]["count"] == 0
    assert results["loaded"]["burners"]["count"] >= 1
    assert "--load" in results["loaded"]["command"]


@pytest.mark.parametrize("path", sorted(compare_report.TARGETS), ids=lambda p: p.name)
def test_the_generated_block_is_what_results_json_renders(
    path: Path, results: dict[str, Any]
) -> None:
    text = path.read_text(encoding="utf-8")
    held = compare_report.block_of(text, path.name)
    expected = compare_report.TARGETS[path](results)
    assert held == expected, (
        f"{path.name} between the compare markers differs from what bench/results.json "
        "renders: run `python bench/compare_report.py` (never edit the block by hand)"
    )


def test_a_hand_edit_between_the_markers_is_detected(results: dict[str, Any]) -> None:
    text = compare_report.README.read_text(encoding="utf-8")
    held = compare_report.block_of(text, "README.md")
    edited = held.replace("| trackmux |", "| trackmux (fast!) |", 1)
    assert edited != held
    assert edited != compare_report.render_readme(results)


def test_replacing_the_block_keeps_everything_outside_the_markers() -> None:
    text = f"intro\n{compare_report.BEGIN}\nold table\n{compare_report.END}\noutro\n"
    new = compare_report.replace_block(text, "new table\n", "X.md")
    assert new == f"intro\n{compare_report.BEGIN}\nnew table\n{compare_report.END}\noutro\n"
    assert compare_report.block_of(new, "X.md") == "new table\n"
    assert compare_report.replace_block(new, "new table\n", "X.md") == new


@pytest.mark.parametrize(
    "text",
    [
        "no markers at all\n",
        f"{compare_report.BEGIN}\nonly the start\n",
        f"{compare_report.BEGIN}\n{compare_report.END}\n{compare_report.BEGIN}\n",
        f"{compare_report.END}\n{compare_report.BEGIN}\n",
    ],
)
def test_missing_repeated_or_reversed_markers_are_refused_naming_the_file(text: str) -> None:
    with pytest.raises(ValueError, match=r"FILE\.md"):
        compare_report.replace_block(text, "x\n", "FILE.md")


def test_storing_a_run_keeps_the_other_one(tmp_path: Path, results: dict[str, Any]) -> None:
    path = tmp_path / "results.json"
    compare_report.store("idle", results["idle"], path)
    compare_report.store("loaded", results["loaded"], path)
    again = copy.deepcopy(results["idle"])
    again["total"] = 1.0
    compare_report.store("idle", again, path)
    stored = json.loads(path.read_text())
    assert stored["idle"]["total"] == 1.0
    assert stored["loaded"] == results["loaded"]
    with pytest.raises(ValueError, match="'busy'"):
        compare_report.store("busy", again, path)


def _verdicts(raw: dict[str, Any]) -> dict[str, bool]:
    return {target: met for _, _, target, _, met in compare_report.targets(raw)}


def _find(verdicts: dict[str, bool], words: str) -> bool:
    (key,) = [k for k in verdicts if words in k]
    return verdicts[key]


def test_verdicts_follow_the_figures(results: dict[str, Any]) -> None:
    raw = copy.deepcopy(results["idle"])
    total = raw["total_cpu"]
    total["cpu"] = [2.9e-6 * total["records"]] * len(total["cpu"])
    raw["runs"]["wandb"]["cpu"] = 2.9e-6 * 61 * raw["runs"]["wandb"]["steps"]
    raw["tail"]["trackmux_gc"]["over_5ms"] = 0
    raw["startup"]["import_wall"] = [0.059] * 3
    verdicts = _verdicts(raw)
    assert _find(verdicts, "≤ 3 µs")
    assert _find(verdicts, "≥ 60x")
    assert _find(verdicts, "no call over 5 ms")
    assert _find(verdicts, "≤ 60 ms")

    total["cpu"] = [3.1e-6 * total["records"]] * len(total["cpu"])
    raw["runs"]["wandb"]["cpu"] = 3.1e-6 * 59 * raw["runs"]["wandb"]["steps"]
    raw["tail"]["trackmux_gc"]["over_5ms"] = 1
    raw["startup"]["import_wall"] = [0.061] * 3
    verdicts = _verdicts(raw)
    assert not _find(verdicts, "≤ 3 µs")
    assert not _find(verdicts, "≥ 60x")
    assert not _find(verdicts, "no call over 5 ms")
    assert not _find(verdicts, "≤ 60 ms")


def test_a_run_without_mlflow_reads_missed_not_a_made_up_figure(
    results: dict[str, Any],
) -> None:
    raw = copy.deepcopy(results["idle"])
    for lib in [k for k in raw["hot"] if k.startswith("mlflow")]:
        del raw["hot"][lib], raw["runs"][lib]
    del raw["imports"]["mlflow"]
    rows = {target: (measured, met) for _, _, target, measured, met in compare_report.targets(raw)}
    (mlflow,) = [v for k, v in rows.items() if "MLflow's synchronous call" in k]
    assert mlflow == ("not measured (`--skip-mlflow`)", False)
    assert "not measured" in compare_report.render_readme({"idle": raw})
    compare_report.render_run(raw)  # renders without the MLflow rows


_BURN_AND_WAIT = """
import os, signal, sys
sys.path.insert(0, {bench!r})
import compare
signal.signal(signal.SIGTERM, compare._terminate)
with compare.Burners(2) as burners:
    print(" ".join(str(p.pid) for p in burners.processes), flush=True)
    signal.pause()
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _gone_within(pids: list[int], seconds: float) -> bool:
    deadline = time.monotonic() + seconds  # a liveness bound, not a measurement
    while time.monotonic() < deadline:
        if not any(_alive(pid) for pid in pids):
            return True
        time.sleep(0.02)
    return False


@pytest.mark.slow
@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT", "SIGKILL"])
def test_load_burners_die_with_the_benchmark(how: str) -> None:
    driver = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_BURN_AND_WAIT.format(bench=str(BENCH)))],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert driver.stdout is not None
        pids = [int(pid) for pid in driver.stdout.readline().split()]
        assert len(pids) == 2 and all(_alive(pid) for pid in pids)
        os.kill(driver.pid, getattr(signal, how))
        driver.wait(timeout=60)
        assert _gone_within(pids, 30), f"burners {pids} outlived the benchmark ({how})"
    finally:
        driver.kill()
        driver.wait()


def _latency(raw: dict[str, Any]) -> list[tuple[str, bool]]:
    return [
        (measured, met)
        for _, _, target, measured, met in compare_report.targets(raw)
        if target.startswith("W&B delivery")
    ]


def test_delivery_latency_verdicts_and_a_run_that_failed_or_skipped_them(
    results: dict[str, Any],
) -> None:
    raw = copy.deepcopy(results["idle"])
    case = {"rows": 600, "p50": 2.5, "p99": 5.9, "max": 6.1}
    raw["latency"] = {
        "seconds": 30,
        "rate": 20,
        "burst_at": 5,
        "healthy": case,
        "burst": dict(case, max=29.9),
    }
    assert [met for _, met in _latency(raw)] == [True, True]
    raw["latency"]["healthy"] = dict(case, p99=6.1)
    raw["latency"]["burst"] = dict(case, max=30.1)
    assert [met for _, met in _latency(raw)] == [False, False]
    raw["latency"]["burst"] = {"error": "599 of 600 rows stored"}
    assert _latency(raw)[1] == ("failed: 599 of 600 rows stored", False)
    assert "failed: 599 of 600 rows stored" in compare_report.render_run(raw)
    raw["latency"] = None
    assert _latency(raw) == [("not measured (`--skip-latency`)", False)] * 2


def test_mlflow_server_verdicts_and_a_run_that_skipped_them(results: dict[str, Any]) -> None:
    raw = copy.deepcopy(results["idle"])
    raw["mlflow_server"] = {
        "rows": 4000,
        "rounds": 3,
        "rows_per_s": {
            "trackmux": [900.0, 1000.0, 1100.0],
            "mlflow-client": [990.0] * 3,
            "raw-1": [1200.0] * 3,
            "raw-2": [1300.0] * 3,
        },
        "server_cpu_per_row": {
            name: [5e-4] * 3 for name in ("trackmux", "mlflow-client", "raw-1", "raw-2")
        },
        "latency": {"seconds": 30, "rate": 20, "rows": 600, "p50": 2.6, "p99": 5.2, "max": 5.3},
    }
    rows = {t[2]: t for t in compare_report.targets(raw)}
    (rate,) = [t for k, t in rows.items() if "MlflowClient.log_batch" in k]
    (delay,) = [t for k, t in rows.items() if k.startswith("MLflow delivery")]
    assert rate[3:] == ("1,000 vs 990 rows/s (1.01x)", True)
    assert delay[4]
    raw["mlflow_server"]["rows_per_s"]["mlflow-client"] = [1001.0] * 3
    raw["mlflow_server"]["latency"]["p99"] = 6.01
    rows = {t[2]: t for t in compare_report.targets(raw)}
    assert not any(t[4] for k, t in rows.items() if "MLflow" in k and t[0] != "6")
    assert "MlflowClient.log_batch`, 200 rows a request | 1,001" in compare_report.render_run(raw)
    raw["mlflow_server"] = None
    skipped = [t for t in compare_report.targets(raw) if "skip-mlflow-server" in t[3]]
    assert len(skipped) == 2 and not any(t[4] for t in skipped)
