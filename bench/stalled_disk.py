"""Back-pressure: what ``log_metrics`` does when the journal's disk is slow, stalled or full.

Three scenarios, each a tight loop of ``Tracker.log_metrics`` (5 floats) on the offline
tracker, every call timed on its own:

* healthy: the disk works; calls that find ``max_buffer`` (100,000) records waiting wait
  for the committer (the bounded block), which takes 16 frames (8,192 records) at a time;
* stalled: every journal write hangs for ``--stall`` seconds (an NFS server gone, a dying
  disk), then the disk comes back;
* full: every journal write fails with ENOSPC for a while, then the disk is freed.

Reported per scenario: rows logged, the longest single call, the time spent in calls over
1 ms, records dropped (counted in ``DeliveryReport.dropped``), peak RSS, and, after the
disk is back, whether the journal holds every record that was not dropped, gap-free.

Run: ``python bench/stalled_disk.py [--rows 300000] [--stall 8]``.
"""

from __future__ import annotations

import argparse
import errno
import resource
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import trackmux
from trackmux._journal import RunJournal

METRICS = {"loss": 0.5, "acc": 0.9, "lr": 1e-4, "grad": 1.5, "tok": 3.0}


class Disk:
    """Makes ``RunJournal.append`` stall or fail while a mode is set."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.back = threading.Event()
        self.real_append = RunJournal.append
        disk = self

        def append(journal: RunJournal, *args: Any, **kwargs: Any) -> None:
            if disk.mode == "stalled":
                disk.back.wait()
            elif disk.mode == "full":
                raise OSError(errno.ENOSPC, "No space left on device (bench)")
            disk.real_append(journal, *args, **kwargs)

        RunJournal.append = append  # type: ignore[method-assign]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def scenario(name: str, disk: Disk, rows: int, stall: float, workdir: Path) -> dict[str, Any]:
    data_dir = workdir / name
    tracker = trackmux.Tracker(["null"], data_dir=data_dir)
    run = tracker.submit_job(name=name)
    log = tracker.log_metrics
    clock = time.perf_counter
    longest = blocked = 0.0
    disk.mode = {"healthy": "ok", "stalled": "stalled", "full": "full"}[name]
    disk.back.clear()
    if name == "stalled":
        threading.Timer(stall, disk.back.set).start()
    start = clock()
    for step in range(rows):
        before = clock()
        log(run, METRICS, step)
        spent = clock() - before
        longest = max(longest, spent)
        if spent > 1e-3:
            blocked += spent
    wall = clock() - start
    during = tracker.status()
    disk.mode = "ok"
    disk.back.set()
    report = tracker.flush(timeout=120)
    tracker.finish(run, timeout=120)
    tracker.disconnect(timeout=120)
    seqs = [record.seq for record in RunJournal.peek(data_dir / "journal", run).read_all()]
    return {
        "scenario": name,
        "rows": rows,
        "wall_s": wall,
        "longest_call_s": longest,
        "blocked_s": blocked,
        "dropped": report.dropped,
        "journal_error_during": during.journal_error,
        "journaled": len(seqs),
        "gap_free": seqs == list(range(len(seqs))),
        "complete": len(seqs) == rows - report.dropped,
        "peak_rss_mb": peak_rss_mb(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--stall", type=float, default=8.0, help="seconds the disk hangs")
    args = parser.parse_args()
    disk = Disk()
    results = []
    with tempfile.TemporaryDirectory() as workdir:
        for name in ("healthy", "stalled", "full"):
            results.append(scenario(name, disk, args.rows, args.stall, Path(workdir)))
    print(f"{args.rows:,} rows of 5 floats per scenario; stall {args.stall:.0f} s; "
          f"max_buffer 100,000 per run; max_block 5 s")
    print("| scenario | wall | longest call | time in calls > 1 ms | dropped | journaled, "
          "gap-free | peak RSS |")
    print("|---|---|---|---|---|---|---|")
    ok = True
    for r in results:
        print(f"| {r['scenario']} | {r['wall_s']:.2f} s | {r['longest_call_s'] * 1e3:.1f} ms | "
              f"{r['blocked_s']:.2f} s | {r['dropped']:,} | {r['journaled']:,}, "
              f"{'yes' if r['gap_free'] and r['complete'] else 'NO'} | "
              f"{r['peak_rss_mb']:.0f} MB |")
        ok = ok and r["gap_free"] and r["complete"]
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
