"""The official ``wandb`` SDK, from a private virtual environment, for the differential test.

``wandb`` is not a dependency of trackmux (and ``import trackmux`` never imports it), so
the SDK lives in a virtual environment outside the repository
(``~/.cache/trackmux-tests/wandb-sdk-venv``, or ``$TRACKMUX_WANDB_SDK_VENV``), created and
filled with ``pip install wandb==<pin>`` on first use, under a file lock so that concurrent
callers install once, and reused while it holds that version: the pattern of
``tests/mlflow/_mlflow_server.py``, both through ``tests/_cached_venv.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from _cached_venv import CachedVenv

__all__ = ["WANDB_VERSION", "WandBSDKUnavailable", "ensure_venv", "venv_dir"]

#: The SDK release the differential test runs (the one bench/compare.py measures).
WANDB_VERSION = "0.31.0"


class WandBSDKUnavailable(RuntimeError):
    """The SDK could not be installed; the message says why."""


#: The venv: ``wandb==WANDB_VERSION`` in ``~/.cache/trackmux-tests/wandb-sdk-venv``.
_VENV = CachedVenv("wandb-sdk-venv", "TRACKMUX_WANDB_SDK_VENV", {"wandb": WANDB_VERSION},
                   WandBSDKUnavailable, f"wandb {WANDB_VERSION}")


def venv_dir() -> Path:
    """Where the SDK's virtual environment lives."""
    return _VENV.path()


def ensure_venv(log: Callable[[str], None] = print) -> Path:
    """The Python of a virtual environment holding ``wandb==WANDB_VERSION``.

    :raises WandBSDKUnavailable: the environment cannot be created or wandb not installed.
    """
    return _VENV.ensure(log)
