"""Mutation testing of the conformance suite: it must fail every broken tracker, quickly.

``tests/reference_tracker.py`` holds a correct in-memory tracker and nine variants that
each break one rule: the four item 4 of issue 14 found unchecked (a second final state
overwrites the first, an unknown job's history is empty, an unknown artifact downloads as
nothing, a one-file artifact lands outside ``target_dir``) and four delivery bugs
(duplicates on retry, the last record of a batch dropped, a run that never finishes,
corrupted downloads), and a journal-referencing tracker that forgets ``seq_base``.

The time budget (the suite reports each variant's failure within 30 seconds, stopping at the
first failure as a developer's ``pytest -x`` does; its Hypothesis properties alone report a
delivery bug within 30 seconds too, their explain and shrink phases off) is measured by
``python bench/conformance_budget.py``, not asserted here: a timed assertion fails on a
loaded machine (one run took 42 s under a load of 6 on 2 cores).
"""

from __future__ import annotations

import contextlib
import io
import time
from pathlib import Path

import pytest
from reference_tracker import VARIANTS
from trackmux._check import CheckReport, _Collector

pytestmark = pytest.mark.slow


_MODULE = '''
import pytest
from reference_tracker import NAME, plugin_manager
from trackmux_spec.conformance import TrackerConformance


class TestVariant(TrackerConformance):
    tracker_name = NAME

    @pytest.fixture
    def plugin_manager(self):
        return plugin_manager({variant!r})
'''

#: The properties run through the engine (the tests Hypothesis drives).
PROPERTIES = "every_accepted_record or transient_failures or within_30_seconds"


def run_suite(variant: str, tmp_path: Path, *, keyword: str | None = None,
               first_failure: bool = True) -> tuple[CheckReport, float]:
    """Run the conformance suite against ``variant`` in-process; its report and duration."""
    module = tmp_path / f"test_variant_{variant.lower()}.py"
    module.write_text(_MODULE.format(variant=variant))
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    args = [str(module), "-c", str(tmp_path / "pytest.ini"), "--rootdir", str(tmp_path),
            "-p", "no:cacheprovider", "--import-mode=importlib", "-q"]
    if first_failure:
        args.append("-x")
    if keyword:
        args += ["-k", keyword]
    report = CheckReport(variant)
    started = time.monotonic()
    with contextlib.chdir(tmp_path), contextlib.redirect_stdout(io.StringIO()):
        report.exit_code = int(pytest.main(args, plugins=[_Collector(report)]))
    return report, time.monotonic() - started


def failures(report: CheckReport) -> list[str]:
    return [item.test for item in report.outcomes if item.outcome == "failed"]


def test_the_reference_tracker_passes_the_whole_suite(tmp_path: Path) -> None:
    report, _ = run_suite("ReferenceTracker", tmp_path, first_failure=False)
    failed = [(o.test, o.detail) for o in report.outcomes if o.outcome == "failed"]
    assert report.ok, failed
    assert report.count("skipped") == 0 and report.count("passed") >= 20


#: Each broken variant and the test that must report it first.
CAUGHT_BY = [
    ("OverwritesTheFinalState", "test_finish_job_keeps_the_first_final_state"),
    ("EmptyHistoryForUnknownJobs",
     "test_get_history_of_an_unknown_job_raises_unknown_job_error"),
    ("EmptyDownloadForUnknownArtifacts",
     "test_download_artifact_of_an_unknown_artifact_raises_unknown_job_error"),
    ("WritesAFileOutsideTargetDir", "test_artifacts_round_trip_files_and_directories"),
    ("DuplicatesOnRetry", "test_log_metrics_does_not_store_a_resent_record_twice"),
    ("DropsTheLastRecord", "test_submit_job_returns_a_job_id_and_is_idempotent"),
    ("NeverFinishes", "test_finish_job_sets_the_final_state"),
    ("ForgetsTheSeqBase", "test_journal_references_store_each_record_once"),
    ("CorruptsDownloads", "test_artifacts_round_trip_files_and_directories"),
]


@pytest.mark.parametrize(("variant", "caught_by"), CAUGHT_BY)
def test_the_suite_fails_a_broken_variant(variant: str, caught_by: str, tmp_path: Path) -> None:
    report, _ = run_suite(variant, tmp_path)
    assert failures(report) == [caught_by], report.outcomes
    detail = next(o.detail for o in report.outcomes if o.outcome == "failed")
    assert "expected" in detail and "found" in detail, detail


_EXACTLY_ONCE = "test_every_accepted_record_arrives_exactly_once_in_order"
_TRANSIENT = "test_transient_failures_lose_and_duplicate_nothing"
_WITHIN_30 = "test_every_record_is_delivered_within_30_seconds"
_BURST = "test_a_fault_burst_delivers_every_record_within_30_seconds"


#: Each delivery bug and the properties that must report it, run alone.
PROPERTIES_CATCH = [
    ("DuplicatesOnRetry", [_TRANSIENT, _BURST, _WITHIN_30]),  # a duplicate needs a lost ack
    ("DropsTheLastRecord", [_EXACTLY_ONCE, _TRANSIENT, _BURST, _WITHIN_30]),
]


@pytest.mark.parametrize(("variant", "caught_by"), PROPERTIES_CATCH)
def test_the_properties_alone_fail_a_delivery_bug(
        variant: str, caught_by: list[str], tmp_path: Path) -> None:
    report, _ = run_suite(variant, tmp_path, keyword=PROPERTIES, first_failure=False)
    assert failures(report) == caught_by, report.outcomes


def test_every_variant_is_exercised() -> None:
    assert len(VARIANTS) == 10 and "ReferenceTracker" in VARIANTS
