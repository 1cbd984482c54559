"""``trackmux sync --tracker T`` without run names sends only the runs meant for T (their
tracker list named it, or ``WANDB_MODE=offline`` kept them), after showing them and asking;
``--all`` widens it to every run T lacks, ``--dry-run`` sends nothing. ``WANDB_MODE=offline``
says so once, and ``trackmux runs`` shows W&B as pending for those runs."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import trackmux
from click.testing import CliRunner, Result
from trackmux import _api, _cli
from trackmux_wandb.testing import FakeWandB

PROJECT = "selection"

pytestmark = pytest.mark.usefixtures("isolated_env")


def invoke(data_dir: Path, *args: str, env: dict[str, str] | None = None,
           input: str | None = None) -> Result:
    runner = CliRunner(env={"TRACKMUX_DIR": str(data_dir), **(env or {})})
    return runner.invoke(_cli.cli, list(args), input=input, catch_exceptions=False)


def make_run(data_dir: Path, trackers: list[str], rows: int, *, wandb_mode: str = "",
             name: str) -> str:
    with mock.patch.dict(os.environ, {"WANDB_MODE": wandb_mode}):
        tracker = trackmux.Tracker(trackers, data_dir=data_dir)
    with tracker:
        run = tracker.submit_job(project_name=PROJECT, name=name)
        for step in range(rows):
            tracker.log_metrics(run, {"loss": 1.0 / (step + 1)}, step=step)
        assert tracker.finish(run).delivered
    return run


@pytest.fixture
def runs(tmp_path: Path) -> tuple[Path, str, str]:
    """A demo-like run of the offline tracker only, and a WANDB_MODE=offline run."""
    data_dir = tmp_path / "data"
    demo = make_run(data_dir, ["null"], 5, name="demo")
    kept = make_run(data_dir, ["wandb", "null"], 7, wandb_mode="offline", name="kept")
    return data_dir, demo, kept


def test_dry_run_lists_only_the_runs_meant_for_the_tracker(runs) -> None:
    data_dir, demo, kept = runs
    fake = FakeWandB()
    with fake.serve() as url:
        result = invoke(data_dir, "sync", "--tracker", "wandb", "--dry-run",
                        env={"WANDB_BASE_URL": url, "WANDB_API_KEY": fake.api_key})
    assert result.exit_code == 0, result.output
    assert kept in result.output and demo not in result.output
    assert "Would send to wandb" in result.output
    assert "Dry run: nothing was sent." in result.output
    assert fake.requests == []  # not even a login


def test_all_lists_every_run_the_tracker_lacks(runs) -> None:
    data_dir, demo, kept = runs
    result = invoke(data_dir, "sync", "--tracker", "wandb", "--dry-run", "--all", "--json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["dry_run"] is True and shown["tracker"] == "wandb"
    assert [(r["run_id"], r["records_to_send"]) for r in shown["runs"]] == [(demo, 5), (kept, 7)]


def test_sync_asks_first_and_a_no_sends_nothing(runs) -> None:
    data_dir, _, kept = runs
    fake = FakeWandB()
    with fake.serve() as url:
        env = {"WANDB_BASE_URL": url, "WANDB_API_KEY": fake.api_key}
        refused = invoke(data_dir, "sync", "--tracker", "wandb", env=env, input="n\n")
        assert refused.exit_code == 1
        assert "Send 1 run to wandb?" in refused.output
        assert "nothing was sent" in refused.output and "--yes" in refused.output
        assert fake.runs() == []
        no_input = invoke(data_dir, "sync", "--tracker", "wandb", env=env)
        assert no_input.exit_code == 1 and fake.runs() == []

        accepted = invoke(data_dir, "sync", "--tracker", "wandb", env=env, input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert f"{kept}: synced, 7 records sent" in accepted.output
    assert [run.name for run in fake.runs()] == [kept]  # the demo run stays local
    assert len(fake.history(fake.entity, PROJECT, kept)) == 7


def test_named_runs_are_sent_without_asking_and_nothing_left_suggests_all(runs) -> None:
    data_dir, _, kept = runs
    fake = FakeWandB()
    with fake.serve() as url:
        env = {"WANDB_BASE_URL": url, "WANDB_API_KEY": fake.api_key}
        named = invoke(data_dir, "sync", kept, "--tracker", "wandb", "--json", env=env)
        assert named.exit_code == 0, named.output
        report = json.loads(named.output)
        assert report["ok"] is True
        assert [(r["run_id"], r["state"], r["delivered"]) for r in report["runs"]] == [
            (kept, "synced", 7)]
        nothing = invoke(data_dir, "sync", "--tracker", "wandb", env=env)
    assert nothing.exit_code == 0, nothing.output
    assert "Nothing to sync: wandb holds every run meant for it." in nothing.output
    assert "1 other run was not meant for wandb; send it with: " \
           "trackmux sync --tracker wandb --all" in nothing.output
    assert [run.name for run in fake.runs()] == [kept]


def test_runs_shows_wandb_pending_for_a_run_kept_offline(runs) -> None:
    data_dir, demo, kept = runs
    listed = {run["run_id"]: run for run in json.loads(
        invoke(data_dir, "runs", "--json").output)}
    kept_trackers = {t["name"]: t for t in listed[kept]["trackers"]}
    assert kept_trackers["wandb"]["pending"] is True and kept_trackers["wandb"]["offline"]
    assert kept_trackers["null"]["pending"] is False
    assert [t["name"] for t in listed[demo]["trackers"]] == ["null"]
    table = invoke(data_dir, "runs").output
    (line,) = [line for line in table.splitlines() if line.strip().startswith(kept)]
    assert "wandb 0/7 pending (offline)" in line


def test_wandb_mode_offline_is_said_once_with_the_sync_command(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(_api, "_SAID_OFFLINE", set())
    monkeypatch.setenv("WANDB_MODE", "offline")
    with caplog.at_level(logging.WARNING, logger="trackmux"):
        for _ in range(3):
            tracker = trackmux.Tracker(["wandb", "null"], data_dir=tmp_path)
            assert tracker.trackers == ("null",)
    said = [r.getMessage() for r in caplog.records if "WANDB_MODE=offline" in r.getMessage()]
    assert len(said) == 1
    assert "trackmux sync --tracker wandb" in said[0]


def test_wandb_mode_disabled_keeps_nothing_pending(tmp_path: Path) -> None:
    run = make_run(tmp_path, ["wandb", "null"], 2, wandb_mode="disabled", name="off")
    listed: list[dict[str, Any]] = json.loads(invoke(tmp_path, "runs", "--json").output)
    assert [t["name"] for t in listed[0]["trackers"]] == ["null"] and listed[0]["run_id"] == run
