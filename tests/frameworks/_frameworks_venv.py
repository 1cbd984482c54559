"""The training frameworks for the integration tests and benchmarks, in a venv of their own.

torch, transformers, lightning, accelerate and keras are not dependencies of trackmux (nor
of its test extra): they live in a virtual environment outside the repository,
``~/.cache/trackmux-tests/frameworks-venv`` (or ``$TRACKMUX_FRAMEWORKS_VENV``), created on
first use under a file lock and reused while it holds the pinned versions
(``tests/_cached_venv.py``, as for the MLflow tests' ``tests/mlflow/_mlflow_server.py``).
torch is the CPU build: ``torch==2.13.0`` takes the CPU wheel this kind of machine keeps on
disk (pip's ``find-links``) instead of the multi-gigabyte CUDA build; installing everything
takes about a minute on a fresh machine.

trackmux is not installed into that venv: :func:`script_env` gives a subprocess a
``sitecustomize`` that adds the test run's own ``site-packages`` (where this checkout's
trackmux is installed) after the framework venv's, so every checkout tests its own code
against one shared, cached set of frameworks, and the children a launcher starts (DDP
workers) see the same.

Used by ``tests/frameworks/`` and ``bench/frameworks_overhead.py``.
"""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Callable
from pathlib import Path

from _cached_venv import CachedVenv

__all__ = ["FRAMEWORKS", "FrameworksUnavailable", "ensure_venv", "script_env", "venv_dir"]

#: What the venv holds (torch's CPU build; Keras runs on the torch backend, no TensorFlow).
FRAMEWORKS = {
    "torch": "2.13.0",
    "transformers": "5.24.0",
    "lightning": "2.6.6",
    "accelerate": "1.15.0",
    "keras": "3.15.1",
}


class FrameworksUnavailable(RuntimeError):
    """The frameworks could not be installed; the message says why."""


#: The venv: :data:`FRAMEWORKS` in ``~/.cache/trackmux-tests/frameworks-venv``.
_VENV = CachedVenv("frameworks-venv", "TRACKMUX_FRAMEWORKS_VENV", FRAMEWORKS,
                   FrameworksUnavailable, "the frameworks", note="about a minute",
                   install_timeout=1200.0)


def venv_dir() -> Path:
    """Where the frameworks' virtual environment lives."""
    return _VENV.path()


def ensure_venv(log: Callable[[str], None] = print) -> Path:
    """The Python of a virtual environment holding :data:`FRAMEWORKS`.

    Creates or repairs it if needed, under a file lock (concurrent callers install once).

    :raises FrameworksUnavailable: the environment cannot be created or filled.
    """
    return _VENV.ensure(log)


def _own_site_packages() -> Path:
    """The site-packages directory this process's trackmux is installed in."""
    return Path(str(importlib.metadata.distribution("trackmux").locate_file(""))).resolve()


def script_env(work: Path, **extra: str) -> dict[str, str]:
    """The environment for a script run by the frameworks venv's Python: this checkout's
    trackmux importable (through ``work/sitecustomize.py``), Keras on the torch backend,
    no hub access, no stray tracker configuration from the caller."""
    boot = work / "_boot"
    boot.mkdir(parents=True, exist_ok=True)
    (boot / "sitecustomize.py").write_text(
        f"import site\nsite.addsitedir({str(_own_site_packages())!r})\n")
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("TRACKMUX_", "WANDB_", "MLFLOW_", "PYTHON"))
           and key not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    env.update({
        "PYTHONPATH": str(boot),
        "KERAS_BACKEND": "torch",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "OMP_NUM_THREADS": "1",
        "TRACKMUX_DIR": str(work / "data"),
    })
    env.update(extra)
    return env
