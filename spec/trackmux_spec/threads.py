"""Blocking work (file reads, hashing) off a plugin's event loop, also at interpreter exit.

``asyncio.to_thread`` runs on a ``concurrent.futures`` executor, which refuses new work once
interpreter shutdown has begun (``RuntimeError: cannot schedule new futures after
shutdown``): exactly when trackmux delivers what is left (``atexit``), artifacts included.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["to_thread"]

T = TypeVar("T")


async def to_thread(fn: Callable[..., T], /, *args: Any) -> T:
    """``await asyncio.to_thread(fn, *args)``; once the executor refuses work (interpreter
    shutdown), ``fn(*args)`` on the loop's thread instead."""
    try:
        future = asyncio.get_running_loop().run_in_executor(None, fn, *args)
    except RuntimeError:  # the default executor is shut down: the process is exiting
        return fn(*args)
    return await future
