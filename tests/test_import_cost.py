"""What ``import trackmux`` does not import: the engine, asyncio, entry points, HTTP.

A training script pays for ``import trackmux`` at its first line; everything else loads
when it is used (asyncio and the engine when a tracker is made, entry-point metadata when
a tracker is selected, httpx/ssl only for a remote tracker). Checked in fresh interpreters
through ``sys.modules``, not by timing (``bench/import_time.py`` measures the time).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

#: Modules ``import trackmux`` must leave alone.
_HEAVY = ("asyncio", "ssl", "httpx", "importlib.metadata", "cattrs", "rich", "click", "sqlite3",
          "concurrent.futures", "trackmux._engine", "trackmux._journal", "trackmux._api",
          "trackmux_null", "trackmux_wandb", "trackmux_mlflow", "hypothesis", "pytest")


def _fresh(code: str, tmp_path: Path) -> dict[str, list[str]]:
    """Run ``code`` in a fresh interpreter; it prints a JSON object as its last line."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TRACKMUX_", "WANDB_", "RANK", "PYTHON"))}
    env["TRACKMUX_DIR"] = str(tmp_path / "data")
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_import_trackmux_imports_none_of_the_heavy_modules(tmp_path: Path) -> None:
    got = _fresh(f"""
        import json, sys
        import trackmux
        print(json.dumps({{"loaded": [m for m in {_HEAVY!r} if m in sys.modules]}}))
    """, tmp_path)
    assert got["loaded"] == []


def test_every_public_name_still_resolves(tmp_path: Path) -> None:
    got = _fresh("""
        import json
        import trackmux
        missing = [name for name in trackmux.__all__ if not hasattr(trackmux, name)]
        listed = [name for name in trackmux.__all__ if name not in dir(trackmux)]
        from trackmux import Tracker, sync, DeliveryReport
        print(json.dumps({"missing": missing, "listed": listed,
                          "tracker": Tracker.__module__, "sync": sync.__module__}))
    """, tmp_path)
    assert got == {"missing": [], "listed": [], "tracker": "trackmux._api",
                   "sync": "trackmux._sync"}


def test_importing_the_tracker_classes_loads_no_engine_until_a_tracker_is_made(
        tmp_path: Path) -> None:
    got = _fresh("""
        import json, sys
        from trackmux import AsyncTracker, Tracker, TrainingConfig
        before = [m for m in ("asyncio", "trackmux._engine", "sqlite3") if m in sys.modules]
        Tracker(["null"])
        after = [m for m in ("asyncio", "trackmux._engine") if m in sys.modules]
        print(json.dumps({"before": before, "after": after}))
    """, tmp_path)
    assert got == {"before": [], "after": ["asyncio", "trackmux._engine"]}


def test_the_command_line_help_loads_no_engine(tmp_path: Path) -> None:
    got = _fresh("""
        import json, sys
        from trackmux._cli import cli
        print(json.dumps({"loaded": [m for m in ("asyncio", "trackmux._engine", "httpx",
                                                 "importlib.metadata", "trackmux_null")
                                     if m in sys.modules]}))
    """, tmp_path)
    assert got["loaded"] == []


@pytest.mark.slow
def test_an_offline_run_loads_no_http_and_no_other_tracker(tmp_path: Path) -> None:
    got = _fresh("""
        import json, sys
        import trackmux

        with trackmux.Tracker(["null"]) as tracker:
            run = tracker.submit_job(name="offline")
            tracker.log_metrics(run, {"loss": 1.0}, step=0)
        print(json.dumps({"loaded": [m for m in ("httpx", "trackmux_wandb", "trackmux_mlflow")
                                     if m in sys.modules],
                          "engine": "asyncio" in sys.modules}))
    """, tmp_path)
    assert got == {"loaded": [], "engine": True}
