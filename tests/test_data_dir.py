"""A data directory trackmux cannot write (a real read-only file system, a file in the way)
is a DataDirectoryError naming the directory and TRACKMUX_DIR, at connect, never a
ConnectionError about a tracker; reading the runs that are there still works."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import trackmux
from click.testing import CliRunner
from trackmux import _cli

pytestmark = pytest.mark.usefixtures("isolated_env")


@pytest.fixture
def small_fs(mount_tmpfs: Callable[[str], Path]) -> Path:
    """A real 1 MiB tmpfs (see ``mount_tmpfs`` in conftest.py)."""
    return mount_tmpfs("1m")


def _read_only(mount: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)


def _assert_names_the_directory(error: BaseException, directory: Path) -> None:
    text = str(error)
    assert isinstance(error, trackmux.DataDirectoryError) and isinstance(error, OSError)
    assert not isinstance(error, ConnectionError)
    assert str(directory) in text and "TRACKMUX_DIR" in text
    assert "Errno" not in text


def test_a_read_only_file_system_is_named_at_connect(small_fs: Path) -> None:
    data_dir = small_fs / "trackmux"
    _read_only(small_fs)
    tracker = trackmux.Tracker(["null"], data_dir=data_dir)
    with pytest.raises(trackmux.DataDirectoryError) as caught:
        tracker.submit_job(name="never")
    _assert_names_the_directory(caught.value, data_dir)
    assert "Read-only file system" in str(caught.value)


def test_an_existing_data_dir_turned_read_only_keeps_its_runs_readable(small_fs: Path) -> None:
    data_dir = small_fs / "trackmux"
    with trackmux.Tracker(["null"], data_dir=data_dir) as tracker:
        run = tracker.submit_job(name="before")
        tracker.log_metrics(run, {"loss": 1.0})
    _read_only(small_fs)

    runner = CliRunner(env={"TRACKMUX_DIR": str(data_dir)})
    demo = runner.invoke(_cli.cli, ["demo", "--steps", "3"])
    assert demo.exit_code == 1
    assert f"cannot write its data directory {str(data_dir)!r}" in demo.output
    assert "TRACKMUX_DIR" in demo.output and "ConnectionError" not in demo.output
    listed = runner.invoke(_cli.cli, ["runs"])
    assert listed.exit_code == 0 and run in listed.output
    with pytest.raises(trackmux.DataDirectoryError) as caught:
        trackmux.sync([run], tracker="null", data_dir=data_dir)
    _assert_names_the_directory(caught.value, data_dir)


def test_a_file_where_the_data_dir_should_be(tmp_path: Path) -> None:
    in_the_way = tmp_path / "data"
    in_the_way.write_text("not a directory")
    tracker = trackmux.Tracker(["null"], data_dir=in_the_way)
    with pytest.raises(trackmux.DataDirectoryError) as caught:
        tracker.connect()
    _assert_names_the_directory(caught.value, in_the_way)
