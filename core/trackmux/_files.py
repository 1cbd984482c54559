"""Private files: every directory trackmux creates is 0700 and every file 0600."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

__all__ = [
    "check_data_dir",
    "make_private_dir",
    "open_private",
    "read_json",
    "write_json_atomic",
]


def make_private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) readable by the user only; return it.

    Every missing parent is created 0700 too (``mkdir(parents=True)`` would give the
    parents the umask's mode, e.g. 0755 for ``<data dir>/trackers``).
    """
    parent = path.parent
    if parent != path and not parent.is_dir():
        make_private_dir(parent)
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def check_data_dir(data_dir: Path) -> Path:
    """Create the data directory (and its ``journal``) if missing and prove it writable
    with a small file written and removed; return it.

    :raises DataDirectoryError: naming the directory, what went wrong and ``TRACKMUX_DIR``
        (a read-only file system, a full disk, no permission, a file in the way).
    """
    from trackmux_spec import DataDirectoryError

    try:
        journal = make_private_dir(Path(data_dir) / "journal")
        probe = journal / f".write-check.{os.getpid()}"
        fd = os.open(probe, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
        try:
            os.write(fd, b"ok")
        finally:
            os.close(fd)
            with contextlib.suppress(OSError):
                probe.unlink()
    except OSError as exc:
        where = exc.filename or data_dir
        reason = exc.strerror or type(exc).__name__
        error = DataDirectoryError(
            f"trackmux cannot write its data directory {str(data_dir)!r} ({reason}: "
            f"{str(where)!r}); set the TRACKMUX_DIR environment variable (or data_dir in "
            f"trackmux.toml) to a writable directory"
        )
        error.errno = exc.errno
        raise error from None
    return Path(data_dir)


def open_private(path: Path, mode: str = "ab"):  # type: ignore[no-untyped-def]
    """Open ``path`` for appending (or ``mode``), creating it with permissions 0600."""
    flags = os.O_CREAT | (os.O_RDWR if "+" in mode else os.O_WRONLY)
    if "a" in mode:
        flags |= os.O_APPEND
    fd = os.open(path, flags, 0o600)
    return os.fdopen(fd, mode)


def write_json_atomic(path: Path, data: Any) -> None:
    """Replace ``path`` with ``data`` as JSON, so readers never see half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1, sort_keys=True)
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    """Read a JSON file written by :func:`write_json_atomic`."""
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)
