"""The report of 10 runs x 1,000,000 steps x 20 metrics: file size, build time, render time.

Makes the runs once through the public API (``trackmux.Tracker`` with the offline tracker:
20 floats per step, like a real training loop's ``log_metrics``) into a data directory that
is kept for the next time (``--data-dir``), then times ``trackmux report`` over all of them
and opens the file in headless Chromium (Debian's package, driven over the DevTools
protocol as the viewer's tests do), reporting the time from navigation until every chart
drew, and the figures against the issue's budget: a file of a few MB that renders in
under 2 s.

Run: ``python bench/report_size.py [--runs 10] [--steps 1000000] [--metrics 20]
[--data-dir DIR]``. Exit code 1 if the file exceeds 8 MB or rendering takes 2 s or more.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import tempfile
import time
from pathlib import Path

import trackmux
from trackmux._runs import list_runs

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "viewer"))
from _browser import Browser

SIZE_LIMIT_MB = 8.0
RENDER_LIMIT_S = 2.0


def make_runs(data_dir: Path, runs: int, steps: int, metrics: int) -> None:
    """Log ``runs`` runs of ``steps`` steps and ``metrics`` metrics each (skips what the
    data directory already holds)."""
    have = len(list_runs(data_dir)[0])
    names = [f"train/m{k:02d}" for k in range(metrics)]
    for index in range(have, runs):
        rng = random.Random(index)
        started = time.perf_counter()
        with trackmux.Tracker(["null"], data_dir=data_dir) as tracker:
            run = tracker.submit_job(project_name="bench", name=f"run-{index}",
                                     learning_rate=1e-4 * (index + 1), extra={"seed": index})
            scale = [1 + k / 10 for k in range(metrics)]
            for step in range(steps):
                decay = math.exp(-4 * step / steps)
                noise = rng.random()
                tracker.log_metrics(run, {name: scale[k] * decay + 0.01 * noise
                                          for k, name in enumerate(names)}, step=step)
            tracker.finish(run)
        print(f"  made run {index + 1}/{runs} ({run}) in {time.perf_counter() - started:.0f} s",
              flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--metrics", type=int, default=20)
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="where the runs are (made there if missing; kept)")
    args = parser.parse_args()
    data_dir = args.data_dir or Path(tempfile.gettempdir()) / (
        f"trackmux-bench-report-{args.runs}x{args.steps}x{args.metrics}")
    print(f"runs in {data_dir}")
    make_runs(data_dir, args.runs, args.steps, args.metrics)

    out = data_dir / "report.html"
    started, cpu = time.perf_counter(), time.process_time()
    trackmux.report(output=out, data_dir=data_dir, last=args.runs)
    built, built_cpu = time.perf_counter() - started, time.process_time() - cpu
    size_mb = out.stat().st_size / 1e6

    with tempfile.TemporaryDirectory() as profile:
        browser = Browser(Path(profile))
        try:
            renders = []
            for _ in range(3):
                page = browser.new_page()
                page.open(out.as_uri(), timeout=120)
                renders.append(int(page.evaluate("document.body.dataset.renderMs")) / 1000)
                charts = page.evaluate("window.trackmux.charts.size")
                errors = page.errors()
                page.close()
        finally:
            browser.close()
    render = sorted(renders)[1]
    points = args.runs * args.metrics
    print(f"{args.runs} runs x {args.steps:,} steps x {args.metrics} metrics "
          f"({args.runs * args.steps * args.metrics:,} values)")
    print(f"  report build (trackmux.report): {built:.1f} s wall, {built_cpu:.1f} s CPU "
          f"(one core)")
    print(f"  file size:                      {size_mb:.2f} MB (limit {SIZE_LIMIT_MB} MB; "
          f"{points} curves)")
    print(f"  render in headless Chromium:    {render:.2f} s median of 3 {renders} "
          f"(limit {RENDER_LIMIT_S} s; {charts} charts; console errors: {errors or 'none'})")
    ok = size_mb <= SIZE_LIMIT_MB and render < RENDER_LIMIT_S and not errors
    print("OK" if ok else "OVER BUDGET")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
