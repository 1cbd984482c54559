"""Which trackers a run goes to, where local data lives, and each tracker's settings.

Precedence, highest first: explicit arguments, the environment (``TRACKMUX_TRACKERS``, a
comma list; ``TRACKMUX_DIR``; ``TRACKMUX_RANKS``), the nearest ``trackmux.toml`` or
``[tool.trackmux]`` in ``pyproject.toml`` (searched from the working directory upwards), then
the defaults: the offline tracker ``null``, the per-user data directory of platformdirs, and
``ranks = "main"``.

A configuration file looks like::

    trackers = ["wandb", "null"]
    data_dir = "/scratch/trackmux"      # optional
    ranks = "main"                      # or "all": which ranks of a distributed job send

    [wandb]                             # settings handed to that tracker's connect()
    project = "my-peft-project"

W&B's own switch keeps working: ``WANDB_MODE=offline`` (or ``dryrun``) takes ``wandb`` out of
the list and records it in :attr:`Settings.offline`: the runs stay in the journal, marked as
meant for W&B, and ``trackmux sync --tracker wandb`` sends them later. ``WANDB_MODE=disabled``
takes ``wandb`` out and marks nothing.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from attrs import define, field

__all__ = ["DEFAULT_TRACKERS", "Settings", "find_config_file", "load_settings", "unknown_keys"]

DEFAULT_TRACKERS = ("null",)


@define(frozen=True)
class Settings:
    """The resolved configuration of one tracker session."""

    trackers: tuple[str, ...]
    data_dir: Path
    tracker_settings: Mapping[str, Mapping[str, Any]] = field(factory=dict)
    source: str = "default"
    #: Which ranks of a distributed job send: ``"main"`` or ``"all"`` (see ``_ranks``).
    ranks: str = "main"
    #: Trackers of the list that ``WANDB_MODE=offline`` keeps offline: runs are journaled as
    #: meant for them, for ``trackmux sync``.
    offline: tuple[str, ...] = ()
    #: The configuration file read (``trackmux.toml`` or ``pyproject.toml``), if any.
    config_file: Path | None = None
    #: Its trackmux table as written (``[tool.trackmux]`` of a ``pyproject.toml``).
    file_table: Mapping[str, Any] = field(factory=dict, eq=False, repr=False)

    def settings_for(self, tracker: str) -> dict[str, Any]:
        """The table of ``tracker`` in the configuration file (empty if none)."""
        return dict(self.tracker_settings.get(tracker, {}))


def _parse_trackers(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        names = [part.strip() for part in value.split(",")]
    elif isinstance(value, Sequence):
        names = [str(part).strip() for part in value]
    else:
        raise ValueError(f"trackers in {where} must be a list of names, got {value!r}")
    names = [name for name in names if name]
    if not names:
        raise ValueError(f"trackers in {where} is empty: name at least one tracker, got {value!r}")
    return tuple(dict.fromkeys(names))


def find_config_file(start: Path) -> tuple[Path, dict[str, Any]] | None:
    """The nearest ``trackmux.toml``, or ``pyproject.toml`` with ``[tool.trackmux]``."""
    for directory in (start, *start.parents):
        candidate = directory / "trackmux.toml"
        if candidate.is_file():
            return candidate, _read_toml(candidate)
        pyproject = directory / "pyproject.toml"
        if pyproject.is_file():
            table = _read_toml(pyproject).get("tool", {}).get("trackmux")
            if isinstance(table, dict):
                return pyproject, table
    return None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path} is not valid TOML: {exc}") from None


def load_settings(
    trackers: Sequence[str] | str | None = None,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    tracker_settings: Mapping[str, Mapping[str, Any]] | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    ranks: str | None = None,
) -> Settings:
    """Resolve the configuration (see the module docstring for the precedence)."""
    env = os.environ if environ is None else environ
    found = find_config_file(cwd or Path.cwd())
    file_table: dict[str, Any] = found[1] if found else {}

    if trackers is not None:
        names, source = _parse_trackers(trackers, "the trackers argument"), "argument"
    elif env.get("TRACKMUX_TRACKERS", "").strip():
        names = _parse_trackers(env["TRACKMUX_TRACKERS"], "TRACKMUX_TRACKERS")
        source = "TRACKMUX_TRACKERS"
    elif found and "trackers" in file_table:
        names, source = _parse_trackers(file_table["trackers"], str(found[0])), str(found[0])
    else:
        names, source = DEFAULT_TRACKERS, "default"

    offline: tuple[str, ...] = ()
    wandb_mode = env.get("WANDB_MODE", "").strip().lower()
    if wandb_mode in ("offline", "dryrun", "disabled") and "wandb" in names:
        names = tuple(name for name in names if name != "wandb") or DEFAULT_TRACKERS
        if wandb_mode != "disabled":
            offline = ("wandb",)

    if data_dir is not None:
        directory = Path(data_dir)
    elif env.get("TRACKMUX_DIR"):
        directory = Path(env["TRACKMUX_DIR"])
    elif found and "data_dir" in file_table:
        directory = (found[0].parent / str(file_table["data_dir"])).resolve()
    else:
        import platformdirs

        directory = Path(platformdirs.user_data_dir("trackmux", appauthor=False))

    per_tracker: dict[str, dict[str, Any]] = {
        key: dict(value) for key, value in file_table.items() if isinstance(value, dict)
    }
    for name, values in (tracker_settings or {}).items():
        per_tracker[name] = {**per_tracker.get(name, {}), **values}
    from ._ranks import parse_mode  # beside the engine: loaded when settings are resolved

    if ranks is not None:
        mode = parse_mode(ranks, "the ranks argument")
    elif env.get("TRACKMUX_RANKS", "").strip():
        mode = parse_mode(env["TRACKMUX_RANKS"], "TRACKMUX_RANKS")
    elif found and "ranks" in file_table:
        mode = parse_mode(file_table["ranks"], str(found[0]))
    else:
        mode = "main"
    return Settings(names, directory.expanduser(), per_tracker, source, mode, offline,
                    found[0] if found else None, file_table)


#: Top-level keys of the configuration file, besides the trackers' tables.
FILE_KEYS = ("trackers", "data_dir", "ranks")


def unknown_keys(
    settings: Settings,
    installed: Sequence[str],
    tracker_keys: Mapping[str, frozenset[str] | None],
) -> list[str]:
    """Warnings for the keys of the configuration file that nothing reads, each naming the
    file, the line and the closest valid key: ``trackmux.toml:4: unknown key 'projet' in
    [wandb]; did you mean 'project'?``.

    :param installed: the installed trackers (the tables the file may hold).
    :param tracker_keys: per tracker, the settings it reads (``TrackerInfo.settings``);
        ``None`` or absent: not declared, not checked.
    """
    path = settings.config_file
    if path is None:
        return []
    found: list[str] = []
    for key, value in settings.file_table.items():
        if isinstance(value, dict):
            if key not in installed:
                found.append(_unknown(path, None, key, installed, table_name=True))
                continue
            known = tracker_keys.get(key)
            if known is not None:
                found += [_unknown(path, key, sub, sorted(known)) for sub in value
                          if sub not in known]
        elif key not in FILE_KEYS:
            found.append(_unknown(path, None, key, FILE_KEYS))
    return found


def _unknown(path: Path, table: str | None, key: str, valid: Sequence[str], *,
             table_name: bool = False) -> str:
    import difflib

    base = "tool.trackmux" if path.name == "pyproject.toml" else ""
    where = ".".join(part for part in (base, table) if part)
    line = _line_of(path, where, key, table_name)
    at = f"{path}:{line}" if line else str(path)
    close = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.6)
    if table_name:
        shown = f"[{'.'.join(p for p in (base, key) if p)}]"
        hint = f"did you mean [{close[0]}]?" if close else "no installed tracker has that name"
        return (f"{at}: {shown} is not an installed tracker's table; {hint} "
                f"(installed: {', '.join(valid) or 'none'})")
    inside = f" in [{where}]" if where else " at the top level"
    hint = f"did you mean {close[0]!r}?" if close else "nothing reads it"
    return f"{at}: unknown key {key!r}{inside}; {hint} (valid: {', '.join(valid) or 'none'})"


def _line_of(path: Path, table: str, key: str, is_table: bool) -> int | None:
    """The line (from 1) that sets ``key`` in ``[table]`` ("" for the top level), or opens
    the table ``key`` when ``is_table``; ``None`` if it cannot be told."""
    import re

    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    wanted = ".".join(part for part in (table, key) if part) if is_table else table
    current = ""
    header = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]")
    assignment = re.compile(r"^\s*([\"']?)([^\"'=\s]+)\1\s*=")
    for number, text in enumerate(lines, 1):
        match = header.match(text)
        if match:
            current = re.sub(r"[\s\"']", "", match.group(1))
            if is_table and current == wanted:
                return number
            continue
        match = assignment.match(text)
        if match and not is_table and current == wanted and match.group(2) == key:
            return number
    return None
