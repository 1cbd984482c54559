"""Helpers of the viewer tests: runs with known values, the CLI, the report's embedded data."""

from __future__ import annotations

import base64
import gzip
import json
import re
from pathlib import Path
from typing import Any

import trackmux
from click.testing import CliRunner, Result
from trackmux import _cli


def make_run(data_dir: Path, rows: list[dict[str, Any]], *, finish: bool = True,
             **config: Any) -> str:
    """A run of the offline tracker with one record per row, at steps 0, 1, 2..."""
    with trackmux.Tracker(["null"], data_dir=data_dir) as tracker:
        run = tracker.submit_job(**config)
        for step, row in enumerate(rows):
            tracker.log_metrics(run, row, step=step)
        if finish:
            assert tracker.finish(run).delivered
        else:
            tracker.flush()
    return run


def invoke(data_dir: Path, *args: str) -> Result:
    """``trackmux --data-dir DATA_DIR ARGS...`` in-process."""
    runner = CliRunner(env={"COLUMNS": "200"})
    return runner.invoke(_cli.cli, ["--data-dir", str(data_dir), *args],
                         catch_exceptions=False)


def embedded_data(page: str) -> dict[str, Any]:
    """The JSON a report page carries (base64 of gzip)."""
    match = re.search(r'<script id="trackmux-data"[^>]*>([^<]*)</script>', page)
    assert match, "no embedded data in the page"
    return json.loads(gzip.decompress(base64.b64decode(match.group(1))))
