"""How every ``trackmux`` command prints: one mechanism for the whole CLI.

* :func:`console`: a rich console for tables and text. On a terminal it fits the terminal;
  piped to a file or another program it never wraps or cuts a line (no 80-column default),
  so ``trackmux runs | grep`` sees whole rows. :func:`terminal_width` says which it is, for
  text laid out by hand (``None``: do not wrap).
* :func:`json_option` and :func:`echo_json`: ``--json`` on every command that prints a
  table (``tests/test_cli_output.py`` checks that every command has it, or is exempt with a
  reason), strict JSON (NaN and the infinities as strings).
* :func:`command`: the full command line a message tells the user to run, with the
  ``--data-dir`` they gave (``trackmux --data-dir /x sync RUN --tracker wandb``).
"""

from __future__ import annotations

import json
import shlex
import shutil
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich.console import Console

__all__ = ["NO_WRAP_WIDTH", "command", "console", "echo_json", "json_option", "terminal_width"]

F = TypeVar("F", bound=Callable[..., Any])

#: The width a console gets when the output is not a terminal: wide enough that no table
#: row or line is ever wrapped.
NO_WRAP_WIDTH = 100_000


def is_terminal() -> bool:
    """True when standard output is a terminal."""
    stream = sys.stdout
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def terminal_width() -> int | None:
    """The terminal's width in columns, or ``None`` when the output is not a terminal."""
    if not is_terminal():
        return None
    return max(40, shutil.get_terminal_size((80, 24)).columns)


def _terminal_height() -> int:
    return max(1, shutil.get_terminal_size((80, 24)).lines)


def console() -> Console:
    """A console writing to the current ``sys.stdout`` (create one per command: click's
    test runner swaps it), unwrapped when that is not a terminal."""
    width = terminal_width()
    if width is None:
        return Console(highlight=False, width=NO_WRAP_WIDTH, soft_wrap=True)
    return Console(highlight=False, width=width, height=_terminal_height())


def echo_json(data: Any) -> None:
    """Print ``data`` as strict, indented JSON (NaN and ±infinity as strings)."""
    from ._runs import json_safe

    click.echo(json.dumps(json_safe(data), indent=2, ensure_ascii=False, allow_nan=False))


def json_option(func: F) -> F:
    """The ``--json`` flag (parameter ``as_json``) of a command that prints a table."""
    return click.option("--json", "as_json", is_flag=True,
                        help="Print JSON instead of a table (NaN/inf as strings).")(func)


def command(*words: str) -> str:
    """The command line ``trackmux WORDS...`` as the user should type it: with the
    ``--data-dir`` of the current invocation, if one was given, and shell quoting."""
    prefix = ["trackmux"]
    ctx = click.get_current_context(silent=True)
    data_dir = getattr(ctx.find_root().obj, "data_dir_option", None) if ctx else None
    if data_dir is not None:
        prefix += ["--data-dir", str(data_dir)]
    return " ".join(shlex.quote(word) if word else "''" for word in (*prefix, *words))
