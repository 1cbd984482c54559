"""What log_metrics and friends do with bad input: a clear error naming the key and the
value, or a documented behaviour, and nothing already accepted is lost."""

from __future__ import annotations

import decimal
import fractions
import math
from pathlib import Path

import numpy as np
import pytest
import trackmux
from trackmux import JobStatus, TrackerClosedError, UnknownJobError


class Scalar:
    """Stands in for a numpy/torch scalar: has .item()."""

    def __init__(self, value: float) -> None:
        self.value = value

    def item(self) -> float:
        return self.value


class Tensor:
    """Stands in for a multi-element tensor: .item() raises."""

    def item(self) -> float:
        raise ValueError("only one element tensors can be converted to Python scalars")


class Floaty:
    def __float__(self) -> float:
        return 2.5


@pytest.fixture
def tracker(tmp_path: Path):
    with trackmux.Tracker(["null"], data_dir=tmp_path) as tracker:
        yield tracker


@pytest.fixture
def run(tracker: trackmux.Tracker) -> str:
    return tracker.submit_job(name="bad-input")


@pytest.mark.parametrize(
    ("metrics", "error", "mentions"),
    [
        ({"loss": "high"}, TypeError, ["'loss'", "'high'"]),
        ({"loss": None}, TypeError, ["'loss'", "None"]),
        ({"": 1.0}, ValueError, ["empty"]),
        ({"x" * 251: 1.0}, ValueError, ["251", "250"]),
        ({"_step": 1.0}, ValueError, ["'_step'", "reserved"]),
        ({3: 1.0}, TypeError, ["3"]),
        ({"t": Tensor()}, TypeError, ["'t'", "scalar"]),
        ({"a": np.array([1.0, 2.0])}, TypeError, ["'a'", "scalar"]),
        ({"s": np.str_("fast")}, TypeError, ["'s'", "'fast'"]),
        ({"d": np.datetime64("2024-01-01")}, TypeError, ["'d'", "datetime"]),
        ({"c": 1 + 2j}, TypeError, ["'c'", "(1+2j)"]),
        ({"o": object()}, TypeError, ["'o'", "object"]),
        ({"nested": {"bad": "x"}}, TypeError, ["'nested/bad'"]),
        ({}, ValueError, ["empty"]),
        ([("loss", 1.0)], TypeError, ["mapping"]),
    ],
)
def test_bad_metrics_are_rejected_naming_key_and_value(
        tracker: trackmux.Tracker, run: str, metrics, error, mentions) -> None:
    tracker.log_metrics(run, {"loss": 1.0}, step=0)
    with pytest.raises(error) as caught:
        tracker.log_metrics(run, metrics, step=1)
    for text in mentions:
        assert text in str(caught.value)
    tracker.log_metrics(run, {"loss": 0.5}, step=1)
    tracker.flush()
    assert [row["loss"] for row in tracker.get_history(run)] == [1.0, 0.5]


def test_scalars_nested_dicts_nan_and_infinities_are_accepted(
        tracker: trackmux.Tracker, run: str) -> None:
    tracker.log_metrics(run, {
        "np": Scalar(0.25), "dec": decimal.Decimal("1.5"), "frac": fractions.Fraction(1, 4),
        "floaty": Floaty(), "train": {"loss": 2.0, "deep": {"x": 1}},
        "nan": math.nan, "inf": math.inf, "ninf": -math.inf, "int": 7,
    }, step=0)
    tracker.flush()
    (row,) = tracker.get_history(run)
    assert row["np"] == 0.25 and row["dec"] == 1.5 and row["frac"] == 0.25
    assert row["floaty"] == 2.5 and row["train/loss"] == 2.0 and row["train/deep/x"] == 1
    assert math.isnan(row["nan"]) and row["inf"] == math.inf and row["ninf"] == -math.inf
    assert row["int"] == 7 and type(row["int"]) is int


def test_bools_and_real_numpy_values_are_numbers(tracker: trackmux.Tracker, run: str) -> None:
    tracker.log_metrics(run, {
        "is_best": True, "np_bool": np.bool_(False), "f16": np.float16(0.5),
        "f32": np.float32(0.25), "f64": np.float64(0.125), "i8": np.int8(-3),
        "u64": np.uint64(2**63), "zero_d": np.array(1.5), "one": np.array([[2]]),
    }, step=np.int64(4))
    tracker.flush()
    (row,) = tracker.get_history(run)
    assert row["_step"] == 4
    expected = {"is_best": 1, "np_bool": 0, "f16": 0.5, "f32": 0.25, "f64": 0.125, "i8": -3,
                "u64": 2**63, "zero_d": 1.5, "one": 2}
    assert {key: row[key] for key in expected} == expected
    assert {key: type(row[key]) for key in expected} == {
        key: type(value) for key, value in expected.items()}


def test_the_callers_dict_is_copied(tracker: trackmux.Tracker, run: str) -> None:
    metrics = {"loss": 1.0}
    tracker.log_metrics(run, metrics, step=0)
    metrics["loss"] = 99.0
    tracker.flush()
    assert tracker.get_history(run)[0]["loss"] == 1.0


