"""The cost of the hot path: one ``log_metrics`` call with 5 float metrics.

Measures, in one run on this machine:

* ``Tracker.log_metrics`` (sync API) and ``await AsyncTracker.log_metrics`` (async API),
  on the offline tracker: every call timed on its own (``perf_counter_ns``, minus the
  timer's own cost), median and p99 — the background thread's work (journal, delivery)
  shows in the tail, where it steals the interpreter lock;
* the same calls timed in batches of 1,000 (background work spread over every call);
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
METRICS = {"loss": 0.5, "acc": 0.9, "lr": 1e-4, "grad": 1.5, "tok": 3.0}


def _timer_cost() -> float:
    clock = time.perf_counter_ns
    laps = []
    for _ in range(100_000):
        start = clock()
        laps.append(clock() - start)
    return statistics.median(laps) / 1e9


def _per_call(laps_ns: list[int], overhead: float) -> tuple[float, float]:
    ordered = sorted(laps_ns)
    median = ordered[len(ordered) // 2] / 1e9 - overhead
    p99 = ordered[int(len(ordered) * 0.99)] / 1e9 - overhead
    return median, p99


def bench_sync_each(data_dir: str, overhead: float) -> tuple[float, float]:
    clock = time.perf_counter_ns
    laps = []
    with trackmux.Tracker(["null"], data_dir=data_dir) as tracker:
        run = tracker.submit_job(name="bench-each")
        log = tracker.log_metrics
        for step in range(SAMPLES * CALLS_PER_SAMPLE):
            start = clock()
            log(run, METRICS, step)
            laps.append(clock() - start)
    return _per_call(laps, overhead)


async def bench_async_each(data_dir: str, overhead: float) -> tuple[float, float]:
    clock = time.perf_counter_ns
    laps = []
    async with trackmux.AsyncTracker(["null"], data_dir=data_dir) as tracker:
        run = await tracker.submit_job(name="bench-each")
        log = tracker.log_metrics
        for step in range(SAMPLES * CALLS_PER_SAMPLE):
            start = clock()
            await log(run, METRICS, step)
            laps.append(clock() - start)
    return _per_call(laps, overhead)


async def bench_floor_each(overhead: float) -> tuple[float, float]:
    queue: collections.deque[object] = collections.deque()

    async def append(item: object) -> None:
        queue.append(item)

    clock = time.perf_counter_ns
    laps = []
    for step in range(SAMPLES * CALLS_PER_SAMPLE):
        start = clock()
        await append((step, METRICS))
        laps.append(clock() - start)
    return _per_call(laps, overhead)


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
    overhead = _timer_cost()
    with tempfile.TemporaryDirectory() as data_dir:
        each_sync = bench_sync_each(data_dir, overhead)
        each_async = asyncio.run(bench_async_each(data_dir, overhead))
        batch_sync = bench_sync(data_dir)
        batch_async = asyncio.run(bench_async(data_dir))
    each_floor = asyncio.run(bench_floor_each(overhead))
    batch_floor = asyncio.run(bench_floor())
    imported = bench_import()
    us = 1e6
    rows = [
        ("Tracker.log_metrics, each call timed", each_sync, each_floor),
        ("await AsyncTracker.log_metrics, each call timed", each_async, each_floor),
        ("floor: await of a coroutine appending to a deque", each_floor, each_floor),
        ("Tracker.log_metrics, batches of 1,000", batch_sync, batch_floor),
        ("await AsyncTracker.log_metrics, batches of 1,000", batch_async, batch_floor),
        ("floor, batches of 1,000", batch_floor, batch_floor),
    ]
    print(f"5 float metrics per call; {SAMPLES * CALLS_PER_SAMPLE:,} calls each")
    print("| measurement | median | p99 | median vs floor |")
    print("|---|---|---|---|")
    for label, (median, p99), (floor, _) in rows:
        print(f"| {label} | {median * us:.2f} us | {p99 * us:.2f} us | {median / floor:.1f}x |")
    print(f"| import trackmux (fresh process, median of 7) | {imported * 1e3:.1f} ms | | |")


if __name__ == "__main__":
    main()
