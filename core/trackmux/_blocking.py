"""Run blocking plugin hooks off the engine's event loop, one dedicated thread per user.

``concurrent.futures`` executors refuse new work once interpreter shutdown has begun, which
is exactly when trackmux must still flush (``atexit``). A plain daemon thread fed by a queue
keeps working until the process ends.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["BlockingRunner", "InlineRunner"]


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.cancelled():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


class BlockingRunner:
    """A daemon thread that runs callables in order and settles asyncio futures."""

    def __init__(self, name: str) -> None:
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def run(self, loop: asyncio.AbstractEventLoop, fn: Callable[[], Any]) -> asyncio.Future[Any]:
        """Schedule ``fn`` on the thread; the returned future settles on ``loop``."""
        future = loop.create_future()
        self._queue.put((loop, future, fn))
        return future

    def _serve(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            loop, future, fn = item
            try:
                value, ok = fn(), True
            except BaseException as exc:  # handed to the awaiting coroutine
                value, ok = exc, False
            try:
                loop.call_soon_threadsafe(_settle, future, ok, value)
            except RuntimeError:  # the loop is closed: nobody waits any more
                return

    def close(self) -> None:
        """Let the thread end after the work already queued."""
        self._queue.put(None)


class InlineRunner:
    """Runs callables immediately on the loop's thread (virtual-time tests)."""

    def run(self, loop: asyncio.AbstractEventLoop, fn: Callable[[], Any]) -> asyncio.Future[Any]:
        """Run ``fn`` now; return a settled future."""
        future = loop.create_future()
        try:
            future.set_result(fn())
        except BaseException as exc:
            future.set_exception(exc)
        return future

    def close(self) -> None:
        """Nothing to release."""
