"""A key of trackmux.toml / [tool.trackmux] that nothing reads gets one warning naming the
file, the line and the closest valid key, whichever trackers are selected."""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path

import pytest
import trackmux
from trackmux import _api

pytestmark = pytest.mark.usefixtures("isolated_env")


@pytest.fixture
def said(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture):
    """The warnings trackmux logs (each is said once per process: start afresh)."""
    monkeypatch.setattr(_api, "_WARNED_KEYS", set())
    caplog.set_level(logging.WARNING, logger="trackmux")

    def messages() -> list[str]:
        return [r.getMessage() for r in caplog.records if "unknown key" in r.getMessage()
                or "installed tracker's table" in r.getMessage()]

    return messages


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def test_a_misspelt_wandb_key_names_file_line_and_the_key_meant(said, tmp_path: Path) -> None:
    config = write(Path.cwd() / "trackmux.toml", """
        trackers = ["null"]

        [wandb]
        project = "mnist"
        projet = "mnist"
        """)
    trackmux.Tracker(data_dir=tmp_path)
    assert said() == [f"{config}:5: unknown key 'projet' in [wandb]; did you mean 'project'? "
                      "(valid: artifact_attempts, artifact_retry_wait, base_url, entity, "
                      "project, timeout, transport)"]
    trackmux.Tracker(data_dir=tmp_path)
    assert len(said()) == 1  # once per process


def test_pyproject_tables_top_level_keys_and_unknown_tables(said, tmp_path: Path) -> None:
    config = write(Path.cwd() / "pyproject.toml", """
        [project]
        name = "mine"

        [tool.trackmux]
        tracker = ["null"]
        data_dir = "runs"

        [tool.trackmux.wandbb]
        project = "x"

        [tool.trackmux.null]
        colour = "blue"
        """)
    trackmux.Tracker(["null"], data_dir=tmp_path)
    assert said() == [
        f"{config}:5: unknown key 'tracker' in [tool.trackmux]; did you mean 'trackers'? "
        "(valid: trackers, data_dir, ranks)",
        f"{config}:8: [tool.trackmux.wandbb] is not an installed tracker's table; did you "
        "mean [wandb]? (installed: mlflow, null, wandb)",
        f"{config}:12: unknown key 'colour' in [tool.trackmux.null]; nothing reads it "
        "(valid: none)",
    ]


def test_valid_keys_say_nothing_and_sync_checks_too(said, tmp_path: Path) -> None:
    write(Path.cwd() / "trackmux.toml", """
        trackers = ["null"]
        ranks = "main"
        [mlflow]
        tracking_uri = "http://127.0.0.1:1"
        experiment = "e"
        [wandb]
        entity = "team"
        """)
    trackmux.Tracker(data_dir=tmp_path)
    trackmux.sync(tracker="null", data_dir=tmp_path)
    assert said() == []
    write(Path.cwd() / "trackmux.toml", """
        [null]
        rootdir = "x"
        """)
    trackmux.sync(tracker="null", data_dir=tmp_path)
    assert len(said()) == 1 and ":2: unknown key 'rootdir' in [null]" in said()[0]
