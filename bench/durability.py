"""What ``durability="fsync"`` costs per ``log_metrics`` call, against the default.

Each call is timed on its own (``perf_counter_ns``) with the offline tracker, 5 float
metrics per row; median, p90, p99 and max per mode, in microseconds:

* ``default``: group commit every 50 ms (the hot path appends to a list);
* ``fsync``: the call writes and fsyncs the journal before it returns.

Run: ``python bench/durability.py [--default-calls N] [--fsync-calls N] [--dir PATH]``.
``--dir`` chooses the file system measured (fsync cost is the disk's; the default is a
temporary directory, often tmpfs-backed /tmp, where fsync is nearly free: pass a directory
on the disk your runs write to).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import trackmux


def measure(durability: str, calls: int, base: str | None) -> list[float]:
    """Per-call latencies in microseconds."""
    latencies = []
    with tempfile.TemporaryDirectory(dir=base) as data_dir, \
            trackmux.Tracker(["null"], data_dir=data_dir, durability=durability) as tracker:
        run = tracker.submit_job(name=f"bench-{durability}")
        log = tracker.log_metrics
        clock = time.perf_counter_ns
        for step in range(calls):
            metrics = {"loss": 1.0 / (step + 1), "acc": step * 1e-6, "lr": 3e-4,
                       "grad_norm": 0.5, "tokens": float(step)}
            start = clock()
            log(run, metrics, step)
            latencies.append((clock() - start) / 1000.0)
        tracker.finish(run)
    return latencies


def row(name: str, latencies: list[float]) -> str:
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(len(ordered) * p))]

    return (f"{name:<9} {len(ordered):>9,} {statistics.median(ordered):>11.2f} "
            f"{pct(0.90):>11.2f} {pct(0.99):>11.2f} {ordered[-1]:>11.1f} "
            f"{sum(1 for x in ordered if x > 1000):>8,}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--default-calls", type=int, default=200_000)
    parser.add_argument("--fsync-calls", type=int, default=5_000)
    parser.add_argument("--dir", default=None, help="parent of the temporary data dir")
    args = parser.parse_args()
    default = measure("default", args.default_calls, args.dir)
    fsync = measure("fsync", args.fsync_calls, args.dir)
    where = args.dir or tempfile.gettempdir()
    print(f"log_metrics per call, microseconds (data dir under {where})")
    columns = ("calls", "median", "p90", "p99", "max")
    print(f"{'mode':<9} " + " ".join(f"{c:>{9 if c == 'calls' else 11}}" for c in columns)
          + f" {'>1 ms':>8}")
    print(row("default", default))
    print(row("fsync", fsync))
    ratio = statistics.median(fsync) / statistics.median(default)
    print(f"fsync / default (median): {ratio:,.0f}x")


if __name__ == "__main__":
    main()
