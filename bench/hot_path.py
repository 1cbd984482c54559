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
  collections that ran during the calls are counted too, and those run in the caller's
  own thread (triggered by its allocations).

Options of the tail, to find whose a pause is (the library carries no probe: the bench
wraps the engine from outside):

* ``--attribute``: each pause over 1 ms is put down to what overlapped it most: a GC
  collection (``gc.callbacks``, with its generation and thread), a wait for room in a full
  buffer, a journal commit (with its records and the committer's CPU), a tracker hook call;
  what overlaps none of them is the engine loop's thread or the machine.
* ``--journal-only``: the tracker acknowledges without reading or delivering (the hot path,
  the committer and the loop alone).
* ``--step-us US`` (with ``--calls N``): pace it like a training loop, about US
  microseconds of Python work holding the interpreter lock before each call; the whole
  step is timed, so a pause anywhere in it counts.
* ``--heap N``: hold N extra tracked objects (a framework's heap: what a full collection
  walks); ``--switch-interval MS``: ``sys.setswitchinterval``.

Run: ``python bench/hot_path.py`` (``--tail`` for the tail only). Targets (issue 2): median
<= 2 us per call, import <= 150 ms; (issue 15) no pause of trackmux's own over 5 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

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
PAUSE_NS = 1_000_000  # a call over 1 ms is a pause
LONG_NS = 5_000_000  # the goal: trackmux causes none over 5 ms


class Attribution:
    """What else ran while the caller paused (``--attribute``; the bench instruments the
    engine from outside, the library carries no probe).

    Records the interval of every cyclic-GC collection (``gc.callbacks``: generation and
    thread), of every journal commit (the engine's ``_commit``, wrapped: wall interval and
    the committer thread's CPU in it), of every wait for room in a full buffer (the
    engine's ``_make_room``) and of every tracker hook call (run on the tracker's thread),
    so each pause can be put down to the one of these that overlaps it most.
    """

    def __init__(self, caller: int) -> None:
        self.caller = caller
        self.gcs: list[tuple[int, int, int, bool]] = []  # start, end, generation, in caller
        self.commits: list[tuple[int, int, int, int]] = []  # start, end, CPU ns, records
        self.waits: list[tuple[int, int]] = []  # start, end of a wait for buffer room
        self.hooks: list[tuple[int, int, str]] = []  # start, end, hook name
        self._gc_start = 0

    def on_gc(self, phase: str, info: dict[str, int]) -> None:
        now = time.perf_counter_ns()
        if phase == "start":
            self._gc_start = now
        else:
            self.gcs.append((self._gc_start, now, info["generation"],
                             threading.get_ident() == self.caller))

    def instrument(self, engine: Any) -> None:
        clock, cpu = time.perf_counter_ns, time.thread_time_ns
        commit = engine._commit

        def timed_commit() -> Any:
            start, used = clock(), cpu()
            before = sum(run.journal.record_count for run in engine.runs.values())
            try:
                return commit()
            finally:
                after = sum(run.journal.record_count for run in engine.runs.values())
                self.commits.append((start, clock(), cpu() - used, after - before))

        engine._commit = timed_commit
        make_room = engine._make_room

        def timed_make_room(run: Any) -> bool:
            start = clock()
            try:
                return make_room(run)  # type: ignore[no-any-return]
            finally:
                self.waits.append((start, clock()))

        engine._make_room = timed_make_room
        for worker in engine.workers.values():
            caller_of = worker.hooks.caller

            def timed_caller(hook: str, caller_of: Any = caller_of) -> Any:
                return _TimedHook(caller_of(hook), hook, self.hooks)

            worker.hooks.caller = timed_caller

    def cause(self, start: int, end: int) -> str:
        """The recorded activity overlapping the pause ``[start, end]`` the most."""
        overlap: dict[str, int] = {}

        def add(label: str, a: int, b: int) -> None:
            if a < end and b > start:
                overlap[label] = overlap.get(label, 0) + min(b, end) - max(a, start)

        for a, b, generation, in_caller in self.gcs:
            add(f"GC gen{generation} ({'caller' if in_caller else 'background'} thread)", a, b)
        for a, b in self.waits:
            add("wait for room (buffer full)", a, b)
        for a, b, _, _ in self.commits:
            add("journal commit", a, b)
        for a, b, hook in self.hooks:
            add(f"tracker hook {hook}", a, b)
        if not overlap:
            return "none recorded (the loop thread, or the machine)"
        return max(overlap, key=overlap.__getitem__)


class _TimedHook:
    """A hook caller that records the interval of each call (anything else: the caller's)."""

    def __init__(self, caller: Any, hook: str, into: list[tuple[int, int, str]]) -> None:
        self._caller, self._hook, self._into = caller, hook, into

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter_ns()
        try:
            return self._caller(*args, **kwargs)
        finally:
            self._into.append((start, time.perf_counter_ns(), self._hook))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._caller, name)


