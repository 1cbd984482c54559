"""Memory with a dead backend: log 10 million rows while the only tracker (W&B) is down.

The W&B tracker connects to a healthy :class:`~trackmux_wandb.testing.FakeWandB`
(in-process transport), the run is created, then the server goes down for good
(``outage(True)``: every request gets 503). The script logs N rows in a tight loop while the
engine keeps retrying, and reports peak RSS (``ru_maxrss``), which must stay under 150 MB:
records wait in the journal on disk, not in memory. ``disconnect()`` then gives up on
delivery; ``trackmux show``'s view of the journal (``trackmux._runs.load_run``) must count
all N records, none of them acknowledged by W&B. With ``--sync`` the server comes back and
``trackmux.sync`` delivers them (checked against the server: every row once, in order).

Run: ``python bench/dead_backend_memory.py [--rows 10000000] [--sync]``.
Exit code 1 if the RSS limit is exceeded or a record is missing.
"""

from __future__ import annotations

import argparse
import gc
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

import trackmux
from trackmux._runs import load_run
from trackmux_wandb.testing import FakeWandB

LIMIT_MB = 150.0
PROJECT = "dead"


def rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (Linux: ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def current_rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / (1 << 20)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--sync", action="store_true", help="bring the server back and sync")
    parser.add_argument("--dir", default=None, help="parent of the temporary data dir")
    args = parser.parse_args()

    fake = FakeWandB()
    settings = {"wandb": {"transport": fake.transport(), "base_url": fake.base_url}}
    samples: list[tuple[float, float]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.5):
            samples.append((time.perf_counter(), current_rss_mb()))

    with tempfile.TemporaryDirectory(dir=args.dir) as base:
        data_dir = Path(base) / "data"
        tracker = trackmux.Tracker(["wandb"], data_dir=data_dir, settings=settings)
        tracker.connect({"api_key": fake.api_key})
        run = tracker.submit_job(run_id="dead0001", project_name=PROJECT)
        gc.collect()
        baseline = current_rss_mb()
        fake.outage(True)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.perf_counter()
        log = tracker.log_metrics
        rows = args.rows
        for step in range(rows):
            log(run, {"loss": 1.0 / (step + 1), "acc": step / rows, "lr": 3e-4, "i": step}, step)
        logged = time.perf_counter()
        status = tracker.status()
        report = tracker.disconnect(timeout=0)
        closed = time.perf_counter()
        stop.set()
        sampler.join()
        peak = rss_mb()
        info = load_run(data_dir, run)
        journaled = info.record_count
        failed_requests = sum(1 for r in fake.requests if r.status == 503)
        print(f"rows logged               {rows:,} in {logged - started:.1f} s "
              f"({rows / (logged - started):,.0f} rows/s, "
              f"{(logged - started) / rows * 1e6:.2f} us per call)")
        print(f"status while down         {status}")
        print(f"disconnect(timeout=0)     {report} ({closed - logged:.1f} s)")
        print(f"RSS before logging        {baseline:.1f} MB")
        print(f"RSS while logging         max {max((m for _, m in samples), default=0):.1f} MB "
              f"over {len(samples)} samples")
        print(f"peak RSS (ru_maxrss)      {peak:.1f} MB (limit {LIMIT_MB:.0f} MB): "
              f"{'OK' if peak < LIMIT_MB else 'OVER'}")
        print(f"journal record count      {journaled:,} "
              f"({'all' if journaled == rows else 'MISSING ' + str(rows - journaled)})")
        print(f"requests refused (503)    {failed_requests:,}")
        print(f"journal size on disk      "
              f"{sum(p.stat().st_size for p in data_dir.rglob('*') if p.is_file()) / 1e6:.1f} MB")
        ok = peak < LIMIT_MB and journaled == rows
        if args.sync:
            fake.outage(False)
            synced_at = time.perf_counter()
            result = trackmux.sync(tracker="wandb", data_dir=data_dir,
                                   credentials={"api_key": fake.api_key}, settings=settings)
            history = fake.history(fake.entity, PROJECT, run)
            exact = [row["i"] for row in history] == list(range(rows))
            print(f"sync after recovery       {result.runs} in "
                  f"{time.perf_counter() - synced_at:.1f} s; server holds {len(history):,} rows "
                  f"({'each once, in order' if exact else 'MISMATCH'})")
            ok = ok and result.ok and exact
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
