"""W&B habits: every config and metric form a W&B user passes to ``wandb.init(config=...)``
and ``wandb.log``, logged through the offline tracker and the W&B plugin (against FakeWandB),
read back from both, and compared with what the ``wandb`` SDK would store
(``wandb/util.py`` ``json_friendly_val``) where the fake can tell. No tracker stops.

Where trackmux stores something else than ``wandb``, the expectation says so: a 0-d array is
a number (wandb: its string), a set is sorted (wandb: arbitrary order), a bool metric is 1/0
(wandb: ``true``/``false``; MLflow only takes numbers, and one value goes to every backend).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import enum
import math
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest
import trackmux
from trackmux import TrainingConfig
from trackmux_wandb.testing import FakeWandB

PROJECT = "habits"


class Optimizer(enum.Enum):
    ADAMW = "adamw"


class Precision(enum.StrEnum):
    BF16 = "bf16"


@dataclasses.dataclass
class OptimizerConfig:
    name: str = "adamw"
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: np.float32 = dataclasses.field(default_factory=lambda: np.float32(0.5))


@attrs.define
class DataConfig:
    root: Path = Path("/data/imagenet")
    shuffle: bool = True


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--epochs", type=int, default=0)
    parser.add_argument("--warmup-lr", type=float, default=0.0)
    parser.add_argument("--layers", type=int, nargs="+", default=[64, 64])
    parser.add_argument("--resume", default=None)
    return parser.parse_args([])


#: (value passed, what trackmux stores, what wandb stores) per config key.
CONFIG_FORMS: dict[str, tuple[Any, Any, Any]] = {
    "np_float16": (np.float16(0.5), 0.5, 0.5),
    "np_float32": (np.float32(0.1), float(np.float32(0.1)), float(np.float32(0.1))),
    "np_float64": (np.logspace(-4, -1, 4)[1], 1e-3, 1e-3),
    "np_int8": (np.int8(-3), -3, -3),
    "np_int16": (np.int16(300), 300, 300),
    "np_int32": (np.int32(32), 32, 32),
    "np_int64": (np.int64(2**40), 2**40, 2**40),
    "np_uint8": (np.uint8(255), 255, 255),
    "np_bool": (np.bool_(True), True, True),
    "np_0d_array": (np.array(0.25), 0.25, "0.25"),
    "np_array": (np.arange(4).reshape(2, 2), [[0, 1], [2, 3]], [[0, 1], [2, 3]]),
    "path": (Path("/data/run"), "/data/run", "/data/run"),
    "enum": (Optimizer.ADAMW, "ADAMW", "ADAMW"),
    "str_enum": (Precision.BF16, "BF16", "BF16"),
    "datetime": (datetime.datetime(2024, 5, 1, 12, 30), "2024-05-01T12:30:00",
                 "2024-05-01T12:30:00"),
    "date": (datetime.date(2024, 5, 1), "2024-05-01", "2024-05-01"),
    "namespace": (argparse.Namespace(a=1, b="x"), {"a": 1, "b": "x"}, "Namespace(a=1, b='x')"),
    "dataclass": (OptimizerConfig(), {"name": "adamw", "betas": [0.9, 0.999],
                                      "weight_decay": 0.5},
                  {"name": "adamw", "betas": [0.9, 0.999], "weight_decay": 0.5}),
    "attrs": (DataConfig(), {"root": "/data/imagenet", "shuffle": True},
              "DataConfig(root=PosixPath('/data/imagenet'), shuffle=True)"),
    "tuple": ((1, 2.5, "a"), [1, 2.5, "a"], [1, 2.5, "a"]),
    "set": ({"q_proj", "v_proj", "k_proj"}, ["k_proj", "q_proj", "v_proj"], None),
    "nested": ({"optim": {"lr": np.float64(0.1), "betas": (0.9, 0.95)}, "layers": [[1, 2], []]},
               {"optim": {"lr": 0.1, "betas": [0.9, 0.95]}, "layers": [[1, 2], []]},
               {"optim": {"lr": 0.1, "betas": [0.9, 0.95]}, "layers": [[1, 2], []]}),
    "none": (None, None, None),
    "zero": (0, 0, 0),
    "negative": (-0.5, -0.5, -0.5),
    "function": (math.sqrt, "math.sqrt", "math.sqrt"),
}


def _expected(column: int) -> dict[str, Any]:
    return {key: forms[column] for key, forms in CONFIG_FORMS.items()}


@pytest.fixture
def tracker(tmp_path: Path):
    fake = FakeWandB()
    tracker = trackmux.Tracker(
        ["wandb", "null"], data_dir=tmp_path,
        settings={"wandb": {"transport": fake.transport(), "base_url": fake.base_url}},
    )
    tracker.connect({"wandb": {"api_key": fake.api_key}, "null": {}})
    tracker.fake = fake  # type: ignore[attr-defined]
    yield tracker
    tracker.disconnect()


def _wandb_config(tracker: trackmux.Tracker, run: str) -> dict[str, Any]:
    fake: FakeWandB = tracker.fake  # type: ignore[attr-defined]
    wrapped = fake.config(fake.entity, PROJECT, run)
    return {key: value["value"] for key, value in wrapped.items() if key != "_wandb"}


def _offline_config(tracker: trackmux.Tracker, run: str) -> dict[str, Any]:
    (summary,) = tracker.compare_experiments([run], tracker="null")["runs"]
    return summary["config"]


def _no_tracker_stopped(tracker: trackmux.Tracker) -> None:
    report = tracker.flush(timeout=30)
    assert report.delivered, report
    assert all(status.state != "failed" for status in report.trackers), report


def test_every_config_form_is_stored_by_both_trackers(tracker: trackmux.Tracker) -> None:
    config = {key: forms[0] for key, forms in CONFIG_FORMS.items()}
    run = tracker.submit_job(config, project_name=PROJECT)
    _no_tracker_stopped(tracker)
    assert _offline_config(tracker, run) == _expected(1)
    stored = _wandb_config(tracker, run)
    assert stored == _expected(1)
    wandb_would = _expected(2)
    same_as_wandb = [key for key in CONFIG_FORMS
                     if key != "set" and stored[key] == wandb_would[key]]
    # the forms where wandb loses information (a string instead of the value, sets unordered)
    assert sorted(set(CONFIG_FORMS) - set(same_as_wandb)) == [
        "attrs", "namespace", "np_0d_array", "set"]


def test_vars_of_argparse_args_with_name_and_tags(tracker: trackmux.Tracker) -> None:
    run = tracker.submit_job(vars(_args()), name="run-3", tags=["sweep"],
                             project_name=PROJECT, momentum=0.9)
    _no_tracker_stopped(tracker)
    fake: FakeWandB = tracker.fake  # type: ignore[attr-defined]
    stored = fake.run(fake.entity, PROJECT, run)
    assert stored.display_name == "run-3" and stored.tags == ["sweep"]
    expected = {"lr": 3e-4, "epochs": 0, "warmup_lr": 0.0, "layers": [64, 64], "resume": None,
                "momentum": 0.9}
    assert _wandb_config(tracker, run) == expected
    assert _offline_config(tracker, run) == expected


@pytest.mark.parametrize("config", [
    _args(), OptimizerConfig(), DataConfig(), {"lr": np.float32(0.5)},
], ids=["namespace", "dataclass", "attrs", "dict"])
def test_an_object_is_the_whole_config_as_wandb_init_takes_it(
        tracker: trackmux.Tracker, config: Any) -> None:
    run = tracker.submit_job(config, project_name=PROJECT)
    _no_tracker_stopped(tracker)
    stored = _wandb_config(tracker, run)
    assert stored
    assert stored == _offline_config(tracker, run)
    plain = (int, float, str, bool, list, type(None))
    assert all(type(value) in plain for value in stored.values())


def test_zero_and_negative_hyperparameters_are_accepted(tracker: trackmux.Tracker) -> None:
    run = tracker.submit_job(project_name=PROJECT, learning_rate=0, alpha=-16.0, num_epochs=0,
                             rank=0, dropout=0.0, warmup_steps=0)
    _no_tracker_stopped(tracker)
    expected = {"learning_rate": 0, "alpha": -16.0, "num_epochs": 0, "rank": 0,
                "dropout": 0.0, "warmup_steps": 0}
    assert _wandb_config(tracker, run) == expected
    assert _offline_config(tracker, run) == expected


def test_typed_fields_take_numpy_values_as_plain_numbers(tracker: trackmux.Tracker) -> None:
    for lr in np.logspace(-4, -1, 4):
        config = TrainingConfig.from_any(learning_rate=lr, batch_size=np.int64(32),
                                         rank=np.array(8), dropout=np.float32(0.5))
        assert type(config.learning_rate) is float and config.learning_rate == float(lr)
        assert type(config.batch_size) is int and type(config.rank) is int
    run = tracker.submit_job(project_name=PROJECT, learning_rate=np.float64(1e-3),
                             batch_size=np.int32(16))
    _no_tracker_stopped(tracker)
    assert _wandb_config(tracker, run) == {"learning_rate": 1e-3, "batch_size": 16}


def test_nan_in_a_config_is_null_on_wandb_as_the_sdk_sends_it(
        tracker: trackmux.Tracker) -> None:
    run = tracker.submit_job(project_name=PROJECT, best=np.float64("nan"), cap=math.inf)
    _no_tracker_stopped(tracker)
    assert _wandb_config(tracker, run) == {"best": None, "cap": math.inf}
    offline = _offline_config(tracker, run)
    assert math.isnan(offline["best"]) and offline["cap"] == math.inf


class Model:
    """Stands in for an ``nn.Module``: nothing a config can hold."""


@pytest.mark.parametrize(("fields", "mentions"), [
    ({"model": Model()}, ["'model'", "test_wandb_habits.Model"]),
    ({"optim": {"betas": [0.9, Model()]}}, ["'optim.betas[1]'", "Model"]),
    ({"z": 1j}, ["'z'", "complex"]),
    ({"blob": b"\xff\xfe"}, ["'blob'", "UTF-8"]),
    ({"table": {(1, 2): 3}}, ["'table'", "(1, 2)"]),
    ({"learning_rate": "3e-4"}, ["learning_rate", "'3e-4'"]),
    ({"batch_size": np.float64(32.5)}, ["batch_size", "32.5"]),
    ({"tags": ["ok", 3]}, ["tags", "3"]),
])
def test_what_no_config_can_hold_is_refused_at_the_call(
        tracker: trackmux.Tracker, fields: dict[str, Any], mentions: list[str]) -> None:
    with pytest.raises((TypeError, ValueError)) as caught:
        tracker.submit_job(project_name=PROJECT, **fields)
    for text in mentions:
        assert text in str(caught.value)
    run = tracker.submit_job(project_name=PROJECT, learning_rate=0.1)  # the tracker goes on
    _no_tracker_stopped(tracker)
    assert _wandb_config(tracker, run) == {"learning_rate": 0.1}


def test_a_config_that_contains_itself_is_refused(tracker: trackmux.Tracker) -> None:
    loop: dict[str, Any] = {"a": 1}
    loop["self"] = loop
    with pytest.raises(TypeError, match=r"'cfg\.self' contains itself"):
        tracker.submit_job(cfg=loop)


#: (value logged, what both trackers store, what wandb stores).
METRIC_FORMS: dict[str, tuple[Any, Any, Any]] = {
    "is_best": (True, 1, True),
    "np_bool": (np.bool_(False), 0, False),
    "np_float16": (np.float16(0.5), 0.5, 0.5),
    "np_float32": (np.float32(0.25), 0.25, 0.25),
    "np_float64": (np.float64(1e-3), 1e-3, 1e-3),
    "np_int64": (np.int64(7), 7, 7),
    "np_uint8": (np.uint8(200), 200, 200),
    "np_0d_array": (np.array(1.5), 1.5, 1.5),
    "np_1_element": (np.array([2.5]), 2.5, 2.5),
    "python": (0.125, 0.125, 0.125),
}


def test_every_metric_form_is_stored_by_both_trackers(tracker: trackmux.Tracker) -> None:
    run = tracker.submit_job(project_name=PROJECT)
    tracker.log_metrics(run, {key: forms[0] for key, forms in METRIC_FORMS.items()}, step=0)
    tracker.log_metrics(run, {"train": {"loss": np.float32(0.5), "done": np.bool_(True)}}, step=1)
    _no_tracker_stopped(tracker)
    fake: FakeWandB = tracker.fake  # type: ignore[attr-defined]
    for rows in (fake.history(fake.entity, PROJECT, run), tracker.get_history(run, tracker="null")):
        first, second = rows
        for key, (_, stored, wandb_would) in METRIC_FORMS.items():
            assert first[key] == stored and type(first[key]) is type(stored), key
            if not isinstance(wandb_would, bool):
                assert first[key] == wandb_would
        assert second["train/loss"] == 0.5 and second["train/done"] == 1


@pytest.mark.parametrize(("value", "mentions"), [
    ("high", ["'m'", "'high'"]),
    (None, ["'m'", "None"]),
    (np.str_("x"), ["'m'", "'x'"]),
    (np.array([1.0, 2.0]), ["'m'", "scalar"]),
    (np.datetime64("2024-01-01"), ["'m'", "datetime"]),
    (1j, ["'m'", "complex"]),
])
def test_non_numeric_metrics_still_raise_naming_the_key(
        tracker: trackmux.Tracker, value: Any, mentions: list[str]) -> None:
    run = tracker.submit_job(project_name=PROJECT)
    with pytest.raises(TypeError) as caught:
        tracker.log_metrics(run, {"m": value})
    for text in mentions:
        assert text in str(caught.value)
    tracker.log_metrics(run, {"m": 1.0})
    _no_tracker_stopped(tracker)
    assert [row["m"] for row in tracker.get_history(run, tracker="null")] == [1.0]


def test_torch_tensors_as_config_and_metrics(tracker: trackmux.Tracker) -> None:
    """Runs where torch is installed (not a test dependency: see the integrations tests'
    framework venv). A "meta" tensor stands in for one on a device that cannot be read."""
    torch = pytest.importorskip("torch")
    run = tracker.submit_job(
        project_name=PROJECT, learning_rate=torch.tensor(0.5), rank=torch.tensor(8),
        scale=torch.tensor(2.0, requires_grad=True), sizes=torch.tensor([1, 2]),
        dtype=torch.bfloat16, device=torch.device("cpu"))
    tracker.log_metrics(run, {"loss": torch.tensor(0.25), "one": torch.tensor([0.5]),
                              "best": torch.tensor(True),
                              "g": torch.tensor(1.0, requires_grad=True)})
    meta = torch.empty((), device="meta")
    with pytest.raises(TypeError, match=r"metric 'm' is not a scalar.*meta"):
        tracker.log_metrics(run, {"m": meta})
    with pytest.raises(TypeError, match=r"'w' holds a value of type torch\.Tensor"):
        tracker.submit_job(w=torch.empty(2, device="meta"))
    with pytest.raises(TypeError, match=r"learning_rate must be a number, got torch\.Tensor"):
        tracker.submit_job(learning_rate=meta)
    with pytest.raises(TypeError, match="metric 'v' is not a scalar"):
        tracker.log_metrics(run, {"v": torch.tensor([1.0, 2.0])})
    _no_tracker_stopped(tracker)
    expected = {"learning_rate": 0.5, "rank": 8, "scale": 2.0, "sizes": [1, 2],
                "dtype": "torch.bfloat16", "device": "cpu"}
    assert _wandb_config(tracker, run) == expected == _offline_config(tracker, run)
    (row,) = tracker.get_history(run, tracker="null")
    assert (row["loss"], row["one"], row["best"], row["g"]) == (0.25, 0.5, 1, 1.0)
