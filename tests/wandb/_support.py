"""Helpers shared by the W&B plugin tests: drive coroutines, connect to a FakeWandB, spy."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import httpx
import trackmux_wandb as plugin
from trackmux_spec import ConnectContext, MetricRecord
from trackmux_wandb.testing import FakeWandB

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Drive one coroutine to completion (pytest-asyncio is not used)."""
    return asyncio.run(coro)


class Spy(httpx.AsyncBaseTransport):
    """Wraps the fake's transport: records requests, can rewrite responses."""

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        rewrite: Callable[[httpx.Request, httpx.Response], httpx.Response | None] | None = None,
    ) -> None:
        self.inner = inner
        self.rewrite = rewrite
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        response = await self.inner.handle_async_request(request)
        if self.rewrite is not None:
            await response.aread()
            return self.rewrite(request, response) or response
        return response


def context(
    fake: FakeWandB, tmp_path: Path, transport: Any = None, **settings: Any
) -> ConnectContext:
    """A ConnectContext routing every request to ``fake`` in-process."""
    return ConnectContext(
        data_dir=tmp_path,
        settings={
            "transport": transport or fake.transport(),
            "base_url": fake.base_url,
            "artifact_retry_wait": 0,
            **settings,
        },
    )


async def connect(
    fake: FakeWandB, tmp_path: Path, transport: Any = None, **settings: Any
) -> plugin.WandBSession:
    """Connect with the fake's key."""
    return await plugin.connect(
        {"api_key": fake.api_key}, context(fake, tmp_path, transport, **settings)
    )


def records(start: int, stop: int, t0: float = 1_700_000_000.0) -> list[MetricRecord]:
    """Records ``seq`` start..stop-1 with ``step = seq`` and a loss value."""
    return [
        MetricRecord(i, i, t0 + i, {"loss": 1.0 / (i + 1), "acc": i / 100})
        for i in range(start, stop)
    ]
