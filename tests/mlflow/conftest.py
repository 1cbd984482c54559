"""Fixtures for the MLflow plugin tests: one real ``mlflow server`` for the session.

The server comes from a virtual environment outside the repository (see
``_mlflow_server.py``). If it cannot be installed or started, the tests that need it fail
with the reason when ``CI`` is set (``CI=true``), and are skipped elsewhere.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from _mlflow_server import MLflowServer, MLflowUnavailable, ensure_venv, start_server
from _mlflow_support import terminal_log

_HERE = Path(__file__).parent
#: The first test that needs the server may install MLflow (a minute or two).
_INSTALL_TIMEOUT = 900


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Give this directory's tests room for the one-time install of MLflow."""
    for item in items:
        if _HERE in Path(str(item.fspath)).parents and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(_INSTALL_TIMEOUT))


_MLFLOW_ENV = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_EXPERIMENT_NAME",
    "MLFLOW_HTTP_REQUEST_TIMEOUT",
    "MLFLOW_TRACKING_INSECURE_TLS",
)


@pytest.fixture(autouse=True)
def _no_mlflow_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _MLFLOW_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def mlflow_server(request: pytest.FixtureRequest,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[MLflowServer]:
    """A running MLflow tracking server (SQLite store, proxied artifacts) for the session.

    Installing it the first time says so on the terminal (``[mlflow] installing ...``).
    """
    say = terminal_log(request.config)
    try:
        python = ensure_venv(log=say)
        server = start_server(tmp_path_factory.mktemp("mlflow-server"), python)
    except MLflowUnavailable as exc:
        message = f"no MLflow server for the tests: {exc}"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    say(f"server {server.url} answered /health in {server.start_seconds:.1f} s")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def experiment() -> str:
    """A fresh experiment name, so tests never see each other's runs."""
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def mlflow_settings(mlflow_server: MLflowServer, experiment: str) -> dict[str, object]:
    """The ``[mlflow]`` settings for the session's server and a fresh experiment."""
    return {"tracking_uri": mlflow_server.url, "experiment": experiment, "artifact_retry_wait": 0}
