"""Messages that send the user to the command line give the whole command, ready to paste
(with TRACKMUX_DIR when the runs are not in the default data directory), and ask a
command-line user for no Python argument."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from unittest import mock

import pytest
import trackmux
from click.testing import CliRunner
from memory_tracker import MemoryTracker
from trackmux import PermanentError, _cli
from trackmux._hints import sync_command

pytestmark = pytest.mark.usefixtures("isolated_env")


def test_sync_command_names_the_data_dir_only_when_it_is_not_the_default(
        tmp_path: Path) -> None:
    assert sync_command(tmp_path, "wandb", "ab12cd34") == (
        f"TRACKMUX_DIR={tmp_path} trackmux sync ab12cd34 --tracker wandb")
    with mock.patch.dict(os.environ, {"TRACKMUX_DIR": str(tmp_path)}):
        assert sync_command(tmp_path, "wandb") == "trackmux sync --tracker wandb"
    spaced = tmp_path / "my runs"
    assert sync_command(spaced, "null").startswith(f"TRACKMUX_DIR='{spaced}' trackmux sync")


def test_a_stopped_tracker_says_the_command_that_delivers_later(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    broken = MemoryTracker()
    broken.fail_with = PermanentError("HTTP 401: key revoked")
    pm = trackmux.get_plugin_manager()
    pm.register(broken, name="broken")
    with caplog.at_level(logging.ERROR, logger="trackmux"), trackmux.Tracker(
            ["broken"], data_dir=tmp_path, plugin_manager=pm) as tracker:
        run = tracker.submit_job()
        tracker.log_metrics(run, {"x": 1})
        tracker.flush(timeout=5)
    told = [r.getMessage() for r in caplog.records if "stopped" in r.getMessage()]
    assert told and told[0].endswith(
        f"deliver them later with: TRACKMUX_DIR={tmp_path} trackmux sync {run} --tracker broken")
    # the command works as written: it picks this run, meant for 'broken'
    broken.fail_with = None
    runner = CliRunner(env={"TRACKMUX_DIR": str(tmp_path)})
    result = runner.invoke(_cli.cli, ["sync", "--tracker", "broken", "--dry-run"],
                           catch_exceptions=False)
    assert run in result.output


@pytest.mark.parametrize(("tracker", "variable"), [
    ("wandb", "WANDB_API_KEY"), ("mlflow", "MLFLOW_TRACKING_URI")])
def test_missing_credentials_on_the_command_line_name_the_environment_variable(
        tmp_path: Path, tracker: str, variable: str) -> None:
    with trackmux.Tracker(["null"], data_dir=tmp_path) as offline:
        offline.submit_job()
    runner = CliRunner(env={"TRACKMUX_DIR": str(tmp_path)})
    result = runner.invoke(_cli.cli, ["sync", "--tracker", tracker, "--all", "--yes"],
                           catch_exceptions=False)
    assert result.exit_code == 1
    first = result.output.split(";")[0]
    assert variable in first and "credentials=" not in first
