"""``trackmux report`` without a browser: which runs, what the page carries, and that it
needs nothing from outside the file."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import trackmux
from _viewer_support import embedded_data, invoke, make_run

pytestmark = pytest.mark.usefixtures("isolated_env")


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def three_runs(data_dir: Path) -> list[str]:
    a = make_run(data_dir, [{"loss": 1.0}], project_name="p1", algorithm="lora",
                 tags=["base"], extra={"seed": 0})
    b = make_run(data_dir, [{"loss": 2.0}], project_name="p1", algorithm="full",
                 tags=["base", "big"], extra={"seed": 1})
    c = make_run(data_dir, [{"loss": 3.0}], project_name="p2", algorithm="lora",
                 tags=["big"], extra={"seed": 0})
    return [a, b, c]


def ids_in(path: Path) -> list[str]:
    return [run["id"] for run in embedded_data(path.read_text())["runs"]]


@pytest.mark.parametrize(("options", "expected"), [
    ((), [0, 1, 2]),
    (("--project", "p1"), [0, 1]),
    (("--where", "algorithm=lora"), [0, 2]),
    (("--where", "algorithm=lora", "--where", "extra.seed=0", "--project", "p2"), [2]),
    (("--tag", "big"), [1, 2]),
    (("--tag", "big", "--tag", "base"), [1]),
    (("--last", "2"), [1, 2]),
    (("--project", "p1", "--last", "1"), [1]),
])
def test_options_choose_the_runs(data_dir: Path, tmp_path: Path, three_runs: list[str],
                                 options: tuple[str, ...], expected: list[int]) -> None:
    out = tmp_path / "r.html"
    result = invoke(data_dir, "report", "-o", str(out), *options)
    assert result.exit_code == 0, result.output
    assert ids_in(out) == [three_runs[i] for i in expected]
    assert f"Wrote {out} ({len(expected)} run" in result.output


def test_named_runs_in_the_given_order_without_duplicates(
        data_dir: Path, tmp_path: Path, three_runs: list[str]) -> None:
    out = tmp_path / "r.html"
    result = invoke(data_dir, "report", three_runs[2], three_runs[0][:5], three_runs[2],
                    "-o", str(out))
    assert result.exit_code == 0, result.output
    assert ids_in(out) == [three_runs[2], three_runs[0]]


@pytest.mark.parametrize(("options", "message"), [
    (("--where", "algorithm"), "--where must be KEY=VALUE (a config key such as "
                               "algorithm=lora or extra.seed=0), got 'algorithm'"),
    (("--project", "nope"), "no run in"),
    (("nosuchrun",), "no run 'nosuchrun'"),
    (("--last", "0"), "Invalid value for '--last'"),
])
def test_bad_selections_say_what_is_wrong_and_write_nothing(
        data_dir: Path, tmp_path: Path, three_runs: list[str], options: tuple[str, ...],
        message: str) -> None:
    out = tmp_path / "r.html"
    result = invoke(data_dir, "report", "-o", str(out), *options)
    assert result.exit_code != 0
    assert message in result.output
    assert not out.exists()


def test_an_unwritable_output_is_a_clear_error(data_dir: Path, tmp_path: Path,
                                               three_runs: list[str]) -> None:
    result = invoke(data_dir, "report", "-o", str(tmp_path / "missing" / "r.html"))
    assert result.exit_code == 1
    assert "cannot write the report to" in result.output


def test_the_page_carries_what_the_runs_hold(data_dir: Path, tmp_path: Path) -> None:
    rows = [{"loss": 2.0, "acc": 0.1}, {"loss": float("nan"), "acc": 0.7},
            {"loss": 0.5, "acc": 0.6}, {"loss": float("inf")}]
    first = make_run(data_dir, rows, name="first", project_name="p", learning_rate=0.1,
                     tags=["t1"], extra={"seed": 1})
    second = make_run(data_dir, rows[:2], name="second", project_name="p",
                      learning_rate=0.2, extra={"seed": 1})
    path = trackmux.report([first, second], tmp_path / "r.html", data_dir=data_dir)
    data = embedded_data(path.read_text())
    assert sorted(data["differing"]) == ["learning_rate", "name", "tags"]
    one, two = data["runs"]
    assert (one["name"], one["status"], one["records"], one["tags"]) == ("first", "finished",
                                                                         4, ["t1"])
    assert (two["name"], two["records"]) == ("second", 2)
    assert one["trackers"] == [{"name": "null", "job_id": first, "acknowledged": 4,
                                "total": 4, "finished": True, "offline": False,
                                "pending": False}]
    assert one["config"]["extra.seed"] == 1
    assert one["duration"] >= 0
    loss, acc = one["metrics"]["loss"], one["metrics"]["acc"]
    assert (loss["step"], loss["v"]) == ([0, 2], [2.0, 0.5])  # non-finite values not drawn
    assert (loss["count"], loss["last"], loss["min"], loss["max"]) == (4, "Infinity", 0.5,
                                                                       "Infinity")
    assert (loss["best_step"], loss["higher_is_better"]) == (2, False)
    assert (acc["best_step"], acc["higher_is_better"], acc["max"]) == (1, True, 0.7)
    assert all(0 <= t < 60 for t in acc["t"])


def test_the_page_loads_nothing_from_anywhere(data_dir: Path, tmp_path: Path) -> None:
    run = make_run(data_dir, [{"loss": 1.0}])
    page = trackmux.report([run], tmp_path / "r.html", data_dir=data_dir).read_text()
    assert not re.search(r"<(script|img|iframe)[^>]*\ssrc=", page)
    assert not re.search(r"<link[^>]*\shref=\"(?!data:)", page)
    assert "@import" not in page and "url(http" not in page
    assert "uPlot" in page and "MIT" in page  # the library and its licence travel along


def test_a_long_run_is_downsampled_keeping_its_extremes(data_dir: Path,
                                                        tmp_path: Path) -> None:
    rows = [{"loss": 1.0 + (step % 7) / 100} for step in range(30_000)]
    rows[12_345] = {"loss": 40.0}
    run = make_run(data_dir, rows)
    path = trackmux.report([run], tmp_path / "r.html", data_dir=data_dir)
    loss = embedded_data(path.read_text())["runs"][0]["metrics"]["loss"]
    assert len(loss["v"]) <= 2 * 1024 + 2
    assert 12_345 in loss["step"] and max(loss["v"]) == 40.0
    assert (loss["count"], loss["max_step"]) == (30_000, 12_345)
    assert path.stat().st_size < 300_000


def test_artifacts_are_listed_with_who_holds_them_and_no_local_path(data_dir: Path,
                                                                   tmp_path: Path) -> None:
    model = tmp_path / "secret-place" / "model.bin"
    model.parent.mkdir()
    model.write_bytes(b"x" * 2048)
    with trackmux.Tracker(["null"], data_dir=data_dir) as tracker:
        run = tracker.submit_job(name="with-artifact")
        tracker.log_metrics(run, {"loss": 1.0}, step=0)
        tracker.upload_artifact(model, {"name": "weights", "type": "model"}, job_id=run)
    page = trackmux.report([run], tmp_path / "r.html", data_dir=data_dir).read_text()
    (artifact,) = embedded_data(page)["runs"][0]["artifacts"]
    assert artifact["name"] == "weights" and artifact["type"] == "model"
    assert (artifact["size"], artifact["files"], artifact["delivered"]) == (2048, 1, ["null"])
    assert "secret-place" not in json.dumps(embedded_data(page))


def test_charts_carry_seven_significant_digits_and_the_summary_exact_values(
        data_dir: Path, tmp_path: Path) -> None:
    run = make_run(data_dir, [{"x": 0.1234567891234, "n": 123456789}])
    page = trackmux.report([run], tmp_path / "r.html", data_dir=data_dir).read_text()
    metrics = embedded_data(page)["runs"][0]["metrics"]
    assert (metrics["x"]["v"], metrics["x"]["last"]) == ([0.1234568], 0.1234567891234)
    assert metrics["n"]["v"] == [123456789]  # integers as logged
