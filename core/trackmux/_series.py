"""Per-metric curves of a run, downsampled for drawing, and their statistics, in one pass.

A chart is a few hundred pixels wide, a run may hold millions of steps: drawing every point
is slow and storing them makes a report of hundreds of megabytes. :class:`SeriesBuilder`
streams a run's records once and keeps, per metric, the smallest and the largest value of
each *bucket* of consecutive records (min/max decimation: a line drawn through them covers
the same pixels as one drawn through every point, so spikes and divergences stay visible),
plus the first and last point. The buckets span ``2**shift`` records: when there are more than
``2 * buckets`` of them, neighbours are merged and the span doubles, so memory stays bounded
whatever the run's length, and a live run can be fed more records later (``trackmux ui``).
A run with at most ``2 * buckets`` records keeps every point exactly.

Buckets follow the record's ``seq`` (its position in the run), not its step: steps may repeat
or go back, positions never do. Kept points carry their own step, timestamp and value, so the
chart's x axis can be steps, wall time or time since the start.

Statistics (count, last, min, max and their steps) cover every value, not just the kept
points. As in :class:`trackmux._runs.MetricStats`, NaN counts and may be the last value but
is never a min or max; non-finite values are never drawn.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

from attrs import define, field
from trackmux_spec import MetricRecord

__all__ = ["DEFAULT_BUCKETS", "Series", "SeriesBuilder", "higher_is_better", "sparkline"]

#: Buckets per run by default: between this and twice as many are kept, two points each, so
#: a chart 500 to 1,000 pixels wide has a minimum and a maximum for every pixel column.
DEFAULT_BUCKETS = 512

#: Metric names where a larger value is better (everything else: smaller is better).
_HIGHER_IS_BETTER = re.compile(
    r"(acc|accuracy|auc|f1|precision|recall|score|reward|return|bleu|rouge|map|iou|r2|"
    r"psnr|ssim|throughput|tokens_per|samples_per|top\d|hit)", re.IGNORECASE)

Point = tuple[int, int, float, float]  # (seq, step, timestamp, value)


def higher_is_better(name: str) -> bool:
    """Whether a larger value of metric ``name`` is better (accuracy, F1...), by its name."""
    return bool(_HIGHER_IS_BETTER.search(name.rsplit("/", 1)[-1]))


@define
class Series:
    """One metric of one run: statistics over every value and the points kept to draw."""

    name: str
    count: int
    last: float | int | None
    last_step: int | None
    min: float | int | None
    min_step: int | None
    max: float | int | None
    max_step: int | None
    #: ``(step, timestamp, value)`` of the kept points, finite values only, in logged order.
    points: list[tuple[int, float, float]] = field(factory=list)

    @property
    def best(self) -> float | int | None:
        """The best value: the max for accuracy-like names, else the min."""
        return self.max if higher_is_better(self.name) else self.min

    @property
    def best_step(self) -> int | None:
        """The step of :attr:`best` (its first occurrence)."""
        return self.max_step if higher_is_better(self.name) else self.min_step


class _Metric:
    """What the builder keeps for one metric (plain slots: this is the hot loop's state)."""

    __slots__ = ("buckets", "count", "first", "last", "name", "open")

    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0
        self.last: MetricRecord | None = None
        self.first: Point | None = None
        # [min value, min record, max value, max record] of the open bucket, or None
        self.open: list[Any] | None = None
        # closed buckets: (bucket index, min point, max point)
        self.buckets: list[tuple[int, Point, Point]] = []


def _point(record: MetricRecord, value: float) -> Point:
    return (record.seq, record.step, record.timestamp, value)


class SeriesBuilder:
    """Streams records (of one run, in order) into per-metric :class:`Series`.

    ``add`` may be called again with the records that followed (a live run).
    """

    def __init__(self, buckets: int = DEFAULT_BUCKETS) -> None:
        if buckets < 1:
            raise ValueError(f"buckets must be at least 1, got {buckets!r}")
        self.buckets = buckets
        self.record_count = 0
        self.first_timestamp: float | None = None
        self.last_timestamp: float | None = None
        self._shift = 0
        self._bucket = -1
        self._metrics: dict[str, _Metric] = {}

    def add(self, records: Iterable[MetricRecord]) -> None:
        """Account for ``records`` (the ones after those already added)."""
        metrics = self._metrics
        shift = self._shift
        current = self._bucket
        record = None
        for record in records:
            if self.first_timestamp is None:
                self.first_timestamp = record.timestamp
            bucket = record.seq >> shift
            if bucket != current:
                self._close_open()
                if bucket >= 2 * self.buckets:
                    while bucket >= 2 * self.buckets:
                        shift += 1
                        bucket >>= 1
                    self._shift = shift
                    self._merge()
                current = self._bucket = bucket
            for name, value in record.values.items():
                metric = metrics.get(name)
                if metric is None:
                    metric = metrics[name] = _Metric(name)
                metric.count += 1
                metric.last = record
                acc = metric.open
                if acc is None:
                    if value == value:  # not NaN
                        metric.open = [value, record, value, record]
                        if metric.first is None:
                            metric.first = _point(record, value)
                elif value < acc[0]:
                    acc[0] = value
                    acc[1] = record
                elif value > acc[2]:
                    acc[2] = value
                    acc[3] = record
            self.record_count += 1
        if record is not None:
            self.last_timestamp = record.timestamp

    def _close_open(self) -> None:
        bucket = self._bucket
        for metric in self._metrics.values():
            acc = metric.open
            if acc is not None:
                metric.buckets.append((bucket, _point(acc[1], acc[0]), _point(acc[3], acc[2])))
                metric.open = None

    def _merge(self) -> None:
        """Halve the buckets: the span of a bucket went from 2**(shift-1) to 2**shift."""
        for metric in self._metrics.values():
            merged: list[tuple[int, Point, Point]] = []
            for index, low, high in metric.buckets:
                index >>= 1
                if merged and merged[-1][0] == index:
                    _, prev_low, prev_high = merged[-1]
                    merged[-1] = (index, low if low[3] < prev_low[3] else prev_low,
                                  high if high[3] > prev_high[3] else prev_high)
                else:
                    merged.append((index, low, high))
            metric.buckets = merged

    def series(self) -> dict[str, Series]:
        """Every metric so far, in order of first appearance (the builder stays usable)."""
        return {name: self._series(metric) for name, metric in self._metrics.items()}

    def _series(self, metric: _Metric) -> Series:
        buckets = list(metric.buckets)
        if metric.open is not None:
            acc = metric.open
            buckets.append((self._bucket, _point(acc[1], acc[0]), _point(acc[3], acc[2])))
        low = high = None
        kept: dict[int, Point] = {}
        if metric.first is not None:
            kept[metric.first[0]] = metric.first
        for _, bucket_low, bucket_high in buckets:
            kept[bucket_low[0]] = bucket_low
            kept[bucket_high[0]] = bucket_high
            if low is None or bucket_low[3] < low[3]:
                low = bucket_low
            if high is None or bucket_high[3] > high[3]:
                high = bucket_high
        last = metric.last
        last_value = None if last is None else last.values[metric.name]
        if last is not None and last_value == last_value:
            kept[last.seq] = _point(last, last_value)
        points = [(step, ts, value) for _, step, ts, value in sorted(kept.values())
                  if math.isfinite(value)]
        return Series(
            name=metric.name, count=metric.count, last=last_value,
            last_step=None if last is None else last.step,
            min=None if low is None else low[3], min_step=None if low is None else low[1],
            max=None if high is None else high[3], max_step=None if high is None else high[1],
            points=points,
        )


_BLOCKS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float], width: int = 24) -> str:
    """``values`` as ``width`` unicode block characters (each the mean of its share)."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return ""
    columns = []
    per = len(finite) / min(width, len(finite))
    for column in range(min(width, len(finite))):
        part = finite[int(column * per):max(int(column * per) + 1, int((column + 1) * per))]
        columns.append(sum(part) / len(part))
    low, high = min(columns), max(columns)
    if high == low:
        return _BLOCKS[3] * len(columns)
    scale = (len(_BLOCKS) - 1) / (high - low)
    return "".join(_BLOCKS[round((v - low) * scale)] for v in columns)
