"""Where an artifact's entry may be written: the one check every tracker's download needs.

A manifest comes from the backend (or a file anyone could edit): an entry named
``../../.bashrc`` or ``/etc/passwd`` must never be written. Trackers call
:func:`safe_destination` for every entry before writing anything.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath, PureWindowsPath

__all__ = ["safe_destination"]


def safe_destination(target_dir: Path, name: object) -> Path:
    """Where manifest entry ``name`` lands under ``target_dir``.

    :raises ValueError: ``name`` is not a non-empty string, is absolute (POSIX or Windows),
        or resolves outside ``target_dir`` (``..``, symlinks).
    """
    if not isinstance(name, str) or not name or "\x00" in name:
        raise ValueError(f"refusing artifact entry with an invalid path: {name!r}")
    if (
        PurePosixPath(name).is_absolute()
        or PureWindowsPath(name).is_absolute()
        or PureWindowsPath(name).drive
        or name.startswith("\\")
    ):
        raise ValueError(f"refusing absolute artifact entry path: {name!r}")
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if ".." in parts:
        raise ValueError(f"refusing artifact entry path that leaves the target directory: {name!r}")
    root = target_dir.resolve()
    dest = (root / Path(*parts)).resolve()
    if dest == root or not dest.is_relative_to(root):
        raise ValueError(f"refusing artifact entry path that leaves the target directory: {name!r}")
    return dest
