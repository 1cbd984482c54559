"""What ``upload_artifact`` costs: on the calling thread, end to end, and to a logging thread.

For each size (default 10 MB and 1 GB of random bytes) and each mode (``copy=True``, the
default, and ``copy=False``), against the offline tracker:

* call: the time ``upload_artifact`` holds the calling thread (copy into the store and
  SHA-256, or SHA-256 only for ``copy=False``);
* end to end: from the call until ``flush()`` reports the tracker holds it;
* log_metrics from another thread meanwhile: the slowest call and the median;
* peak RSS of the process (the file is streamed, never read whole).

Also says whether the store's filesystem made the copy a reflink (``FICLONE``).

    python bench/artifacts.py [--sizes 10,1000] [--dir /path/on/the/disk/to/measure]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import threading
import time
from pathlib import Path

import trackmux
from trackmux._artifacts import ArtifactStore

MB = 1_000_000


def make_file(path: Path, size: int) -> None:
    chunk = os.urandom(8 * MB)
    with open(path, "wb") as out:
        left = size
        while left > 0:
            out.write(chunk[: min(left, len(chunk))])
            left -= len(chunk)


def reflinks(directory: Path) -> bool:
    """Whether the store under ``directory`` gets reflinks (copy-on-write clones)."""
    source = directory / "probe-source"
    source.write_bytes(b"probe")
    (directory / "probe").mkdir()
    with open(source, "rb") as src, open(directory / "probe" / "clone", "wb") as out:
        return ArtifactStore._reflink(src, out)


def measure(base: Path, size: int, copy: bool) -> dict[str, float]:
    source = base / f"source-{size}.bin"
    if not source.exists():
        make_file(source, size)
    data_dir = Path(tempfile.mkdtemp(dir=base))
    stop = threading.Event()
    calls: list[float] = []

    with trackmux.Tracker(["null"], data_dir=data_dir) as tracker:
        run = tracker.submit_job(project_name="bench-artifacts")

        def logger() -> None:
            step = 0
            while not stop.is_set():
                start = time.perf_counter()
                tracker.log_metrics(run, {"loss": 1.0, "lr": 0.1}, step=step)
                calls.append(time.perf_counter() - start)
                step += 1
                time.sleep(0.001)

        thread = threading.Thread(target=logger)
        thread.start()
        time.sleep(0.2)
        start = time.perf_counter()
        tracker.upload_artifact(source, {"name": f"ckpt-{size}"}, copy=copy)
        call = time.perf_counter() - start
        report = tracker.flush(timeout=600)
        end_to_end = time.perf_counter() - start
        stop.set()
        thread.join()
        assert report.trackers[0].artifacts_pending == 0, report
    return {
        "call": call,
        "end_to_end": end_to_end,
        "log_max": max(calls),
        "log_median": statistics.median(calls),
        "log_calls": len(calls),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,1000", help="sizes in MB, comma-separated")
    parser.add_argument("--dir", default=None, help="where the files and stores go")
    args = parser.parse_args()
    sizes = [int(float(s) * MB) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        base = Path(tmp)
        print(f"store on {base} (reflink: {'yes' if reflinks(base) else 'no, streamed copy'})")
        print(f"{'size':>8} {'mode':>10} {'call':>9} {'end to end':>11} "
              f"{'log_metrics meanwhile: median / max':>38}")
        for size in sizes:
            for copy in (True, False):
                r = measure(base, size, copy)
                print(f"{size / MB:>6.0f}MB {'copy' if copy else 'copy=False':>10} "
                      f"{r['call'] * 1000:>7.0f}ms {r['end_to_end'] * 1000:>9.0f}ms "
                      f"{r['log_median'] * 1e6:>16.1f} µs / {r['log_max'] * 1000:>6.1f} ms"
                      f" ({r['log_calls']} calls)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1000
    print(f"peak RSS of the whole benchmark: {peak:.0f} MB")


if __name__ == "__main__":
    main()
