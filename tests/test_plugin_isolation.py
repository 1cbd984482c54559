"""One broken plugin never breaks the others: wheels installed beside trackmux, for real.

Five wheels go into a target directory on ``sys.path`` of the subprocesses (pip installs
them; no network): a working tracker, a tracker whose import fails, a tracker with a
misspelled hook parameter (its registration fails), a working wrapper and a wrapper whose
import fails. Then, in fresh processes: the working tracker and the built-in ones keep
working, only the selected tracker and the wrappers are imported, ``trackmux plugins``
lists the broken ones with the reason, and selecting a broken one is an error naming its
entry point and distribution.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pluggy
import pytest
import trackmux
from memory_tracker import MemoryTracker
from trackmux._plugins import PluginManager, tracker_caller, tracker_names
from wheels import build_wheel, install

pytestmark = pytest.mark.slow

_GOOD = '''
"""A working tracker that keeps everything in its session."""
import trackmux
from trackmux_spec import JobStatus, UnknownJobError


class Session:
    def __init__(self):
        self.rows, self.status = {}, {}


@trackmux.hookimpl
def connect(credentials, context):
    return Session()


@trackmux.hookimpl
def disconnect(session):
    return None


@trackmux.hookimpl
def submit_job(session, run_id, config):
    session.rows.setdefault(run_id, {})
    session.status.setdefault(run_id, JobStatus.RUNNING)
    return run_id


@trackmux.hookimpl
def log_metrics(session, job_id, records):
    for record in records:
        session.rows[job_id].setdefault(record.seq, dict(record.values, _step=record.step,
                                                         _timestamp=record.timestamp))


@trackmux.hookimpl
def finish_job(session, job_id, status):
    session.status[job_id] = session.status.get(job_id) or status


@trackmux.hookimpl
def get_job_status(session, job_id):
    if job_id not in session.status:
        raise UnknownJobError(job_id)
    return session.status[job_id]


@trackmux.hookimpl
def get_run_url(session, job_id):
    return f"good://{job_id}"


@trackmux.hookimpl
def get_history(session, job_id):
    if job_id not in session.rows:
        raise UnknownJobError(job_id)
    return [row for _, row in sorted(session.rows[job_id].items())]
'''

_BROKEN_IMPORT = '''
import trackmux
import trackmux_no_such_dependency  # the failing import


@trackmux.hookimpl
def connect(credentials, context):
    return object()
'''

_MISSPELLED = '''
import trackmux


@trackmux.hookimpl
def connect(credentials, context):
    return object()


@trackmux.hookimpl
def log_metrics(sesion, job_id, records):  # "sesion": not a parameter of the hookspec
    return None
'''

_PREFIX_WRAPPER = '''
"""A wrapper plugin: every metric key gets a "w/" prefix."""
import trackmux
from trackmux_spec import MetricRecord


@trackmux.hookimpl(wrapper=True)
def log_metrics(session, job_id, records):
    records[:] = [r if all(k.startswith("w/") for k in r.values) else
                  MetricRecord(r.seq, r.step, r.timestamp,
                               {"w/" + k: v for k, v in r.values.items()})
                  for r in records]
    return (yield)
'''

_BROKEN_WRAPPER = '''
raise RuntimeError("wrapper exploded at import")
'''


def _wheel(out: Path, dist: str, version: str, module: str, source: str, group: str,
           entry: str) -> Path:
    return build_wheel(out, dist, version, {f"{module}.py": source}, {group: {entry: module}})


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with the five plugin wheels installed into it."""
    root = tmp_path_factory.mktemp("plugin-isolation")
    return install(root / "site", [
        _wheel(root, "trackmux-good", "1.0", "trackmux_good", _GOOD, "trackmux", "good"),
        _wheel(root, "trackmux-broken", "2.0", "trackmux_broken", _BROKEN_IMPORT, "trackmux",
               "broken"),
        _wheel(root, "trackmux-misspelled", "0.3", "trackmux_misspelled", _MISSPELLED,
               "trackmux", "misspelled"),
        _wheel(root, "trackmux-prefix", "1.1", "trackmux_prefix", _PREFIX_WRAPPER,
               "trackmux.wrappers", "prefix"),
        _wheel(root, "trackmux-badwrap", "0.1", "trackmux_badwrap", _BROKEN_WRAPPER,
               "trackmux.wrappers", "badwrap"),
    ])


def _run(site: Path, tmp_path: Path, *args: str,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("TRACKMUX_", "WANDB_", "RANK", "PYTHON"))}
    clean.update(PYTHONPATH=str(site), TRACKMUX_DIR=str(tmp_path / "data"), **(env or {}))
    return subprocess.run([sys.executable, *args], env=clean, cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, check=False)


