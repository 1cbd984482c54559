"""Fixtures shared by the tests at this level."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

#: Environment that would leak the developer's trackers, data dir or W&B account in.
_ENVIRONMENT = ("TRACKMUX_TRACKERS", "TRACKMUX_DIR", "WANDB_MODE", "WANDB_API_KEY",
                "WANDB_ENTITY", "WANDB_BASE_URL", "WANDB_PROJECT", "WANDB_APP_URL",
                "WANDB_HTTP_TIMEOUT")


@pytest.fixture
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No tracker list, data dir, W&B key, netrc or configuration file leaks in: the
    variables are unset, NETRC points nowhere and the working directory is empty."""
    for name in _ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    yield
