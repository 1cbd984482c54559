"""Fixtures shared by the tests at this level."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
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


@pytest.fixture
def mount_tmpfs(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """``mount_tmpfs("1m")`` mounts a real tmpfs of that size under ``tmp_path`` and returns
    it (a real full disk); skipped where mounting is impossible (not root, no tmpfs), and
    unmounted afterwards."""
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        if os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root")
        target = tmp_path / f"fs-{len(mounted)}"
        target.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                               str(target)], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounted.append(target)
        return target

    try:
        yield mount
    finally:
        for target in mounted:
            subprocess.run(["umount", "-l", str(target)], check=False)
