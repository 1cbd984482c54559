"""The cost of the hot path: one ``log_metrics`` call with 5 float metrics.

Measures, in one run on this machine:

* ``Tracker.log_metrics`` (sync API) and ``await AsyncTracker.log_metrics`` (async API),
  on the offline tracker: every call timed on its own (``perf_counter_ns``, minus the
  timer's own cost), median and p99 — the background thread's work (journal, delivery)
  shows in the tail, where it steals the interpreter lock;
* the same calls timed in batches of 1,000 (background work spread over every call);
* the floor: an ``await`` of a coroutine that appends to a deque;
* ``import trackmux`` in a fresh process (median of several);
* the tail (``--tail``): 1,000,000 ``Tracker.log_metrics`` calls each timed, p50, p99,
  p99.9 and the maximum, and how many calls took over 1 ms and over 5 ms, with the cyclic GC
  on and, as a control, off (``gc.disable()``): a pause that remains with the GC off is the
  background thread's (or the machine's), one that goes away is a collection. The GC
  collections that ran during the calls are counted too.

Run: ``python bench/hot_path.py`` (``--tail`` for the tail only). Targets (issue 2): median
<= 2 us per call, import <= 150 ms; (issue 15) no pause of trackmux's own over 5 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
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


TAIL_CALLS = 1_000_000


def bench_tail(data_dir: str, overhead: float, collect: bool) -> dict[str, float]:
    """Every one of ``TAIL_CALLS`` calls timed; the GC on (``collect``) or off."""
    clock = time.perf_counter_ns
    laps = [0] * TAIL_CALLS
    with trackmux.Tracker(["null"], data_dir=data_dir) as tracker:
        run = tracker.submit_job(name=f"bench-tail-{'gc' if collect else 'nogc'}")
        log = tracker.log_metrics
        gc.collect()
        before = [stat["collections"] for stat in gc.get_stats()]
        if not collect:
            gc.disable()
        try:
            for step in range(TAIL_CALLS):
                start = clock()
                log(run, METRICS, step)
                laps[step] = clock() - start
        finally:
            gc.enable()
        after = [stat["collections"] for stat in gc.get_stats()]
    ordered = sorted(laps)
    cut = overhead * 1e9

    def at(q: float) -> float:
        return (ordered[min(len(ordered) - 1, int(len(ordered) * q))] - cut) / 1e3

    return {"p50": at(0.5), "p99": at(0.99), "p99.9": at(0.999), "max": (ordered[-1] - cut) / 1e3,
            "over_1ms": sum(lap > 1_000_000 for lap in laps),
            "over_5ms": sum(lap > 5_000_000 for lap in laps),
            "collections": "/".join(str(b - a) for a, b in zip(before, after, strict=True))}


def main_tail(overhead: float) -> None:
    print(f"Tracker.log_metrics (offline tracker), 5 floats, {TAIL_CALLS:,} calls each timed")
    print("| GC | p50 | p99 | p99.9 | max | calls > 1 ms | calls > 5 ms "
          "| collections gen0/1/2 |")
    print("|---|---|---|---|---|---|---|---|")
    for collect in (True, False):
        with tempfile.TemporaryDirectory() as data_dir:
            r = bench_tail(data_dir, overhead, collect)
        print(f"| {'on' if collect else 'off (control)'} | {r['p50']:.2f} us | {r['p99']:.2f} us "
              f"| {r['p99.9']:.2f} us | {r['max']:.0f} us | {r['over_1ms']} | {r['over_5ms']} "
              f"| {r['collections']} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tail", action="store_true", help="only the 1,000,000-call tail")
    args = parser.parse_args()
    overhead = _timer_cost()
    if args.tail:
        main_tail(overhead)
        return
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
    print()
    main_tail(overhead)


if __name__ == "__main__":
    main()
