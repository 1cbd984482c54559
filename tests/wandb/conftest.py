"""Fixtures for the W&B plugin tests."""

from __future__ import annotations

import pytest
from trackmux_wandb.testing import FakeWandB


@pytest.fixture(autouse=True)
def _no_wandb_env(monkeypatch, tmp_path):
    for name in (
        "WANDB_API_KEY",
        "WANDB_ENTITY",
        "WANDB_BASE_URL",
        "WANDB_PROJECT",
        "WANDB_APP_URL",
        "WANDB_HTTP_TIMEOUT",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))


@pytest.fixture
def fake() -> FakeWandB:
    """A fresh in-memory W&B server."""
    return FakeWandB()
