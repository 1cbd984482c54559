"""The wrapper plugins of examples/wrapper_plugins.py, on sync and async trackers."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import trackmux
from trackmux_spec import ConnectContext, JobStatus, MetricRecord, TrainingConfig, UnknownJobError

_EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "wrapper_plugins.py"


@pytest.fixture(scope="module")
def wrappers() -> ModuleType:
    spec = importlib.util.spec_from_file_location("wrapper_plugins", _EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["wrapper_plugins"] = module
    spec.loader.exec_module(module)
    return module


class AsyncMemoryTracker:
    """A tracker whose hooks are coroutine functions: results reach wrappers as awaitables."""

    def __init__(self) -> None:
        self.rows: dict[str, list[dict[str, Any]]] = {}
        self.status: dict[str, JobStatus] = {}

    @trackmux.hookimpl
    async def connect(self, credentials: Mapping[str, Any], context: ConnectContext) -> object:
        return self

    @trackmux.hookimpl
    async def disconnect(self, session: object) -> None:
        return None

    @trackmux.hookimpl
    async def submit_job(self, session: object, run_id: str, config: TrainingConfig) -> str:
        self.rows.setdefault(run_id, [])
        self.status.setdefault(run_id, JobStatus.RUNNING)
        return run_id

    @trackmux.hookimpl
    async def log_metrics(self, session: object, job_id: str,
                          records: Sequence[MetricRecord]) -> None:
        rows = self.rows[job_id]
        for record in records:
            if record.seq >= len(rows):
                rows.append({**record.values, "_step": record.step,
                             "_timestamp": record.timestamp})

    @trackmux.hookimpl
    async def finish_job(self, session: object, job_id: str, status: JobStatus) -> None:
        if not self.status[job_id].is_terminal:
            self.status[job_id] = status

    @trackmux.hookimpl
    async def get_job_status(self, session: object, job_id: str) -> JobStatus:
        if job_id not in self.status:
            raise UnknownJobError(job_id)
        return self.status[job_id]

    @trackmux.hookimpl
    def get_run_url(self, session: object, job_id: str) -> str:
        return f"memory://{job_id}"

    @trackmux.hookimpl
    async def get_history(self, session: object, job_id: str) -> list[dict[str, Any]]:
        return list(self.rows[job_id])


def _log_and_read(pm: Any, tracker_name: str, tmp_path: Path,
                  rows: list[dict[str, float]]) -> tuple[str, list[dict[str, Any]]]:
    with trackmux.Tracker([tracker_name], data_dir=tmp_path, plugin_manager=pm,
                          ranks="main") as tracker:
        run = tracker.submit_job(name="wrapped")
        for step, row in enumerate(rows):
            tracker.log_metrics(run, row, step=step)
        assert tracker.flush(timeout=30).delivered
        history = tracker.get_history(run)
    return run, [{k: v for k, v in row.items() if not k.startswith("_")} for row in history]


@pytest.fixture(params=["null", "memory"])
def tracker_setup(request: pytest.FixtureRequest) -> tuple[Any, str]:
    pm = trackmux.get_plugin_manager()
    if request.param == "memory":
        pm.register(AsyncMemoryTracker(), name="memory")
    return pm, request.param


def test_prefix_wrapper_renames_every_metric(wrappers: ModuleType, tracker_setup: Any,
                                             tmp_path: Path) -> None:
    pm, name = tracker_setup
    pm.register(wrappers.PrefixMetricKeys("train/"))
    _, history = _log_and_read(pm, name, tmp_path, [{"loss": 1.0}, {"train/acc": 0.5}])
    assert history == [{"train/loss": 1.0}, {"train/acc": 0.5}]


def test_drop_wrapper_redacts_matching_metrics(wrappers: ModuleType, tracker_setup: Any,
                                               tmp_path: Path) -> None:
    pm, name = tracker_setup
    pm.register(wrappers.DropMetrics(r"^debug/"))
    _, history = _log_and_read(pm, name, tmp_path, [{"loss": 1.0, "debug/grad": 3.0}])
    assert history == [{"loss": 1.0}]


@pytest.mark.parametrize(("rank", "expected"), [(0, 3), (2, 0)])
def test_main_rank_wrapper_drops_metrics_of_other_ranks(
        wrappers: ModuleType, tracker_setup: Any, tmp_path: Path, rank: int,
        expected: int) -> None:
    pm, name = tracker_setup
    pm.register(wrappers.MainRankMetricsOnly(rank=rank))
    _, history = _log_and_read(pm, name, tmp_path, [{"loss": 1.0}] * 3)
    assert len(history) == expected


def test_counter_wrapper_awaits_async_results(wrappers: ModuleType, tracker_setup: Any,
                                              tmp_path: Path) -> None:
    pm, name = tracker_setup
    counter = wrappers.AcknowledgedRecords()
    pm.register(counter)
    run, history = _log_and_read(pm, name, tmp_path, [{"loss": float(i)} for i in range(7)])
    assert len(history) == 7
    assert counter.acknowledged[run] == 7


def test_a_prefix_survives_a_resent_batch(wrappers: ModuleType, tmp_path: Path) -> None:
    """The engine resends the same list after a lost acknowledgement: no double prefix."""
    from trackmux.testing import FaultInjector

    pm = trackmux.get_plugin_manager()
    plan = iter(["after"])
    pm.register(FaultInjector(lambda hook, records: next(plan, None) if records else None,
                              clock=lambda: 0.0))
    pm.register(wrappers.PrefixMetricKeys("train/"))
    _, history = _log_and_read(pm, "null", tmp_path, [{"loss": 1.0}, {"loss": 2.0}])
    assert history == [{"train/loss": 1.0}, {"train/loss": 2.0}]


def test_wrappers_are_listed_as_plugins_not_trackers(wrappers: ModuleType) -> None:
    from trackmux._plugins import describe_plugins

    pm = trackmux.get_plugin_manager()
    pm.register(wrappers.PrefixMetricKeys("x/"), name="prefix")
    described = {p.name: p for p in describe_plugins(pm)}
    assert described["prefix"].is_tracker is False
    assert described["prefix"].hooks == ["log_metrics"]
