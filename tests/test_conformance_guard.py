"""The conformance suite's guard: no standard test is overridden or dropped without a reason."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, ClassVar

import pytest
from trackmux_spec import conformance
from trackmux_spec.conformance import TrackerConformance, overridden


def _guard_failure(cls: type[TrackerConformance]) -> str | None:
    """The guard's failure message for ``cls``, or ``None`` if it passes."""
    try:
        cls().test_no_standard_test_dropped_silently()
    except pytest.fail.Exception as exc:
        return str(exc)
    return None


def test_an_untouched_subclass_passes_the_guard() -> None:
    class TestPlain(TrackerConformance):
        tracker_name = "null"

    assert _guard_failure(TestPlain) is None


def test_an_override_without_a_reason_fails_the_guard() -> None:
    class TestSneaky(TrackerConformance):
        tracker_name = "null"

        def test_get_run_url_is_a_url(self, *args: Any) -> None:
            pass

    message = _guard_failure(TestSneaky)
    assert message is not None
    assert "test_get_run_url_is_a_url is overridden without @overridden(reason)" in message
    assert message.startswith("contract: ")


def test_an_override_marked_overridden_passes_the_guard() -> None:
    class TestHonest(TrackerConformance):
        tracker_name = "null"

        @overridden("the backend has no web UI")
        def test_get_run_url_is_a_url(self, *args: Any) -> None:
            pass

    assert _guard_failure(TestHonest) is None


def test_a_removed_test_needs_an_entry_in_skipped_tests() -> None:
    class TestRemoved(TrackerConformance):
        tracker_name = "null"
        test_get_run_url_is_a_url = None  # type: ignore[assignment]

    message = _guard_failure(TestRemoved)
    assert message is not None and "was removed without an entry in skipped_tests" in message

    class TestListed(TestRemoved):
        skipped_tests: ClassVar[dict[str, str]] = {"test_get_run_url_is_a_url": "no web UI"}

    assert _guard_failure(TestListed) is None


def test_skipped_tests_must_name_standard_tests_with_a_reason() -> None:
    class TestTypo(TrackerConformance):
        tracker_name = "null"
        skipped_tests: ClassVar[dict[str, str]] = {
            "test_get_run_url_is_an_url": "typo", "test_get_run_url_is_a_url": " "}

    message = _guard_failure(TestTypo)
    assert message is not None
    assert "'test_get_run_url_is_an_url', which is not a standard test" in message
    assert "skipped_tests['test_get_run_url_is_a_url'] gives no reason" in message


def test_overridden_requires_a_reason() -> None:
    with pytest.raises(ValueError, match="needs a reason"):
        overridden("")


def test_the_guard_itself_cannot_be_overridden() -> None:
    with pytest.raises(TypeError, match="must not override test_no_standard_test_dropped_silently"):

        class TestNoGuard(TrackerConformance):
            tracker_name = "null"

            def test_no_standard_test_dropped_silently(self) -> None:
                pass


def test_a_listed_test_is_skipped_with_its_reason(tmp_path: Path) -> None:
    module = tmp_path / "test_listed.py"
    module.write_text(textwrap.dedent("""
        from trackmux_spec.conformance import TrackerConformance

        class TestNull(TrackerConformance):
            tracker_name = "null"
            skipped_tests = {"test_get_run_url_is_a_url": "no web UI here"}
    """))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rs", "-q", str(module),
         "-k", "get_run_url or dropped_silently"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed, 1 skipped" in result.stdout
    assert "TestNull.skipped_tests: no web UI here" in result.stdout


def test_the_suite_exports_overridden() -> None:
    assert set(conformance.__all__) == {"SUITE_TAG", "SUITE_VERSION", "TrackerConformance",
                                        "overridden"}


@pytest.mark.slow
def test_the_check_leaves_no_hypothesis_directory_behind(tmp_path: Path) -> None:
    """Hypothesis writes a cache into ``.hypothesis/`` of the working directory it was first
    imported in; ``trackmux plugins --check`` keeps it in its own temporary directory."""
    script = ("from trackmux._check import run_conformance\n"
              "report = run_conformance('null', keyword='transient_failures')\n"
              "assert report.ok and report.count('passed') == 1, report\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                            text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert list(tmp_path.iterdir()) == []
