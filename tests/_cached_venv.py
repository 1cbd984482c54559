"""A cached private virtual environment holding pinned packages trackmux must not depend on.

MLflow's server (``tests/mlflow/_mlflow_server.py``), the official ``wandb`` SDK
(``tests/wandb/_wandb_sdk.py``) and the training frameworks
(``tests/frameworks/_frameworks_venv.py``) each live in a virtual environment outside the
repository: ``~/.cache/trackmux-tests/<name>``, or the path in an environment variable. It
is created and filled with ``pip install <name>==<version>...`` on first use, under a file
lock beside it (``<name>.lock``) so that concurrent callers install once, and reused while
it holds those versions (a local version label such as torch's ``+cpu`` is ignored, as pip
ignores it).

Its importers put ``tests/`` on ``sys.path``: pytest does when it loads
``tests/conftest.py``, the bench scripts do it themselves.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CachedVenv"]

_CHECK_TIMEOUT = 120.0


@dataclass(frozen=True)
class CachedVenv:
    """One cached virtual environment and how to fill it.

    :param name: its directory under ``~/.cache/trackmux-tests``.
    :param env_var: the environment variable that, when set, is its path instead.
    :param pins: distribution name to version; installed as ``name==version``.
    :param error: raised, with the reason, when it cannot be created or filled.
    :param label: what the log calls the installed packages (``installed <label> in 42 s``).
    :param note: how long installing takes, for the log (``(once; <note>)``); none if empty.
    :param install_timeout: seconds each of ``python -m venv`` and ``pip install`` may take.
    """

    name: str
    env_var: str
    pins: Mapping[str, str]
    error: type[Exception]
    label: str
    note: str = ""
    install_timeout: float = 900.0

    def path(self) -> Path:
        """Where the virtual environment lives."""
        override = os.environ.get(self.env_var)
        if override:
            return Path(override)
        return Path.home() / ".cache" / "trackmux-tests" / self.name

    def python(self) -> Path:
        """The virtual environment's Python (which may not exist yet)."""
        return self.path() / "bin" / "python"

    def requirements(self) -> list[str]:
        """The ``pip install`` arguments: ``name==version`` for each pin."""
        return [f"{name}=={version}" for name, version in self.pins.items()]

    def _holds_pins(self, venv: Path) -> bool:
        python = venv / "bin" / "python"
        if not python.exists():
            return False
        check = subprocess.run(
            [str(python), "-c", "import importlib.metadata as m, sys; "
             "print(' '.join(m.version(n) for n in sys.argv[1:]))", *self.pins],
            capture_output=True, text=True, timeout=_CHECK_TIMEOUT, check=False)
        found = [version.split("+")[0] for version in check.stdout.split()]
        return check.returncode == 0 and found == list(self.pins.values())

    def _run(self, command: list[str], what: str) -> None:
        try:
            done = subprocess.run(command, capture_output=True, text=True,
                                  timeout=self.install_timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise self.error(f"{what} failed: {exc}") from None
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
            raise self.error(f"{what} failed (exit {done.returncode}):\n{tail}")

    def ensure(self, log: Callable[[str], None] = print) -> Path:
        """The Python of the virtual environment, holding :attr:`pins`.

        Creates or repairs it if needed, under a file lock (concurrent callers install once),
        and says so through ``log`` (``installing ... (once...)``, then the time it took).

        :raises error: the environment cannot be created or filled.
        """
        venv = self.path()
        python = venv / "bin" / "python"
        if self._holds_pins(venv):
            return python
        try:
            venv.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self.error(f"cannot create {venv.parent}: {exc}") from None
        with open(venv.parent / f"{venv.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if self._holds_pins(venv):
                return python
            started = time.monotonic()
            pins = " ".join(self.requirements())
            log(f"installing {pins} into {venv} (once{f'; {self.note}' if self.note else ''})")
            self._run([sys.executable, "-m", "venv", "--clear", str(venv)], f"creating {venv}")
            self._run([str(python), "-m", "pip", "install", "--quiet",
                       *self.requirements()], f"pip install {pins}")
            if not self._holds_pins(venv):
                raise self.error(f"{venv} does not hold {pins} after installing them")
            log(f"installed {self.label} in {time.monotonic() - started:.0f} s")
        return python
