"""Delivery latency to W&B: p50/p99/max from ``log_metrics`` to the row stored on the server.

A FakeWandB served over loopback HTTP (127.0.0.1), ``trackmux.Tracker(["wandb"])`` with its
defaults (5 s batch interval, W&B's 5 s ``min_batch_interval``), rows of 5 floats logged at
``--rate`` per second for ``--seconds`` seconds, no ``flush()`` until the end: the intervals and
retries alone deliver. A thread polls the server's history every 5 ms and notes when each row
first appears. Two cases: a healthy server, and issue 15's fault burst on file_stream
(3 x 503, 2 x 429 with Retry-After 1, 2 answers lost after the server stored the rows, 1
dropped connection), injected ``--burst-at`` seconds in. Goals: healthy p99 <= 6 s; under
the burst every row within 30 s.

This is wall-clock time (the backoffs and intervals are real waits), so a loaded machine
moves it by the polling and scheduling delays only (milliseconds, against seconds measured).
The deterministic version of the burst case is
``tests/test_fault_matrix.py::test_the_fault_burst_delivers_every_row_within_30_seconds``
(virtual clock).

Run: ``python bench/latency.py [--seconds 40] [--rate 20] [--burst-at 10]``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Sized

import trackmux
from trackmux_wandb.testing import AfterApply, Drop, FakeWandB, Status, Timeout

PROJECT = "latency"


def inject_burst(fake: FakeWandB) -> None:
    """Issue 15's burst, in order, on file_stream."""
    fake.inject(Status(503), count=3, match="file_stream")
    fake.inject(Status(429, retry_after=1), count=2, match="file_stream")
    fake.inject(AfterApply(Timeout(delay=2.0)), count=2, match="file_stream")
    fake.inject(Drop(), count=1, match="file_stream")


def row_values(step: int) -> dict[str, float]:
    """The 5 floats of one row."""
    return {"loss": 1.0 / (step + 1), "acc": 0.5, "lr": 3e-4, "grad_norm": 1.25,
            "tokens": float(step)}


def log_paced(
    tracker: trackmux.Tracker,
    run: str,
    count: int,
    rate: float,
    stored: Sized,
    *,
    values: Callable[[int], dict[str, float]] = row_values,
    on_step: Callable[[int], object] | None = None,
) -> list[float]:
    """Log ``count`` rows at ``rate`` per second, no ``flush()`` (``on_step(step)`` runs just
    before each), then wait up to 120 s until ``stored`` (filled by the caller's poller)
    holds as many; the ``perf_counter`` time each row was logged."""
    logged: list[float] = []
    start = time.perf_counter()
    for step in range(count):
        time.sleep(max(0.0, start + step / rate - time.perf_counter()))
        if on_step is not None:
            on_step(step)
        logged.append(time.perf_counter())
        tracker.log_metrics(run, values(step), step)
    deadline = time.perf_counter() + 120
    while len(stored) < count and time.perf_counter() < deadline:
        time.sleep(0.05)
    return logged


def measure(seconds: float, rate: float, burst_at: float | None) -> list[float]:
    """Per-row latency in seconds (log to first seen stored)."""
    fake = FakeWandB()
    url = fake.start()
    stored: list[float] = []
    done = threading.Event()
    run_id = "lat" + ("burst" if burst_at is not None else "ok")

    def poll() -> None:
        while not done.is_set():
            held = len(fake.history(fake.entity, PROJECT, run_id))
            now = time.perf_counter()
            stored.extend([now] * (held - len(stored)))
            time.sleep(0.005)

    try:
        with tempfile.TemporaryDirectory() as data_dir:
            tracker = trackmux.Tracker(["wandb"], data_dir=data_dir,
                                       settings={"wandb": {"base_url": url}})
            tracker.connect({"api_key": fake.api_key})
            with tracker:
                run = tracker.submit_job(project_name=PROJECT, run_id=run_id)
                poller = threading.Thread(target=poll, daemon=True)
                poller.start()
                count = int(seconds * rate)
                burst_step = None if burst_at is None else int(burst_at * rate)

                def burst(step: int) -> None:
                    if step == burst_step:
                        inject_burst(fake)

                logged = log_paced(tracker, run, count, rate, stored, on_step=burst)
                done.set()
                poller.join()
                assert len(stored) >= count, f"{len(stored)} of {count} rows stored"
                assert fake.pending_faults == 0
    finally:
        fake.stop()
    return [s - at for s, at in zip(stored, logged, strict=False)]


def quantile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 1000) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--rate", type=float, default=20.0, help="rows logged per second")
    parser.add_argument("--burst-at", type=float, default=10.0)
    args = parser.parse_args()
    print(f"| W&B (FakeWandB, loopback), {args.rate:g} rows/s for {args.seconds:g} s "
          "| p50 | p99 | max |")
    print("|---|---|---|---|")
    for label, burst in (("healthy", None), ("fault burst", args.burst_at)):
        latency = measure(args.seconds, args.rate, burst)
        print(f"| {label} | {quantile(latency, 0.5):.2f} s | {quantile(latency, 0.99):.2f} s "
              f"| {max(latency):.2f} s |", flush=True)


if __name__ == "__main__":
    main()
