"""Regenerate docs/report.png, the README's picture of ``trackmux report``.

Three simulated fine-tuning runs (learning rates 1e-4, 3e-4, 1e-3) are logged through the
public API into a temporary data directory, ``trackmux.report`` writes their comparison,
and headless Chromium (Debian's ``chromium``, driven as the viewer's tests drive it) takes a
picture of the page's top: the runs, the controls and the first charts.

Run: ``python docs/make_screenshot.py`` (needs the ``test`` extra for websocket-client).
"""

from __future__ import annotations

import base64
import math
import random
import sys
import tempfile
from pathlib import Path

import trackmux

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "viewer"))
from _browser import Browser  # noqa: E402  (the tests' DevTools client)

STEPS = 3000


def log_run(tracker: trackmux.Tracker, learning_rate: float, seed: int) -> str:
    rng = random.Random(seed)
    run = tracker.submit_job(project_name="llama-lora", name=f"lr-{learning_rate:g}",
                             base_model="meta-llama/Llama-2-7b-hf", algorithm="lora",
                             rank=16, learning_rate=learning_rate, batch_size=32,
                             tags=("sweep",), extra={"seed": seed})
    speed = learning_rate / 3e-4
    floor = 0.35 + 0.25 * abs(math.log10(learning_rate / 3e-4))
    for step in range(STEPS):
        frac = step / STEPS
        loss = floor + 2.2 * math.exp(-5 * speed * frac) + rng.gauss(0, 0.05)
        metrics = {"train/loss": loss,
                   "train/accuracy": min(1.0, 0.98 - 0.8 * math.exp(-4 * speed * frac)
                                         - floor / 10 + rng.gauss(0, 0.01)),
                   "lr": learning_rate * 0.5 * (1 + math.cos(math.pi * frac))}
        if step % 100 == 99:
            metrics["eval/loss"] = loss + 0.08 + abs(rng.gauss(0, 0.02))
        tracker.log_metrics(run, metrics, step=step)
    return run


def main() -> None:
    out = ROOT / "docs" / "report.png"
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        with trackmux.Tracker(["null"], data_dir=data_dir) as tracker:
            runs = [log_run(tracker, lr, seed) for seed, lr in enumerate((1e-4, 3e-4, 1e-3))]
        page_path = trackmux.report(runs, Path(tmp) / "report.html", data_dir=data_dir,
                                    title="llama-lora: learning-rate sweep")
        browser = Browser(Path(tmp) / "profile")
        try:
            page = browser.new_page()
            page.send("Emulation.setDeviceMetricsOverride", width=1280, height=900,
                      deviceScaleFactor=1, mobile=False)
            page.open(page_path.as_uri())
            assert page.errors() == [], page.errors()
            bottom = page.evaluate("document.querySelector('.chart').getBoundingClientRect()"
                                   ".bottom + 16")
            shot = page.send("Page.captureScreenshot", format="png",
                             clip={"x": 0, "y": 0, "width": 1280, "height": bottom, "scale": 1})
            out.write_bytes(base64.b64decode(shot["data"]))
            page.close()
        finally:
            browser.close()
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
