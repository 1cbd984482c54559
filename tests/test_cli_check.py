"""``trackmux plugins --check NAME``: the conformance suite against an installed tracker."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from trackmux._check import run_conformance
from trackmux._cli import cli


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
