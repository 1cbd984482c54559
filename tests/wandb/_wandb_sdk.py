"""The official ``wandb`` SDK, from a private virtual environment, for the differential test.

``wandb`` is not a dependency of trackmux (and ``import trackmux`` never imports it), so
the SDK lives in a virtual environment outside the repository
(``~/.cache/trackmux-tests/wandb-sdk-venv``, or ``$TRACKMUX_WANDB_SDK_VENV``), created and
filled with ``pip install wandb==<pin>`` on first use, under a file lock so that concurrent
callers install once, and reused while it holds that version: the pattern of
``tests/mlflow/_mlflow_server.py``.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["WANDB_VERSION", "WandBSDKUnavailable", "ensure_venv", "venv_dir"]

#: The SDK release the differential test runs (the one bench/compare.py measures).
WANDB_VERSION = "0.31.0"
_INSTALL_TIMEOUT = 900.0


class WandBSDKUnavailable(RuntimeError):
    """The SDK could not be installed; the message says why."""


def venv_dir() -> Path:
    """Where the SDK's virtual environment lives."""
    override = os.environ.get("TRACKMUX_WANDB_SDK_VENV")
    if override:
        return Path(override)
    return Path.home() / ".cache" / "trackmux-tests" / "wandb-sdk-venv"


def _python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _has_sdk(venv: Path) -> bool:
    python = _python(venv)
    if not python.exists():
        return False
    check = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('wandb'))"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return check.returncode == 0 and check.stdout.strip() == WANDB_VERSION


def _run(command: list[str], what: str) -> None:
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=_INSTALL_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise WandBSDKUnavailable(f"{what} failed: {exc}") from None
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise WandBSDKUnavailable(f"{what} failed (exit {done.returncode}):\n{tail}")


def ensure_venv(log: Callable[[str], None] = print) -> Path:
    """The Python of a virtual environment holding ``wandb==WANDB_VERSION``.

    :raises WandBSDKUnavailable: the environment cannot be created or wandb not installed.
    """
    venv = venv_dir()
    if _has_sdk(venv):
        return _python(venv)
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f"{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _has_sdk(venv):
            return _python(venv)
        started = time.monotonic()
        log(f"installing wandb=={WANDB_VERSION} into {venv} (once)")
        _run([sys.executable, "-m", "venv", "--clear", str(venv)], "creating the wandb venv")
        _run(
            [str(_python(venv)), "-m", "pip", "install", "--quiet", f"wandb=={WANDB_VERSION}"],
            f"pip install wandb=={WANDB_VERSION}",
        )
        if not _has_sdk(venv):
            raise WandBSDKUnavailable(f"wandb {WANDB_VERSION} is not importable in {venv}")
        log(f"installed wandb {WANDB_VERSION} in {time.monotonic() - started:.0f} s")
    return _python(venv)
