"""SeriesBuilder: min/max downsampling that keeps every extreme, exact statistics, and the
same answer whether records arrive at once or in pieces (a live run)."""

from __future__ import annotations

import itertools
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from trackmux._series import SeriesBuilder, higher_is_better, sparkline
from trackmux_spec import MetricRecord


def records(values: list[dict[str, float]], start: int = 0) -> list[MetricRecord]:
    return [MetricRecord(start + i, 10 * (start + i), 1000.0 + start + i, row)
            for i, row in enumerate(values)]


def test_a_short_run_keeps_every_point_exactly() -> None:
    rows = [{"loss": 1.0 / (i + 1), "acc": i / 10} for i in range(100)]
    builder = SeriesBuilder(buckets=50)
    builder.add(records(rows))
    series = builder.series()
    assert list(series) == ["loss", "acc"]
    assert series["loss"].points == [(10 * i, 1000.0 + i, 1.0 / (i + 1)) for i in range(100)]
    assert series["acc"].count == 100


def test_a_long_run_keeps_its_spikes_and_stays_small() -> None:
    rng = random.Random(1)
    rows = [{"loss": 1.0 + rng.random() * 0.01} for _ in range(200_000)]
    rows[123_457]["loss"] = 50.0   # a divergence of one step
    rows[7]["loss"] = -3.0         # and a dip
    builder = SeriesBuilder(buckets=64)
    builder.add(records(rows))
    loss = builder.series()["loss"]
    assert len(loss.points) <= 4 * 64 + 2
    assert (1_234_570, 1000.0 + 123_457, 50.0) in loss.points
    assert (70, 1007.0, -3.0) in loss.points
    assert (loss.max, loss.max_step, loss.min, loss.min_step) == (50.0, 1_234_570, -3.0, 70)
    assert loss.points[0][0] == 0 and loss.points[-1][0] == 10 * 199_999  # first and last
    steps = [p[0] for p in loss.points]
    assert steps == sorted(steps)
    assert loss.count == 200_000
    assert loss.last == rows[-1]["loss"]


def test_non_finite_values_count_but_are_never_drawn() -> None:
    rows = [{"x": 1.0}, {"x": math.nan}, {"x": math.inf}, {"x": 0.5}, {"x": math.nan}]
    builder = SeriesBuilder()
    builder.add(records(rows))
    x = builder.series()["x"]
    assert x.count == 5
    assert math.isnan(x.last)
    assert x.min == 0.5 and x.max == math.inf  # as MetricStats: NaN is never a min or max
    assert [p[2] for p in x.points] == [1.0, 0.5]


def test_a_metric_that_is_only_nan_has_no_points_and_no_extremes() -> None:
    builder = SeriesBuilder()
    builder.add(records([{"x": math.nan}] * 3))
    x = builder.series()["x"]
    assert (x.count, x.min, x.max, x.points) == (3, None, None, [])


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=False),
                                 st.integers(-5, 5)), min_size=1, max_size=400),
       cuts=st.lists(st.integers(0, 400), max_size=5),
       buckets=st.integers(1, 8))
def test_records_in_pieces_give_the_same_series_as_all_at_once(
        values: list[float], cuts: list[int], buckets: int) -> None:
    rows = [{"m": v} if i % 3 else {"m": v, "other": -v} for i, v in enumerate(values)]
    whole = SeriesBuilder(buckets)
    whole.add(records(rows))
    pieces = SeriesBuilder(buckets)
    edges = sorted({0, len(rows), *(c for c in cuts if c < len(rows))})
    for low, high in itertools.pairwise(edges):
        pieces.add(records(rows[low:high], start=low))
    assert repr(pieces.series()) == repr(whole.series())
    m = whole.series()["m"]
    finite = [v for v in values if v == v]
    if finite:
        assert m.min == min(finite) and m.max == max(finite)
        assert m.min_step == 10 * values.index(m.min)
    assert len(m.points) <= 4 * buckets + 2


def test_buckets_must_be_positive() -> None:
    with pytest.raises(ValueError, match="buckets must be at least 1, got 0"):
        SeriesBuilder(0)


def test_sparkline() -> None:
    assert sparkline([0, 1, 2, 3, 4, 5, 6, 7]) == "▁▂▃▄▅▆▇█"
    assert sparkline([3.0, 3.0]) == "▄▄"
    assert sparkline([math.nan]) == ""
    assert sparkline(list(range(100)), width=4) == "▁▃▆█"


@pytest.mark.parametrize(("name", "higher"), [("train/accuracy", True), ("val/f1", True),
                                              ("loss", False), ("eval/perplexity", False),
                                              ("lr", False)])
def test_best_direction_from_the_name(name: str, higher: bool) -> None:
    assert higher_is_better(name) is higher
