"""``trackmux plugins --check NAME``: the conformance suite against an installed tracker."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from trackmux._check import (
    CheckInput,
    CheckOutcome,
    CheckReport,
    check_input_for,
    report_text,
    run_conformance,
)
from trackmux._cli import cli
from wheels import build_wheel, install, package_files


def test_check_null_passes_and_prints_a_summary() -> None:
    result = CliRunner().invoke(cli, ["plugins", "--check", "null"])
    assert result.exit_code == 0, result.output
    assert "PASSED null:" in result.output
    assert "0 failed" in result.output
    assert "test_every_record_is_delivered_within_30_seconds" in result.output


def test_check_json_lists_every_test_of_the_suite() -> None:
    result = CliRunner().invoke(cli, ["plugins", "--check", "null", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["tracker"] == "null" and data["ok"] is True
    names = {test["test"] for test in data["tests"]}
    assert "test_no_standard_test_dropped_silently" in names
    assert all(test["outcome"] == "passed" for test in data["tests"])


def test_check_of_an_unknown_tracker_fails_naming_the_installed_ones() -> None:
    result = CliRunner().invoke(cli, ["plugins", "--check", "nosuchtracker"])
    assert result.exit_code == 1
    assert "tracker 'nosuchtracker' is not installed" in result.output
    assert "null" in result.output


def test_a_failing_test_makes_the_check_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    from trackmux_null import _store

    def refuse(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(_store.NullSession, "append_rows", refuse)
    report = run_conformance("null", keyword="resent_record_twice or discovered")
    assert not report.ok
    assert report.count("failed") == 1 and report.count("passed") == 1
    failed = next(o for o in report.outcomes if o.outcome == "failed")
    assert failed.test == "test_log_metrics_does_not_store_a_resent_record_twice"
    assert "disk on fire" in failed.detail


# -- settings, credentials, and a store that persists ------------------------------------------

_JSONL = Path(__file__).resolve().parents[1] / "examples" / "jsonl-tracker" / "trackmux_jsonl"
_HOOK_TESTS = ("not every_ and not disconnect_delivers and not transient and not async_api "
               "and not discovered")


@pytest.fixture
def jsonl_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The example jsonl tracker installed (from a wheel) into a directory on sys.path."""
    wheel = build_wheel(tmp_path, "trackmux-jsonl", "0.1.0",
                        package_files(_JSONL, "trackmux_jsonl"),
                        {"trackmux": {"jsonl": "trackmux_jsonl"}})
    monkeypatch.syspath_prepend(str(install(tmp_path / "site", [wheel])))


@pytest.mark.slow
def test_the_check_runs_twice_against_one_persistent_store(
        jsonl_installed: None, tmp_path: Path) -> None:
    store = tmp_path / "store"
    check_input = CheckInput({"root": str(store)})
    made = []
    for _ in range(2):
        report = run_conformance("jsonl", keyword=_HOOK_TESTS, check_input=check_input)
        failed = [(o.test, o.detail) for o in report.outcomes if o.outcome == "failed"]
        assert report.ok and report.count("passed") >= 14, failed
        made.append({run.name for run in (store / "runs").glob("*.jsonl")} - set().union(*made))
    # fresh run ids: the second check made as many runs of its own as the first
    assert len(made[0]) >= 10 and len(made[1]) == len(made[0])
    for run in (store / "runs").glob("*.jsonl"):
        events = [json.loads(line) for line in run.read_text().splitlines()]
        created = next(e for e in events if e["event"] == "run")
        assert "trackmux-conformance" in created["config"]["tags"]  # easy to find
        assert any(e["event"] == "status" for e in events), events  # none left running


def test_settings_come_from_trackmux_toml_and_the_command_line(
        isolated_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    Path("trackmux.toml").write_text('[jsonl]\nroot = "/from/toml"\nlevel = 1\n')
    got = check_input_for("jsonl", ["level=2", "url=http://127.0.0.1:5000", "flag=true"],
                          ["token=s3cr3t"])
    assert got.settings == {"root": "/from/toml", "level": 2, "url": "http://127.0.0.1:5000",
                            "flag": True}
    assert got.credentials == {"token": "s3cr3t"}
    shown = CheckInput({"api_key": "abc", "url": "u"}, {"token": "s3cr3t"}).describe()
    assert "abc" not in shown and "s3cr3t" not in shown and "url='u'" in shown


def test_a_setting_without_a_value_is_refused_naming_it() -> None:
    result = CliRunner().invoke(cli, ["plugins", "--check", "null", "--setting", "root"])
    assert result.exit_code == 1
    assert "--setting expects KEY=VALUE, got 'root'" in result.output
    result = CliRunner().invoke(cli, ["plugins", "--setting", "root=x"])
    assert result.exit_code == 1 and "go with --check NAME" in result.output


def test_the_report_reads_well_at_80_columns() -> None:
    report = CheckReport("demo", [
        CheckOutcome("test_download_artifact_of_an_unknown_artifact_raises_unknown_job_error",
                     "passed"),
        CheckOutcome("test_artifacts_round_trip_files_and_directories", "skipped",
                     "demo declares no artifacts support " * 4),
        CheckOutcome("test_log_metrics_does_not_store_a_resent_record_twice", "failed",
                     "contract: expected resent records to be stored once: x = 0.0 ... 14.0 "
                     "(15 rows), found 25 rows: " + repr([float(i) for i in range(25)])),
    ], exit_code=1)
    styled = report_text(report, CheckInput({"root": "/tmp/store"}, {"token": "s3cr3t"}), 80)
    text = click.unstyle(styled)  # as click.echo prints it to a pipe
    lines = text.splitlines()
    assert all(len(line) <= 80 for line in lines), text
    assert "s3cr3t" not in text and "token=*** (credential)" in text
    assert "FAILED test_log_metrics_does_not_store_a_resent_record_twice" in lines
    assert lines[-1] == "FAILED demo: 1 passed, 1 failed, 1 skipped"
    assert "found 25 rows" in text
