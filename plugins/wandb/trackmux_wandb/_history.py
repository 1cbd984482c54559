"""Metric records as W&B history lines, the run summary, and request-size splitting.

History and summary lines are W&B's "extended JSON": bare ``NaN``, ``Infinity`` and
``-Infinity`` tokens are allowed, exactly what ``json.dumps`` writes by default.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from trackmux_spec import MetricRecord

__all__ = [
    "HISTORY_FILE",
    "MAX_LINE_BYTES",
    "MAX_REQUEST_BYTES",
    "SUMMARY_FILE",
    "decode_line",
    "encode_line",
    "history_line",
    "split_by_size",
    "updated_summary",
]

logger = logging.getLogger("trackmux.wandb")

HISTORY_FILE = "wandb-history.jsonl"
SUMMARY_FILE = "wandb-summary.json"

#: The SDK's request cap (``defaultMaxRequestSizeBytes``, 10 MiB, approximate).
MAX_REQUEST_BYTES = 10 << 20
#: The back end's limit on one line (``defaultMaxFileLineBytes``).
MAX_LINE_BYTES = (10 << 20) - (100 << 10)
#: Room left per request for the JSON around the lines.
_ENVELOPE_BYTES = 64 << 10


def encode_line(row: Mapping[str, Any]) -> str:
    """One compact extended-JSON line."""
    return json.dumps(row, allow_nan=True, separators=(",", ":"))


def decode_line(line: str) -> dict[str, Any]:
    """Parse an extended-JSON line (``NaN``/``Infinity`` come back as floats)."""
    value = json.loads(line)
    if not isinstance(value, dict):
        raise ValueError("history line is not a JSON object")
    return value


def history_line(record: MetricRecord, run_start: float) -> dict[str, Any]:
    """The history row of ``record``: its values plus ``_step``, ``_runtime``, ``_timestamp``."""
    row: dict[str, Any] = dict(record.values)
    row["_step"] = record.step
    row["_runtime"] = max(0.0, record.timestamp - run_start)
    row["_timestamp"] = record.timestamp
    return row


def updated_summary(
    summary: Mapping[str, Any], rows: Iterable[Mapping[str, Any]]
) -> dict[str, Any]:
    """``summary`` with the last value of every key of ``rows`` (a new dict)."""
    out = dict(summary)
    for row in rows:
        out.update(row)
    return out


def split_by_size(
    lines: Sequence[tuple[int, str]], limit: int = MAX_REQUEST_BYTES
) -> Iterator[list[tuple[int, str]]]:
    """Group ``(offset, line)`` pairs into runs of consecutive offsets under ``limit`` bytes.

    A line longer than :data:`MAX_LINE_BYTES` is dropped with a warning, as the SDK does
    (the back end would refuse it).
    """
    chunk: list[tuple[int, str]] = []
    size = _ENVELOPE_BYTES
    for offset, line in lines:
        length = len(line.encode()) + 4
        if length > MAX_LINE_BYTES:
            logger.warning(
                "dropping W&B history line %d: %d bytes is over the limit", offset, length
            )
            if chunk:
                yield chunk
            chunk, size = [], _ENVELOPE_BYTES
            continue
        if chunk and (size + length > limit or chunk[-1][0] + 1 != offset):
            yield chunk
            chunk, size = [], _ENVELOPE_BYTES
        chunk.append((offset, line))
        size += length
    if chunk:
        yield chunk
