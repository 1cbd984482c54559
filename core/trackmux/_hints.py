"""The commands that messages tell the user to run, written out in full.

A message that sends the user to the command line gives the whole command, ready to paste:
``trackmux sync 1a2b3c4d --tracker wandb``, preceded by ``TRACKMUX_DIR=...`` when the runs
are not where ``trackmux`` looks by default (``TRACKMUX_DIR``, the configuration file, the
per-user directory). No message sent to a command-line user asks for a Python argument.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

__all__ = ["sync_command", "trackmux_command"]


def trackmux_command(data_dir: os.PathLike[str] | str | None, *words: str) -> str:
    """``trackmux WORDS...``, after ``TRACKMUX_DIR=DATA_DIR`` unless that is the default."""
    line = " ".join(shlex.quote(word) for word in ("trackmux", *words))
    if data_dir is not None and not _is_default(Path(data_dir)):
        line = f"TRACKMUX_DIR={shlex.quote(str(data_dir))} {line}"
    return line


def sync_command(data_dir: os.PathLike[str] | str | None, tracker: str,
                 run_id: str | None = None) -> str:
    """The command that delivers ``run_id`` (else the runs meant for ``tracker``) to it."""
    words = ["sync", *([run_id] if run_id else []), "--tracker", tracker]
    return trackmux_command(data_dir, *words)


def _is_default(data_dir: Path) -> bool:
    from ._config import load_settings

    try:
        default = load_settings(["null"]).data_dir
    except (ValueError, OSError):
        return False
    try:
        return data_dir.resolve() == default.resolve()
    except OSError:
        return False
