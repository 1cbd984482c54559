"""Load: 8 processes log 100,000 rows each to one (fake) W&B server, at once; nothing lost.

The parent serves a :class:`~trackmux_wandb.testing.FakeWandB` on 127.0.0.1 (real HTTP/1.1
over loopback) and starts the children with ``WANDB_BASE_URL`` / ``WANDB_API_KEY`` in their
environment. Each child logs its rows in a tight loop with ``trackmux.Tracker(["wandb"])``,
then ``finish()`` delivers the rest. The parent then checks every run on the server holds
each of its rows exactly once, in order, and prints rows/s, requests and bytes.

Run: ``python bench/load_processes.py [--processes 8] [--rows 100000]``.
Exit code 1 if anything was lost or duplicated.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

PROJECT = "load"


def child(index: int, rows: int, data_dir: str) -> None:
    import trackmux

    started = time.perf_counter()
    with trackmux.Tracker(["wandb"], data_dir=data_dir) as tracker:
        run = tracker.submit_job(run_id=f"load{index:04d}", project_name=PROJECT,
                                 name=f"process {index}")
        connected = time.perf_counter()
        log = tracker.log_metrics
        for step in range(rows):
            log(run, {"loss": 1.0 / (step + 1), "acc": step / rows, "p": index, "i": step},
                step)
        logged = time.perf_counter()
        report = tracker.finish(run, timeout=600)
    done = time.perf_counter()
    print(json.dumps({"run": run, "connect_s": connected - started,
                      "log_s": logged - connected, "total_s": done - started,
                      "delivered": report.delivered, "report": str(report)}), flush=True)


def parent(processes: int, rows: int) -> int:
    from trackmux_wandb.testing import FakeWandB

    fake = FakeWandB()
    with fake.serve() as url, tempfile.TemporaryDirectory() as base:
        env = {**os.environ, "WANDB_BASE_URL": url, "WANDB_API_KEY": fake.api_key}
        for name in ("TRACKMUX_TRACKERS", "TRACKMUX_DIR", "WANDB_MODE", "WANDB_PROJECT"):
            env.pop(name, None)
        started = time.perf_counter()
        children = [
            subprocess.Popen([sys.executable, __file__, "--child", str(i), "--rows", str(rows),
                              "--data-dir", os.path.join(base, f"p{i}")],
                             stdout=subprocess.PIPE, text=True, env=env)
            for i in range(processes)
        ]
        results = []
        for proc in children:
            out, _ = proc.communicate()
            if proc.returncode != 0:
                print(f"child failed with exit code {proc.returncode}: {out}")
                return 1
            results.append(json.loads(out.strip().splitlines()[-1]))
        elapsed = time.perf_counter() - started
    lost = 0
    for result in results:
        history = fake.history(fake.entity, PROJECT, result["run"])
        got = [row["i"] for row in history]
        if got != list(range(rows)):
            lost += 1
            print(f"{result['run']}: {len(got)} rows on the server for {rows} logged; "
                  f"first mismatch at {next((i for i, v in enumerate(got) if v != i), len(got))}")
        state = fake.run(fake.entity, PROJECT, result["run"]).state
        if state != "finished":
            lost += 1
            print(f"{result['run']}: state {state!r}, expected 'finished'")
    requests = fake.requests
    streams = [r for r in requests if r.operation == "file_stream"]
    total = processes * rows
    print(f"processes                 {processes}")
    print(f"rows per process          {rows:,}")
    print(f"rows delivered in all     {total:,}  ({'all, once, in order' if not lost else 'LOSS'})")
    print(f"wall time                 {elapsed:.2f} s (start of the first child to the last "
          f"finish())")
    print(f"throughput                {total / elapsed:,.0f} rows/s delivered end to end")
    connect_s = statistics.median_high(r["connect_s"] for r in results)
    log_s = statistics.median_high(r["log_s"] for r in results)
    print(f"connect + submit_job      median {connect_s:.2f} s")
    print(f"log loop per process      median {log_s:.2f} s "
          f"({rows / log_s:,.0f} rows/s per process)")
    print(f"requests                  {len(requests):,} ({len(streams):,} file_stream, "
          f"{sum(1 for r in requests if r.status is None or r.status >= 400)} failed)")
    print(f"history lines sent        {sum(r.history_lines for r in streams):,}")
    print(f"bytes sent                {sum(r.body_bytes for r in requests):,} "
          f"({sum(r.body_bytes for r in requests) / total:.0f} per row)")
    print(f"bytes received            {sum(r.response_bytes for r in requests):,}")
    return 1 if lost else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child, args.rows, args.data_dir)
        return
    sys.exit(parent(args.processes, args.rows))


if __name__ == "__main__":
    main()
