"""The W&B plugin on the wire: rows per second into file_stream requests, bytes per row.

Logs N rows of 5 float metrics through ``trackmux.Tracker(["wandb"])`` against a FakeWandB,
in-process (httpx MockTransport: the plugin's own cost) and over loopback HTTP (a real
server on 127.0.0.1), and prints, per mode: rows/s from the first log until ``flush()``
returns, file_stream requests and bytes per 1,000 rows, and bytes per row.

Run: ``python bench/wandb_wire.py [--rows 100000]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import trackmux
from trackmux_wandb.testing import FakeWandB


def measure(rows: int, served: bool) -> dict[str, float]:
    fake = FakeWandB()
    with tempfile.TemporaryDirectory() as data_dir:
        if served:
            url = fake.start()
            settings = {"wandb": {"base_url": url}}
        else:
            settings = {"wandb": {"transport": fake.transport(), "base_url": fake.base_url}}
        try:
            tracker = trackmux.Tracker(["wandb"], data_dir=data_dir, settings=settings)
            tracker.connect({"api_key": fake.api_key})
            with tracker:
                run = tracker.submit_job(project_name="bench")
                fake.clear_requests()
                start = time.perf_counter()
                for step in range(rows):
                    tracker.log_metrics(run, {"loss": 1.0 / (step + 1), "acc": 0.5, "lr": 3e-4,
                                              "grad_norm": 1.25, "tokens": float(step)}, step)
                report = tracker.flush()
                elapsed = time.perf_counter() - start
                assert report.delivered, report
        finally:
            if served:
                fake.stop()
    stored = len(fake.history(fake.entity, "bench", run))
    assert stored == rows, (stored, rows)
    streams = [r for r in fake.requests if r.operation == "file_stream" and r.history_lines]
    sent = sum(r.body_bytes for r in streams)
    return {"rows_per_s": rows / elapsed, "requests_per_1k": len(streams) / rows * 1000,
            "bytes_per_1k": sent / rows * 1000, "bytes_per_row": sent / rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    print(f"| W&B plugin, {args.rows:,} rows x 5 floats | rows/s | file_stream requests / 1k rows "
          "| bytes / 1k rows | bytes / row |")
    print("|---|---|---|---|---|")
    for label, served in (("in-process (MockTransport)", False), ("loopback HTTP", True)):
        r = measure(args.rows, served)
        print(f"| {label} | {r['rows_per_s']:,.0f} | {r['requests_per_1k']:.2f} | "
              f"{r['bytes_per_1k']:,.0f} | {r['bytes_per_row']:.1f} |")


if __name__ == "__main__":
    main()
