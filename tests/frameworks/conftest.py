"""Fixtures for the framework integration tests: the frameworks' venv, a script runner and a
fake W&B on loopback.

The frameworks come from a virtual environment outside the repository (see
``_frameworks_venv.py``). If it cannot be installed, the tests fail with the reason when
``CI`` is set, and are skipped elsewhere.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from _framework_runs import Scripts
from _frameworks_venv import FrameworksUnavailable, ensure_venv
from trackmux_wandb.testing import FakeWandB

_HERE = Path(__file__).parent
#: The first test may install the frameworks (about a minute on a fresh machine).
_INSTALL_TIMEOUT = 1200


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Give this directory's tests room for the one-time install, and mark them slow."""
    for item in items:
        if _HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.slow)
            if item.get_closest_marker("timeout") is None:
                item.add_marker(pytest.mark.timeout(_INSTALL_TIMEOUT))


@pytest.fixture(scope="session")
def frameworks_python(request: pytest.FixtureRequest) -> Path:
    """The Python of the frameworks' venv (installed on first use, saying so on the
    terminal even while pytest captures output, so the suite never pauses silently)."""
    capture = request.config.pluginmanager.getplugin("capturemanager")

    def log(line: str) -> None:
        with capture.global_and_fixture_disabled():
            print(f"\n[frameworks] {line}", flush=True)

    try:
        return ensure_venv(log=log)
    except FrameworksUnavailable as exc:
        message = f"no frameworks venv for the integration tests: {exc}"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


@pytest.fixture
def fake_wandb() -> Iterator[FakeWandB]:
    """A fake W&B server on 127.0.0.1 for the scripts' W&B tracker."""
    fake = FakeWandB()
    with fake.serve():
        yield fake


@pytest.fixture
def scripts(frameworks_python: Path, tmp_path: Path, fake_wandb: FakeWandB) -> Scripts:
    """Run scripts in the frameworks venv against a fresh data directory and fake W&B."""
    return Scripts(frameworks_python, tmp_path, fake_wandb)
