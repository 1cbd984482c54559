"""Total CPU per record: what a training process pays, the background threads included.

``N`` calls of ``Tracker.log_metrics`` with 5 floats to the offline tracker, then ``flush()``
(every record journaled and stored by the tracker): the process's CPU time (``time.process_time``,
every thread) over the calls and the flush, divided by ``N``; the caller's share (its own
thread's CPU, ``time.thread_time``) beside it. CPU time rather than wall time, so other
processes on a loaded machine move the figure little.

It also prints the bytes each record leaves on disk after ``disconnect()``: in the journal,
and in the offline tracker's own files (which keep the rows by reference into the journal).

``--profile`` runs it again under cProfile in every thread (the caller, the committer, the
engine loop, the tracker's thread: a profiler is started in each new thread through
``threading.setprofile``) and prints the functions with the most own time: where the
background time goes. Profiling slows everything; read its proportions, not its totals.

Run: ``python bench/total_cost.py [--records 200000] [--profile]``. Target (issue 15): <= 3 us
per record.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import trackmux

METRICS = {"loss": 0.5, "acc": 0.9, "lr": 1e-4, "grad": 1.5, "tok": 3.0}


def run(records: int) -> tuple[float, float]:
    """(process CPU s, caller-thread CPU s) for ``records`` calls plus ``flush()``."""
    with tempfile.TemporaryDirectory() as data_dir:
        with trackmux.Tracker(["null"], data_dir=data_dir) as tracker:
            run_id = tracker.submit_job(name="total-cost")
            tracker.log_metrics(run_id, METRICS, 0)
            assert tracker.flush().delivered
            log = tracker.log_metrics
            cpu, own = time.process_time(), time.thread_time()
            for step in range(1, records + 1):
                log(run_id, METRICS, step)
            report = tracker.flush()
            cpu, own = time.process_time() - cpu, time.thread_time() - own
            assert report.delivered, report
    return cpu, own


def _bytes_under(path: Path) -> int:
    """Bytes of the files under ``path``, a hard-linked file counted once."""
    seen: dict[tuple[int, int], int] = {}
    for file in path.rglob("*"):
        if file.is_file():
            info = file.stat()
            seen[(info.st_dev, info.st_ino)] = info.st_size
    return sum(seen.values())


def disk_use(records: int) -> dict[str, int]:
    """Bytes on disk after ``records`` calls and ``disconnect()``: the journal's, the
    offline tracker's own (its hard link to the journal counted with the journal)."""
    with tempfile.TemporaryDirectory() as data_dir:
        root = Path(data_dir)
        with trackmux.Tracker(["null"], data_dir=root) as tracker:
            run_id = tracker.submit_job(name="total-cost-disk")
            for step in range(records):
                tracker.log_metrics(run_id, METRICS, step)
        journal = _bytes_under(root / "journal")
        everything = _bytes_under(root)
    return {"journal": journal, "offline tracker": everything - journal}


def profiled(records: int) -> str:
    """A cProfile of ``run(records)`` merged over every thread, as text."""
    profiles: list[cProfile.Profile] = []
    lock = threading.Lock()

    def start_in_thread(frame: Any, event: str, arg: Any) -> None:
        profile = cProfile.Profile()
        with lock:
            profiles.append(profile)
        profile.enable()  # replaces this hook in the thread

    main = cProfile.Profile()
    threading.setprofile(start_in_thread)
    main.enable()
    try:
        run(records)
    finally:
        main.disable()
        threading.setprofile(None)  # type: ignore[arg-type]
    out = io.StringIO()
    stats = pstats.Stats(main, stream=out)
    for profile in profiles:
        profile.disable()
        stats.add(profile)
    stats.sort_stats("tottime").print_stats(25)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    results = sorted(run(args.records) for _ in range(args.repeats))
    cpu, own = results[len(results) // 2]
    n = args.records
    print(f"offline tracker, {n:,} records x 5 floats + flush(), median of {args.repeats} "
          "(CPU time)")
    print("| measure | per record |")
    print("|---|---|")
    print(f"| process CPU (every thread) | {cpu / n * 1e6:.2f} us |")
    print(f"| caller's thread CPU | {own / n * 1e6:.2f} us |")
    print(f"| background threads CPU | {(cpu - own) / n * 1e6:.2f} us |")
    for where, size in disk_use(n).items():
        print(f"| bytes on disk, {where} | {size / n:.1f} B ({size / 1e6:.1f} MB in all) |")
    if args.profile:
        print()
        sys.stdout.write(profiled(args.records))


if __name__ == "__main__":
    main()
