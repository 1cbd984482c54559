"""Config that changes after a run started: journaled first, then delivered to every tracker.

* A tracker whose ``update_config`` fails (retryable) gets the config once it recovers, and
  its metrics are not lost meanwhile.
* A process killed after the change was journaled but before any tracker got it: ``trackmux
  sync`` delivers the changed config (to a fake W&B) with the records.
* A tracker without the hook keeps receiving metrics; one warning says the config does not
  reach it.
* Bad changes (not a mapping, a value JSON cannot hold, a finished run) are refused and the
  stored config is unchanged.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import trackmux
from memory_tracker import MemoryTracker
from trackmux._journal import RunJournal
from trackmux_spec import RetryableError, hookimpl
from trackmux_wandb.testing import FakeWandB

pytestmark = pytest.mark.usefixtures("isolated_env")


class ConfigTracker(MemoryTracker):
    """A MemoryTracker that stores configs; ``fail_config`` failures come first."""

    def __init__(self, fail_config: int = 0) -> None:
        super().__init__()
        self.configs: dict[str, dict[str, Any]] = {}
        self.config_calls = 0
        self.fail_config = fail_config

    @hookimpl
    def submit_job(self, session: object, run_id: str, config: Any) -> str:
        self.configs[run_id] = config.hyperparameters()
        return super().submit_job(session, run_id, config)

    @hookimpl
    def update_config(self, session: object, job_id: str, config: Any) -> None:
        self.config_calls += 1
        if self.fail_config:
            self.fail_config -= 1
            raise RetryableError("config endpoint down", retry_after=0.01)
        self.configs[job_id] = config.hyperparameters()


def manager(**trackers: Any) -> Any:
    pm = trackmux.get_plugin_manager()
    for name, plugin in trackers.items():
        pm.register(plugin, name=name)
    return pm


def test_a_failing_update_is_retried_and_no_metric_is_lost(tmp_path: Path) -> None:
    sink = ConfigTracker(fail_config=3)
    pm = manager(sink=sink)
    with trackmux.Tracker(["sink"], data_dir=tmp_path, plugin_manager=pm) as tracker:
        run = tracker.submit_job(extra={"seed": 1})
        tracker.log_metrics(run, {"loss": 1.0}, step=0)
        tracker.update_config(run, {"hidden": 32})
        tracker.log_metrics(run, {"loss": 0.5}, step=1)
        assert tracker.flush(timeout=30).delivered
    assert sink.configs[run] == {"seed": 1, "hidden": 32}
    assert sink.config_calls == 4
    assert sorted(sink.rows[run]) == [0, 1]
    journal = RunJournal.peek(tmp_path / "journal", run)
    assert journal.config_version == 1
    assert journal.tracker_config_version("sink") == 1
    assert journal.meta["config"]["extra"] == {"seed": 1, "hidden": 32}


def test_an_unchanged_value_is_no_new_version(tmp_path: Path) -> None:
    sink = ConfigTracker()
    pm = manager(sink=sink)
    with trackmux.Tracker(["sink"], data_dir=tmp_path, plugin_manager=pm) as tracker:
        run = tracker.submit_job(extra={"seed": 1})
        tracker.update_config(run, {"seed": 1})
        tracker.update_config(run, {"seed": 2})
        tracker.update_config(run, {"seed": 2})
        assert tracker.flush(timeout=30).delivered
    assert RunJournal.peek(tmp_path / "journal", run).config_version == 1
    assert sink.configs[run] == {"seed": 2}


def test_a_killed_process_s_config_change_reaches_wandb_through_sync(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import os, trackmux
        tracker = trackmux.Tracker(["null"], data_dir={str(tmp_path)!r})
        run = tracker.submit_job(project_name="cfg", extra={{"seed": 7}})
        tracker.update_config(run, {{"model_type": "gpt2", "n_layer": 2}})
        for step in range(5):
            tracker.log_metrics(run, {{"loss": 1.0 / (step + 1)}}, step=step)
        tracker.flush()
        print(run, flush=True)
        os._exit(0)   # no finish, no atexit: what a SIGKILL leaves
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, env={**os.environ}, check=True)
    run = done.stdout.strip()
    journal = RunJournal.peek(tmp_path / "journal", run)
    assert journal.config_version == 1
    assert journal.tracker_config_version("wandb") == 0

    fake = FakeWandB()
    report = trackmux.sync([run], tracker="wandb", data_dir=tmp_path,
                           credentials={"api_key": fake.api_key},
                           settings={"wandb": {"transport": fake.transport(),
                                               "base_url": fake.base_url}})
    assert report.ok, report
    stored = fake.runs(project="cfg")
    assert len(stored) == 1
    config = fake.config(stored[0].entity, "cfg", run)
    assert {k: v["value"] for k, v in config.items() if k != "_wandb"} == {
        "seed": 7, "model_type": "gpt2", "n_layer": 2}
    assert RunJournal.peek(tmp_path / "journal", run).tracker_config_version("wandb") == 1


def test_a_tracker_without_the_hook_still_gets_every_metric(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    legacy = MemoryTracker()
    pm = manager(legacy=legacy)
    with caplog.at_level(logging.WARNING, logger="trackmux"):
        with trackmux.Tracker(["legacy"], data_dir=tmp_path, plugin_manager=pm) as tracker:
            run = tracker.submit_job()
            for step in range(3):
                tracker.update_config(run, {"step_seen": step})
                tracker.log_metrics(run, {"loss": 1.0}, step=step)
            assert tracker.flush(timeout=30).delivered
    assert sorted(legacy.rows[run]) == [0, 1, 2]
    warnings = [r for r in caplog.records if "does not implement update_config" in r.message]
    assert len(warnings) == 1


def test_bad_changes_are_refused_and_change_nothing(tmp_path: Path) -> None:
    with trackmux.Tracker(["null"], data_dir=tmp_path) as tracker:
        run = tracker.submit_job(extra={"seed": 1})
        with pytest.raises(TypeError, match="mapping"):
            tracker.update_config(run, [("seed", 2)])  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            tracker.update_config(run, {"model": object()})
        with pytest.raises(trackmux.UnknownJobError):
            tracker.update_config("nosuchrun", {"seed": 2})
        tracker.finish(run)
        with pytest.raises(ValueError, match="finished"):
            tracker.update_config(run, {"seed": 2})
        config = tracker.compare_experiments([run])["runs"][0]["config"]
    assert config == {"seed": 1}
    journal = RunJournal.peek(tmp_path / "journal", run)
    assert journal.config_version == 0
    assert journal.meta["config"]["extra"] == {"seed": 1}


def test_a_silent_rank_validates_the_change_and_sends_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "1")
    with trackmux.Tracker(["null"], data_dir=tmp_path) as tracker:
        run = tracker.submit_job(extra={"seed": 1})
        tracker.update_config(run, {"hidden": 8})
        with pytest.raises(TypeError, match="mapping"):
            tracker.update_config(run, 3)  # type: ignore[arg-type]
    assert not (tmp_path / "journal").exists()
