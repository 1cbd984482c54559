"""How fast the conformance suite reports a broken tracker: the 30-second budget of issue 14.

Runs the suite (in-process, as ``tests/test_conformance_mutants.py`` does) against each
broken variant of ``tests/reference_tracker.py``, stopping at the first failure as a
developer's ``pytest -x`` does, then the Hypothesis properties alone against the delivery
bugs, and prints the wall and CPU seconds until each was reported, beside the budget. The
tests check *that* each variant is caught; this script measures *how fast*, so a loaded
machine cannot make a test fail.

Run: ``python bench/conformance_budget.py`` (about a minute on a 2-core machine).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent / "tests"
sys.path.insert(0, str(TESTS))

from test_conformance_mutants import (  # noqa: E402
    CAUGHT_BY,
    PROPERTIES,
    PROPERTIES_CATCH,
    failures,
    run_suite,
)

BUDGET = 30.0


def measure(variant: str, expected: list[str], **options: object) -> tuple[float, float, bool]:
    """(wall s, CPU s, caught as expected) of one suite run against ``variant``."""
    with tempfile.TemporaryDirectory() as tmp:
        cpu = time.process_time()
        report, wall = run_suite(variant, Path(tmp), **options)  # type: ignore[arg-type]
        cpu = time.process_time() - cpu
    return wall, cpu, failures(report) == expected


def main() -> None:
    os.environ.setdefault("TRACKMUX_DIR", tempfile.mkdtemp(prefix="conformance-budget-"))
    print(f"load average at start: {'/'.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"| suite run | variant | wall | CPU | caught as expected | within {BUDGET:.0f} s |")
    print("|---|---|---|---|---|---|")
    runs = [("whole suite, -x", v, [c], {}) for v, c in CAUGHT_BY]
    runs += [("properties alone", v, c, {"keyword": PROPERTIES, "first_failure": False})
             for v, c in PROPERTIES_CATCH]
    for label, variant, expected, options in runs:
        wall, cpu, caught = measure(variant, expected, **options)
        verdict = "yes" if wall < BUDGET else "**no**"
        print(f"| {label} | {variant} | {wall:.2f} s | {cpu:.2f} s | "
              f"{'yes' if caught else '**no**'} | {verdict} |")
    print(f"load average at end: {'/'.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