def _heap(objects: int) -> list[Any]:
    """``objects`` small tracked containers, standing in for a framework's heap: a full
    collection walks every one of them."""
    return [[i] for i in range(objects)]


def _acknowledge_without_reading(engine: Any) -> None:
    """``--journal-only``: each worker acknowledges what was committed without reading or
    delivering it, so the figures are the hot path's, the committer's and the loop's."""

    async def send(lane: Any) -> None:
        after = lane.run.committed
        if after > lane.cursor:
            lane.cursor = after
            engine.acknowledged(lane.run, "null", after)

    for worker in engine.workers.values():
        worker._send = send


def _calibrate_work(us: float) -> int:
    """Iterations of :func:`_work` that take about ``us`` microseconds here."""
    iterations = 10_000
    start = time.perf_counter()
    _work(iterations)
    return max(1, int(iterations * us / 1e6 / (time.perf_counter() - start)))


def _work(iterations: int) -> None:
    """A training step's own Python work: holds the interpreter lock, allocates nothing."""
    for _ in range(iterations):
        pass


def bench_tail(
    data_dir: str, overhead: float, collect: bool, attribute: bool, journal_only: bool = False,
    calls: int = TAIL_CALLS, work: int = 0,
) -> dict[str, Any]:
    """Every one of ``calls`` calls timed; the GC on (``collect``) or off. With ``work``,
    each call follows ``work`` iterations of :func:`_work` and the whole step is timed."""
    clock = time.perf_counter_ns
    laps = [0] * calls
    pauses: list[tuple[int, int]] = []
    by_thread = [0, 0]  # collections in the caller's thread, in others
    caller = threading.get_ident()

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            by_thread[threading.get_ident() != caller] += 1

    attribution = Attribution(caller) if attribute else None
    with trackmux.Tracker(["null"], data_dir=data_dir) as tracker:
        run = tracker.submit_job(name=f"bench-tail-{'gc' if collect else 'nogc'}")
        tracker.log_metrics(run, METRICS, 0)
        tracker.flush()
        if attribution is not None:
            attribution.instrument(tracker._engine)
        if journal_only:
            _acknowledge_without_reading(tracker._engine)
        log = tracker.log_metrics
        gc.collect()
        before = [stat["collections"] for stat in gc.get_stats()]
        gc.callbacks.append(count)
        if attribution is not None:
            gc.callbacks.append(attribution.on_gc)
        if not collect:
            gc.disable()
        try:
            for step in range(1, calls + 1):
                start = clock()
                if work:
                    _work(work)
                log(run, METRICS, step)
                lap = clock() - start
                laps[step - 1] = lap
                if lap > PAUSE_NS:
                    pauses.append((start, lap))
        finally:
            gc.enable()
            gc.callbacks.remove(count)
            if attribution is not None:
                gc.callbacks.remove(attribution.on_gc)
        after = [stat["collections"] for stat in gc.get_stats()]
    ordered = sorted(laps)
    cut = overhead * 1e9

    def at(q: float) -> float:
        return (ordered[min(len(ordered) - 1, int(len(ordered) * q))] - cut) / 1e3

    causes: dict[str, list[int]] = {}
    if attribution is not None:
        for start, lap in pauses:
            causes.setdefault(attribution.cause(start, start + lap), []).append(lap)
    return {"p50": at(0.5), "p99": at(0.99), "p99.9": at(0.999), "max": (ordered[-1] - cut) / 1e3,
            "over_1ms": len(pauses), "over_5ms": sum(lap > LONG_NS for _, lap in pauses),
            "collections": "/".join(str(b - a) for a, b in zip(before, after, strict=True)),
            "caller_collections": by_thread[0], "background_collections": by_thread[1],
            "causes": causes, "commits": attribution.commits if attribution else []}


def bench_machine(overhead: float, calls: int, work: int) -> dict[str, Any]:
    """The same loop without trackmux, each call ``work`` iterations of :func:`_work` (as
    long as a ``log_metrics`` call, so the loop lasts about as long) and an append to a list:
    the pauses the machine causes by itself, measured beside the others."""
    clock = time.perf_counter_ns
    laps = [0] * calls
    sink: list[Any] = []
    append = sink.append
    for step in range(1, calls + 1):
        start = clock()
        if work:
            _work(work)
        append(step)
        laps[step - 1] = clock() - start
    ordered = sorted(laps)
    cut = overhead * 1e9

    def at(q: float) -> float:
        return (ordered[min(len(ordered) - 1, int(len(ordered) * q))] - cut) / 1e3

    return {"p50": at(0.5), "p99": at(0.99), "p99.9": at(0.999), "max": (ordered[-1] - cut) / 1e3,
            "over_1ms": sum(lap > PAUSE_NS for lap in laps),
            "over_5ms": sum(lap > LONG_NS for lap in laps)}


