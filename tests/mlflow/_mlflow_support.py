"""Helpers shared by the MLflow plugin tests: drive coroutines, connect, make records."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import httpx
import trackmux_mlflow as plugin
from trackmux_spec import ConnectContext, MetricRecord

T = TypeVar("T")


def terminal_log(config: Any) -> Callable[[str], None]:
    """A function writing ``[mlflow] LINE`` on pytest's terminal at once, past output
    capture: the one-time install of the MLflow server takes a minute or two, and a silent
    pause looks like a hang."""
    capture = config.pluginmanager.getplugin("capturemanager")
    reporter = config.pluginmanager.getplugin("terminalreporter")

    def say(line: str) -> None:
        uncaptured = (capture.global_and_fixture_disabled() if capture is not None
                      else contextlib.nullcontext())
        with uncaptured:
            if reporter is None:
                print(f"[mlflow] {line}", file=sys.stderr, flush=True)
            else:
                reporter.ensure_newline()
                reporter.write_line(f"[mlflow] {line}")
                reporter.flush()

    return say


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Drive one coroutine to completion (pytest-asyncio is not used)."""
    return asyncio.run(coro)


class BlockingTransport(httpx.AsyncBaseTransport):
    """Real HTTP to the real server, but performed synchronously inside the event loop.

    trackmux's ``VirtualTimeLoop`` jumps its clock to the next timer whenever the loop
    would wait for I/O, so an awaited socket read on it "times out" at once. The
    conformance suite's delivery properties run on that loop; with this transport every
    request completes before the loop looks at its clock again.
    """

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        sync_request = httpx.Request(
            request.method,
            request.url,
            headers=request.headers,
            content=body,
            extensions=request.extensions,
        )
        response = self._inner.handle_request(sync_request)
        try:
            raw = b"".join(response.stream)  # type: ignore[arg-type]
        finally:
            response.close()
        return httpx.Response(response.status_code, headers=response.headers, content=raw)

    async def aclose(self) -> None:
        self._inner.close()


def context(tmp_path: Path, **settings: Any) -> ConnectContext:
    """A ConnectContext with the given settings."""
    return ConnectContext(data_dir=tmp_path, settings=settings)


async def connect(settings: dict[str, Any], tmp_path: Path, **extra: Any) -> plugin.MLflowSession:
    """Connect the plugin with ``settings`` (tracking_uri, experiment, ...) plus ``extra``."""
    return await plugin.connect({}, context(tmp_path, **settings, **extra))


def records(start: int, stop: int, t0: float = 1_700_000_000.0) -> list[MetricRecord]:
    """Records ``seq`` start..stop-1 with ``step = seq``, a loss and an accuracy."""
    return [
        MetricRecord(i, i, t0 + i, {"loss": 1.0 / (i + 1), "acc": i / 100})
        for i in range(start, stop)
    ]