@pytest.mark.parametrize(("step", "error", "text"), [
    (-1, ValueError, "-1"), (1.5, TypeError, "1.5"), ("3", TypeError, "'3'"),
    (True, TypeError, "True"),
])
def test_bad_steps_are_rejected(tracker: trackmux.Tracker, run: str, step, error, text) -> None:
    with pytest.raises(error, match=text):
        tracker.log_metrics(run, {"loss": 1.0}, step=step)


def test_a_decreasing_step_is_kept_with_one_warning(
        tracker: trackmux.Tracker, run: str, caplog: pytest.LogCaptureFixture) -> None:
    """The reference document's loop restarts step at 0 every epoch: rows are kept in the
    order logged (nothing dropped, training not stopped) and the run warns once."""
    tracker.log_metrics(run, {"loss": 1.0}, step=10)
    tracker.log_metrics(run, {"eval": 2.0}, step=10)
    with caplog.at_level("WARNING", logger="trackmux"):
        tracker.log_metrics(run, {"loss": 0.9}, step=5)
        tracker.log_metrics(run, {"loss": 0.8}, step=2)
    assert caplog.text.count("is less than the current step") == 1
    assert "step 5 is less than the current step 10" in caplog.text
    tracker.log_metrics(run, {"loss": 0.5})  # no step: the last one + 1
    tracker.flush()
    assert [row["_step"] for row in tracker.get_history(run)] == [10, 10, 5, 2, 3]


def test_unknown_job_ids_raise_unknown_job_error(tracker: trackmux.Tracker) -> None:
    with pytest.raises(UnknownJobError, match="nosuch"):
        tracker.log_metrics("nosuch", {"loss": 1.0})
    with pytest.raises(UnknownJobError):
        tracker.get_job_status("nosuch")
    with pytest.raises(UnknownJobError):
        tracker.finish("nosuch")


def test_logging_after_disconnect_raises_tracker_closed(tmp_path: Path) -> None:
    tracker = trackmux.Tracker(["null"], data_dir=tmp_path)
    run = tracker.submit_job()
    tracker.log_metrics(run, {"loss": 1.0})
    tracker.disconnect()
    with pytest.raises(TrackerClosedError):
        tracker.log_metrics(run, {"loss": 2.0})
    with trackmux.Tracker(["null"], data_dir=tmp_path) as again:
        assert len(again.get_history(run)) == 1


def test_logging_after_finish_is_rejected(tracker: trackmux.Tracker, run: str) -> None:
    tracker.log_metrics(run, {"loss": 1.0})
    tracker.finish(run)
    with pytest.raises(ValueError, match="finished"):
        tracker.log_metrics(run, {"loss": 2.0})
    assert tracker.get_job_status(run) == JobStatus.FINISHED


def test_missing_artifact_file_raises_file_not_found(
        tracker: trackmux.Tracker, run: str, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.bin"):
        tracker.upload_artifact(tmp_path / "nope.bin", {"job_id": run})


def test_a_directory_uploads_as_one_artifact(
        tracker: trackmux.Tracker, run: str, tmp_path: Path) -> None:
    folder = tmp_path / "ckpt"
    (folder / "inner").mkdir(parents=True)
    (folder / "a.pt").write_bytes(b"a")
    (folder / "inner" / "b.pt").write_bytes(b"b")
    artifact = tracker.upload_artifact(folder, {"job_id": run, "name": "ckpt", "type": "model"})
    out = tracker.download_artifact(artifact, tmp_path / "out")
    assert (out / "a.pt").read_bytes() == b"a"
    assert (out / "inner" / "b.pt").read_bytes() == b"b"


def test_bad_training_config_names_the_field(tracker: trackmux.Tracker) -> None:
    with pytest.raises(TypeError, match="rank must be an integer, got '16'"):
        tracker.submit_job(rank="16")
    with pytest.raises(ValueError, match="dropout must be in"):
        tracker.submit_job(dropout=1.5)
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        tracker.submit_job(batch_size=0)
    with pytest.raises(TypeError, match="config key 'model' holds a value of type object"):
        tracker.submit_job(model=object())


def test_bad_run_id_is_rejected(tracker: trackmux.Tracker) -> None:
    with pytest.raises(ValueError, match="run_id"):
        tracker.submit_job(run_id="../escape")


@pytest.mark.parametrize("path", ["../escape", "a/../b", "team/ proj/run", "a/b/c/d", "a//b"])
def test_a_bad_run_path_is_rejected_naming_it(tracker: trackmux.Tracker, path: str) -> None:
    with pytest.raises(ValueError, match="is not a run id or a run path"):
        tracker.submit_job(run_id=path)
    assert tracker.submit_job(run_id="ok-run") == "ok-run"  # nothing changed


def test_a_run_path_names_the_project_and_entity(tracker: trackmux.Tracker) -> None:
    run = tracker.submit_job(run_id="team/proj/run01")
    assert run == "run01"
    with pytest.raises(ValueError, match="names project_name 'proj', but the config says 'x'"):
        tracker.submit_job(run_id="team/proj/run02", project_name="x")
