"""The example plugin as a user gets it: wheels installed into a fresh virtual environment.

One environment for the module: trackmux's wheel (built from this repository) with its
``spec`` extra, and trackmux-jsonl's wheel (examples/jsonl-tracker). Then, inside it:
discovery (``trackmux plugins --json``), selection (``TRACKMUX_TRACKERS=jsonl``), the
example's own conformance tests, and ``trackmux plugins --check jsonl``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

_REPO = Path(__file__).resolve().parents[1]
_EXAMPLE = _REPO / "examples" / "jsonl-tracker"
_LEAKY = ("TRACKMUX_", "RANK", "LOCAL_RANK", "SLURM_", "OMPI_", "PMI_", "WANDB_", "PYTHON")


def _run(args: list[str | Path], *, cwd: Path, env: dict[str, str] | None = None,
         timeout: float = 300) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=timeout, check=False)
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result


class Venv:
    """A virtual environment with trackmux and trackmux-jsonl installed from wheels."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.bin = root / "venv" / ("Scripts" if os.name == "nt" else "bin")
        self.python = self.bin / "python"
        self.env = {key: value for key, value in os.environ.items()
                    if not key.startswith(_LEAKY)}
        self.env["PATH"] = f"{self.bin}{os.pathsep}{self.env.get('PATH', '')}"
        self.env["TRACKMUX_DIR"] = str(root / "data")

    def run(self, *args: str | Path, env: dict[str, str] | None = None,
            cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        """Run a command of the environment (``trackmux``, ``python``...)."""
        command = [self.bin / str(args[0]), *args[1:]]
        return _run(command, cwd=cwd or self.root, env={**self.env, **(env or {})})


def _build_wheel(source: Path, out: Path) -> Path:
    isolation = [] if importlib.util.find_spec("hatchling") is None else ["--no-build-isolation"]
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-q", "-w", out, source],
         cwd=out)
    name = "trackmux_jsonl" if source == _EXAMPLE else "trackmux"
    wheels = sorted(out.glob(f"{name}-0.1.0-*.whl"))
    assert len(wheels) == 1, list(out.iterdir())
    return wheels[0]


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    root = tmp_path_factory.mktemp("example-plugin")
    wheels = root / "wheels"
    wheels.mkdir()
    core = _build_wheel(_REPO, wheels)
    plugin = _build_wheel(_EXAMPLE, wheels)
    _run([sys.executable, "-m", "venv", root / "venv"], cwd=root)
    env = Venv(root)
    env.run("python", "-m", "pip", "install", "-q", "--disable-pip-version-check",
            f"{core}[spec]", plugin)
    return env


def test_trackmux_plugins_lists_jsonl_with_its_distribution(venv: Venv) -> None:
    listed = json.loads(venv.run("trackmux", "plugins", "--json").stdout)
    plugins = {p["name"]: p for p in listed}
    assert plugins["jsonl"]["version"] == "0.1.0"
    assert plugins["jsonl"]["distribution"] == "trackmux-jsonl"
    assert plugins["jsonl"]["tracker"] is True
    assert plugins["null"]["distribution"] == "trackmux"


def test_trackmux_trackers_selects_jsonl(venv: Venv) -> None:
    script = venv.root / "train.py"
    script.write_text(textwrap.dedent("""
        import json, os, pathlib
        import trackmux

        with trackmux.Tracker() as tracker:
            assert tracker.trackers == ("jsonl",), tracker.trackers
            run = tracker.submit_job(name="venv", learning_rate=0.01)
            for step in range(5):
                tracker.log_metrics(run, {"loss": 1.0 / (step + 1)}, step=step)
        path = pathlib.Path(os.environ["TRACKMUX_DIR"], "trackers", "jsonl", "runs", run + ".jsonl")
        events = [json.loads(line) for line in path.read_text().splitlines()]
        print(json.dumps([e["values"]["loss"] for e in events if e["event"] == "metrics"]))
    """))
    result = venv.run("python", script, env={"TRACKMUX_TRACKERS": "jsonl"})
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [1.0, 0.5, 1 / 3, 0.25, 0.2]


def test_the_example_passes_the_conformance_suite(venv: Venv) -> None:
    tests = venv.root / "example-tests"
    shutil.copytree(_EXAMPLE / "tests", tests, dirs_exist_ok=True)
    result = venv.run("python", "-m", "pytest", "-q", "-p", "no:cacheprovider", tests,
                      cwd=tests)
    assert " passed" in result.stdout and "failed" not in result.stdout


def test_plugins_check_passes_for_jsonl(venv: Venv) -> None:
    result = venv.run("trackmux", "plugins", "--check", "jsonl", "--json")
    report = json.loads(result.stdout)
    assert report["ok"] is True
    skipped = {t["test"] for t in report["tests"] if t["outcome"] == "skipped"}
    assert {t["outcome"] for t in report["tests"]} <= {"passed", "skipped"}
    # the one optional feature the example does not declare (TrackerInfo.journal_references)
    assert skipped == {"test_journal_references_store_each_record_once"}


def test_the_installed_wheel_writes_a_report_with_the_charting_library(venv: Venv) -> None:
    venv.run("trackmux", "demo", "--steps", "20")
    out = venv.root / "report.html"
    venv.run("trackmux", "report", "-o", out)
    page = out.read_text()
    assert 'id="trackmux-data"' in page
    assert "uPlot" in page and "Leon Sorokin" in page  # trackmux/web shipped in the wheel