def test_a_working_tracker_keeps_working_beside_broken_ones(site: Path, tmp_path: Path) -> None:
    script = textwrap.dedent("""
        import json, sys
        import trackmux

        with trackmux.Tracker(["good", "null"]) as tracker:
            run = tracker.submit_job(name="isolated")
            for step in range(3):
                tracker.log_metrics(run, {"loss": 1.0 / (step + 1)}, step=step)
            tracker.flush()
            history = tracker.get_history(run)
        loaded = sorted({m.partition(".")[0] for m in sys.modules if m.startswith("trackmux_")})
        print(json.dumps({"history": history, "loaded": loaded}))
    """)
    result = _run(site, tmp_path, "-c", script)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert [row["w/loss"] for row in out["history"]] == [1.0, 0.5, 1 / 3]  # wrapper applied
    # only the selected trackers and the wrappers were imported
    assert out["loaded"] == ["trackmux_good", "trackmux_null", "trackmux_prefix",
                             "trackmux_spec"]
    # the broken wrapper is reported, named, and skipped
    assert "badwrap = trackmux_badwrap" in result.stderr
    assert "trackmux-badwrap 0.1" in result.stderr
    assert "wrapper exploded at import" in result.stderr


def test_the_demo_runs_on_the_null_tracker(site: Path, tmp_path: Path) -> None:
    result = _run(site, tmp_path, "-m", "trackmux._cli", "demo", "--steps", "5",
                  env={"TRACKMUX_TRACKERS": "null"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Run finished" in result.stdout


def test_trackmux_plugins_lists_the_broken_ones_with_the_reason(site: Path,
                                                                  tmp_path: Path) -> None:
    result = _run(site, tmp_path, "-m", "trackmux._cli", "plugins", "--json")
    assert result.returncode == 0, result.stderr
    listed = {p["name"]: p for p in json.loads(result.stdout)}
    assert listed["good"]["broken"] is None and listed["good"]["tracker"] is True
    assert listed["good"]["distribution"] == "trackmux-good"
    assert listed["prefix"]["tracker"] is False and listed["prefix"]["broken"] is None
    assert listed["null"]["broken"] is None
    broken = listed["broken"]
    assert broken["distribution"] == "trackmux-broken" and broken["version"] == "2.0"
    assert "ModuleNotFoundError" in broken["broken"]
    assert "trackmux_no_such_dependency" in broken["broken"]
    assert "sesion" in listed["misspelled"]["broken"]
    assert "wrapper exploded at import" in listed["badwrap"]["broken"]

    table = _run(site, tmp_path, "-m", "trackmux._cli", "plugins")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    # piped: nothing is wrapped, each reason is one whole line (issue 13)
    assert any("hookimpl definition: log_metrics(sesion, job_id, records); Argument(s)"
               in line and line.rstrip().endswith("hookspec") for line in lines), table.stdout
    broken_line = next(line for line in lines if line.split()[:1] == ["broken"])
    assert broken_line.split()[1:] == ["broken", "trackmux-broken", "2.0"]


def test_selecting_a_broken_tracker_names_its_entry_point_and_distribution(
        site: Path, tmp_path: Path) -> None:
    script = textwrap.dedent("""
        import sys
        import trackmux

        for name in sys.argv[1:]:
            try:
                trackmux.Tracker([name])
            except trackmux.PluginLoadError as exc:
                assert isinstance(exc, trackmux.TrackerNotFoundError)
                print(exc)
    """)
    result = _run(site, tmp_path, "-c", script, "broken", "misspelled")
    assert result.returncode == 0, result.stderr
    broken, misspelled = result.stdout.strip().splitlines()
    assert broken.startswith("tracker 'broken' is installed but its plugin failed to load: "
                             "entry point broken = trackmux_broken (group 'trackmux') from "
                             "trackmux-broken 2.0: import failed: ModuleNotFoundError")
    assert "trackmux-misspelled 0.3: registration failed" in misspelled
    assert "sesion" in misspelled

    check = _run(site, tmp_path, "-m", "trackmux._cli", "plugins", "--check", "broken")
    assert check.returncode == 1
    assert "trackmux-broken 2.0" in check.stderr and "Traceback" not in check.stderr


# -- in process: the manager itself -----------------------------------------------------------


def test_a_fresh_manager_loads_nothing_until_a_tracker_is_selected() -> None:
    pm = trackmux.get_plugin_manager()
    assert pm.get_plugins() == set()
    assert {"null", "wandb"} <= set(tracker_names(pm))  # known without importing them
    assert pm.get_plugins() == set()
    tracker_caller(pm, "null")
    assert pm.list_name_plugin()[0][0] == "null" and len(pm.get_plugins()) == 1


def test_a_tracker_loaded_later_does_not_answer_for_another() -> None:
    pm = PluginManager(entry_points=False)
    first, second = MemoryTracker(), MemoryTracker()
    pm.register(first, name="first")
    hooks = tracker_caller(pm, "first")
    assert hooks.caller("get_run_url")(session=None, job_id="a") == "memory://a"
    pm.register(second, name="second")  # registered after the caller was made
    second.submit_job(None, "b", None)
    with pytest.raises(Exception, match="unknown job id 'b'"):
        hooks.caller("get_job_status")(session=None, job_id="b")


def test_a_plain_pluggy_manager_still_works() -> None:
    from trackmux_spec import hookspecs

    pm = pluggy.PluginManager("trackmux")
    pm.add_hookspecs(hookspecs)
    pm.register(MemoryTracker(), name="memory")
    assert tracker_names(pm) == ["memory"]
    assert tracker_caller(pm, "memory").name == "memory"
    with pytest.raises(trackmux.TrackerNotFoundError, match="installed trackers: memory"):
        tracker_caller(pm, "other")
