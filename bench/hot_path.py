"""The cost of the hot path: one ``log_metrics`` call with 5 float metrics.

Measures, in one run on this machine:

* ``Tracker.log_metrics`` (sync API) and ``await AsyncTracker.log_metrics`` (async API),
  on the offline tracker, per call: median and p99 over batches of calls;
* the floor: an ``await`` of a coroutine that appends to a deque;
* ``import trackmux`` in a fresh process (median of several).

Run: ``python bench/hot_path.py``. Targets (issue 2): median <= 2 us per call, import
<= 150 ms.
"""

from __future__ import annotations

import asyncio
import collections
import statistics
import subprocess
import sys
import tempfile
import time

import trackmux

CALLS_PER_SAMPLE = 1_000
SAMPLES = 200


def _summary(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.99) - 1]


def bench_sync(data_dir: str) -> tuple[float, float]:
    samples = []
    with trackmux.Tracker(["null"], data_dir=data_dir) as tracker:
        run = tracker.submit_job(name="bench")
        log = tracker.log_metrics
        step = 0
        for _ in range(SAMPLES):
            start = time.perf_counter()
            for _ in range(CALLS_PER_SAMPLE):
                log(run, {"loss": 0.5, "acc": 0.9, "lr": 1e-4, "grad": 1.5, "tok": 3.0}, step)
                step += 1
            samples.append((time.perf_counter() - start) / CALLS_PER_SAMPLE)
    return _summary(samples)


async def bench_async(data_dir: str) -> tuple[float, float]:
    samples = []
    async with trackmux.AsyncTracker(["null"], data_dir=data_dir) as tracker:
        run = await tracker.submit_job(name="bench")
        log = tracker.log_metrics
        step = 0
        for _ in range(SAMPLES):
            start = time.perf_counter()
            for _ in range(CALLS_PER_SAMPLE):
                await log(run, {"loss": 0.5, "acc": 0.9, "lr": 1e-4, "grad": 1.5, "tok": 3.0}, step)
                step += 1
            samples.append((time.perf_counter() - start) / CALLS_PER_SAMPLE)
    return _summary(samples)


async def bench_floor() -> tuple[float, float]:
    queue: collections.deque[object] = collections.deque()

    async def append(item: object) -> None:
        queue.append(item)

    samples = []
    for _ in range(SAMPLES):
        start = time.perf_counter()
        for step in range(CALLS_PER_SAMPLE):
            await append({"loss": 0.5, "acc": 0.9, "lr": 1e-4, "grad": 1.5, "tok": 3.0, "s": step})
        samples.append((time.perf_counter() - start) / CALLS_PER_SAMPLE)
        queue.clear()
    return _summary(samples)


def bench_import(repeats: int = 7) -> float:
    times = []
    for _ in range(repeats):
        out = subprocess.run(
            [sys.executable, "-c",
             "import time; t = time.perf_counter(); import trackmux; "
             "print(time.perf_counter() - t)"],
            capture_output=True, text=True, check=True)
        times.append(float(out.stdout))
    return statistics.median(times)


def main() -> None:
    with tempfile.TemporaryDirectory() as data_dir:
        sync_median, sync_p99 = bench_sync(data_dir)
        async_median, async_p99 = asyncio.run(bench_async(data_dir))
    floor_median, floor_p99 = asyncio.run(bench_floor())
    imported = bench_import()
    us = 1e6
    print("| measurement | median | p99 | vs floor |")
    print("|---|---|---|---|")
    print(f"| Tracker.log_metrics (5 floats) | {sync_median * us:.2f} us | {sync_p99 * us:.2f} us "
          f"| {sync_median / floor_median:.1f}x |")
    print(f"| await AsyncTracker.log_metrics (5 floats) | {async_median * us:.2f} us "
          f"| {async_p99 * us:.2f} us | {async_median / floor_median:.1f}x |")
    print(f"| floor: await coroutine appending to a deque | {floor_median * us:.2f} us "
          f"| {floor_p99 * us:.2f} us | 1.0x |")
    print(f"| import trackmux (fresh process) | {imported * 1e3:.1f} ms | | |")


if __name__ == "__main__":
    main()
