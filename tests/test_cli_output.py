"""How every command prints (``trackmux._output``): ``--json`` wherever a table is printed,
whole lines when the output is piped, the terminal's width on a terminal."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import click
import pytest
import trackmux
from trackmux import _cli

pytestmark = pytest.mark.usefixtures("isolated_env")

#: Commands that print no table, and why (a new command either takes --json or is listed).
NO_TABLE = {
    "demo": "a progress bar and the hints of where the run is",
    "report": "writes an HTML file and prints its path",
    "ui": "serves a web page and prints its address",
}

LONG_NAME = "sweep-" + "x" * 150 + "-end"
LONG_VALUE = "v" * 300 + "-tail"


def _commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    found = []
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found += _commands(command, f"{prefix}{name} ")
        else:
            found.append((prefix + name, command))
    return found


def test_every_command_that_prints_a_table_takes_json() -> None:
    missing = [name for name, command in _commands(_cli.cli)
               if name not in NO_TABLE
               and not any("--json" in getattr(p, "opts", ()) for p in command.params)]
    assert missing == [], f"these commands print tables but take no --json: {missing}"


def _trackmux(data_dir: Path, *args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TRACKMUX_DIR": str(data_dir)}
    env.pop("COLUMNS", None)
    return subprocess.run([sys.executable, "-m", "trackmux._cli", *args], env=env, text=True,
                          capture_output=True, check=True, timeout=60, **kwargs)  # type: ignore[call-overload]


@pytest.fixture
def long_run(tmp_path: Path) -> tuple[Path, str]:
    data_dir = tmp_path / "data"
    with trackmux.Tracker(["null"], data_dir=data_dir) as tracker:
        run = tracker.submit_job(name=LONG_NAME, project_name="piping", note=LONG_VALUE)
        tracker.log_metrics(run, {"loss": 0.5})
    return data_dir, run


def test_piped_output_is_never_wrapped(long_run: tuple[Path, str]) -> None:
    data_dir, run = long_run
    runs = _trackmux(data_dir, "runs").stdout
    (row,) = [line for line in runs.splitlines() if run in line]
    assert LONG_NAME in row and "finished" in row and "null 1/1" in row
    shown = _trackmux(data_dir, "show", run).stdout
    assert any(LONG_VALUE in line for line in shown.splitlines())
    plugins = _trackmux(data_dir, "plugins").stdout
    (hooks,) = [line for line in plugins.splitlines()
                if "hooks:" in line and "submit_job" in line and "log_metrics" in line
                and "connect" in line][:1]
    assert "finish_job" in hooks


def test_on_a_terminal_tables_fit_its_width(long_run: tuple[Path, str]) -> None:
    data_dir, run = long_run
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 70, 0, 0))
    env = {**os.environ, "TRACKMUX_DIR": str(data_dir), "TERM": "dumb"}
    env.pop("COLUMNS", None)
    try:
        process = subprocess.run([sys.executable, "-m", "trackmux._cli", "runs"], env=env,
                                 stdout=follower, stderr=subprocess.PIPE, timeout=60, check=True)
        assert process.returncode == 0
        os.close(follower)
        follower = -1
        output = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal is closed once everything was read
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(leader)
        if follower != -1:
            os.close(follower)
    lines = output.decode().replace("\x1b[0m", "").splitlines()
    assert any(run in line for line in lines)
    assert max(len(line) for line in lines) <= 70
    assert LONG_NAME not in "".join(lines)  # folded across lines


def test_json_output_is_strict_and_whole(long_run: tuple[Path, str]) -> None:
    data_dir, run = long_run
    (listed,) = json.loads(_trackmux(data_dir, "runs", "--json").stdout)
    assert listed["name"] == LONG_NAME
    shown = json.loads(_trackmux(data_dir, "show", run, "--json").stdout)
    assert shown["config"]["extra"] == {"note": LONG_VALUE}