def main_tail(
    overhead: float, attribute: bool = False, heap: int = 0, journal_only: bool = False,
    calls: int = TAIL_CALLS, step_us: float = 0,
) -> None:
    load = os.getloadavg()
    held = _heap(heap)
    work = _calibrate_work(step_us) if step_us else 0
    what = "journal only, nothing delivered" if journal_only else "offline tracker"
    timed = (f"steps of ~{step_us:g} us of Python work + one call, each step timed"
             if work else "calls each timed")
    print(f"Tracker.log_metrics ({what}), 5 floats, {calls:,} {timed}; "
          f"{heap:,} extra tracked objects on the heap; load average "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; switch interval "
          f"{sys.getswitchinterval() * 1e3:g} ms")
    print("| GC | p50 | p99 | p99.9 | max | calls > 1 ms | calls > 5 ms "
          "| collections gen0/1/2 | of which in the caller's thread |")
    print("|---|---|---|---|---|---|---|---|---|")
    results = []
    for collect in (True, False):
        with tempfile.TemporaryDirectory() as data_dir:
            r = bench_tail(data_dir, overhead, collect, attribute, journal_only, calls, work)
        results.append((collect, r))
        print(f"| {'on' if collect else 'off (control)'} | {r['p50']:.2f} us | {r['p99']:.2f} us "
              f"| {r['p99.9']:.2f} us | {r['max']:.0f} us | {r['over_1ms']} | {r['over_5ms']} "
              f"| {r['collections']} | {r['caller_collections']} |", flush=True)
    m = bench_machine(overhead, calls, work + _calibrate_work(results[0][1]["p50"]))
    print(f"| no trackmux: as long a call, no thread (the machine's own pauses) "
          f"| {m['p50']:.2f} us | {m['p99']:.2f} us | {m['p99.9']:.2f} us | {m['max']:.0f} us "
          f"| {m['over_1ms']} | {m['over_5ms']} | | |", flush=True)
    del held
    if not attribute:
        return
    print()
    print("Pauses over 1 ms, by what overlapped them most (a GC collection, a wait for room in a "
          "full buffer, a journal commit, a tracker hook)")
    print("| GC | cause | calls > 1 ms | calls > 5 ms | longest |")
    print("|---|---|---|---|---|")
    for collect, r in results:
        for cause, laps in sorted(r["causes"].items(), key=lambda item: -len(item[1])):
            print(f"| {'on' if collect else 'off'} | {cause} | {len(laps)} "
                  f"| {sum(lap > LONG_NS for lap in laps)} | {max(laps) / 1e6:.1f} ms |")
    for collect, r in results:
        walls = sorted(end - start for start, end, _, _ in r["commits"])
        cpus = sorted(used for _, _, used, _ in r["commits"])
        sizes = sorted(records for _, _, _, records in r["commits"] if records) or [0]
        if walls:
            print(f"GC {'on' if collect else 'off'}: {len(walls)} journal commits ("
                  f"{len(sizes)} with records: median {sizes[len(sizes) // 2]:,}, p90 "
                  f"{sizes[len(sizes) * 9 // 10]:,}, max {sizes[-1]:,}); wall median "
                  f"{walls[len(walls) // 2] / 1e6:.2f} ms max {walls[-1] / 1e6:.2f} ms; "
                  f"committer CPU median {cpus[len(cpus) // 2] / 1e6:.2f} ms "
                  f"max {cpus[-1] / 1e6:.2f} ms")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tail", action="store_true", help="only the 1,000,000-call tail")
    parser.add_argument("--attribute", action="store_true",
                        help="also put each pause over 1 ms down to a GC collection, a journal "
                             "commit or a tracker hook that overlapped it")
    parser.add_argument("--heap", type=int, default=0, metavar="N",
                        help="hold N extra tracked objects during the tail (a framework's heap: "
                             "what a full collection walks)")
    parser.add_argument("--journal-only", action="store_true",
                        help="the tracker acknowledges without reading or delivering: the "
                             "hot path's, the committer's and the loop's figures alone")
    parser.add_argument("--calls", type=int, default=TAIL_CALLS,
                        help=f"calls in the tail (default {TAIL_CALLS:,})")
    parser.add_argument("--step-us", type=float, default=0, metavar="US",
                        help="pace the tail like a training loop: before each call, about US "
                             "microseconds of Python work holding the interpreter lock; the "
                             "whole step is timed (a pause anywhere in it counts)")
    parser.add_argument("--switch-interval", type=float, metavar="MS",
                        help="sys.setswitchinterval for the run (CPython's default: 5 ms), the "
                             "application's knob: how long a thread waits for the interpreter "
                             "lock before it makes the holder let go")
    args = parser.parse_args()
    if args.switch_interval is not None:
        sys.setswitchinterval(args.switch_interval / 1e3)
    overhead = _timer_cost()
    if args.tail:
        main_tail(overhead, args.attribute, args.heap, args.journal_only, args.calls,
                  args.step_us)
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
