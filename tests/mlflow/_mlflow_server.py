"""A real MLflow tracking server for tests and benchmarks, from a private virtual environment.

MLflow is not a dependency of trackmux, so the server runs from a virtual environment
outside the repository (``~/.cache/trackmux-tests/mlflow-venv``, or
``$TRACKMUX_MLFLOW_VENV``), created and filled with ``pip install mlflow==<pin>`` on first
use and reused while it holds that version (``tests/_cached_venv.py``).
:func:`start_server` starts ``mlflow server`` on a free loopback port with a SQLite store
and proxied artifacts in a given directory, and waits for ``/health``;
:meth:`MLflowServer.stop` ends it (terminate, then kill).

Used by ``tests/mlflow/conftest.py`` and ``bench/mlflow_throughput.py``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from _cached_venv import CachedVenv

__all__ = [
    "MLFLOW_VERSION",
    "MLflowServer",
    "MLflowUnavailable",
    "ensure_venv",
    "start_server",
    "venv_dir",
]

#: The MLflow release the tests run against (installs from PyPI on Python 3.11).
MLFLOW_VERSION = "3.17.2"
_START_TIMEOUT = 120.0


class MLflowUnavailable(RuntimeError):
    """The MLflow server could not be installed or started; the message says why."""


#: The venv: ``mlflow==MLFLOW_VERSION`` in ``~/.cache/trackmux-tests/mlflow-venv``.
_VENV = CachedVenv("mlflow-venv", "TRACKMUX_MLFLOW_VENV", {"mlflow": MLFLOW_VERSION},
                   MLflowUnavailable, f"mlflow {MLFLOW_VERSION}", note="takes a minute or two")


def venv_dir() -> Path:
    """Where the MLflow virtual environment lives."""
    return _VENV.path()


def ensure_venv(log: Callable[[str], None] = print) -> Path:
    """The Python of a virtual environment holding ``mlflow==MLFLOW_VERSION``.

    Creates or repairs it if needed (under a file lock, so concurrent callers install
    once).

    :raises MLflowUnavailable: the environment cannot be created or mlflow not installed.
    """
    return _VENV.ensure(log)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MLflowServer:
    """A running ``mlflow server`` process.

    :param process: the server process.
    :param url: its tracking URI, ``http://127.0.0.1:<port>``.
    :param workdir: where its database, artifacts and log live.
    :param start_seconds: how long it took to answer ``/health``.
    """

    def __init__(
        self, process: subprocess.Popen[bytes], url: str, workdir: Path, start_seconds: float
    ) -> None:
        self.process = process
        self.url = url
        self.workdir = workdir
        self.start_seconds = start_seconds

    @property
    def python(self) -> Path:
        """The Python of the server's virtual environment (it can run MLflow's client)."""
        return _VENV.python()

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the server's output."""
        path = self.workdir / "server.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """Terminate the server, then kill it if it does not exit within 10 s."""
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def start_server(workdir: Path, python: Path | None = None) -> MLflowServer:
    """Start ``mlflow server`` with its store and artifacts under ``workdir``.

    Background job execution is switched off (``MLFLOW_SERVER_ENABLE_JOB_EXECUTION``), one
    worker serves, and artifacts are proxied (``--artifacts-destination``).

    :raises MLflowUnavailable: the server did not answer ``/health`` within two minutes.
    """
    python = python or ensure_venv()
    workdir.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "MLFLOW_TRACKING_URI": "",
    }
    command = [
        str(python.parent / "mlflow"),
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--backend-store-uri",
        f"sqlite:///{workdir / 'mlflow.db'}",
        "--artifacts-destination",
        str(workdir / "artifacts"),
        "--serve-artifacts",
        "--workers",
        "1",
    ]
    started = time.monotonic()
    with open(workdir / "server.log", "wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    server = MLflowServer(process, url, workdir, 0.0)
    deadline = started + _START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise MLflowUnavailable(
                f"mlflow server exited with {process.returncode}:\n{server.log_tail()}"
            )
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                server.start_seconds = time.monotonic() - started
                return server
        time.sleep(0.2)
    server.stop()
    raise MLflowUnavailable(
        f"mlflow server did not answer /health in {_START_TIMEOUT:.0f} s:\n{server.log_tail()}"
    )
