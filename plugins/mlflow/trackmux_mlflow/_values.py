"""Names and values as MLflow accepts them, and back.

* Names (metric keys, param keys, tag keys): MLflow's server accepts
  ``^[/\\w.\\- :]*$`` (Unicode word characters, slashes, periods, dashes, spaces and
  colons) of at most 250 characters that do not change under ``posixpath.normpath``
  (``mlflow/utils/validation.py``). :func:`mlflow_name` replaces every other character
  with ``_``, drops empty and ``.`` path segments, turns ``..`` segments into ``__`` and
  cuts at 250 characters, warning once per name; valid names pass unchanged.
* Metric values travel as protobuf JSON doubles: finite floats as numbers, NaN and the
  infinities as the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` (bare JSON
  tokens are mis-parsed by the server into a zero-valued metric at step 0!). The server
  stores NaN as NaN and clamps the infinities to ``±1.7976931348623157e308`` (as MLflow's
  own client does); :func:`decode_metric` maps that value back to ``±inf``.
* Params are strings of at most 6000 characters (``MAX_PARAM_VAL_LENGTH``), tags of at
  most 8000: strings are sent as they are, other values as JSON, longer values cut with a
  warning. :func:`decode_param` reads JSON back (a string param that happens to be valid
  JSON, like ``"1"``, comes back as the decoded value).
"""

from __future__ import annotations

import functools
import json
import logging
import math
import posixpath
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

__all__ = [
    "MAX_BATCH_BYTES",
    "MAX_ENTRIES_PER_BATCH",
    "MAX_KEY_LENGTH",
    "MAX_METRICS_PER_BATCH",
    "MAX_PARAMS_TAGS_PER_BATCH",
    "MAX_PARAM_VALUE_LENGTH",
    "MAX_TAG_VALUE_LENGTH",
    "decode_metric",
    "decode_param",
    "encode_metric",
    "encode_param",
    "metric_size",
    "mlflow_name",
    "param_entries",
    "split_entries",
    "tag_entries",
]

logger = logging.getLogger("trackmux.mlflow")

#: MLflow's limits (``mlflow/utils/validation.py``, 2.x and 3.x): per ``log-batch``, at most
#: 1,000 metrics, 100 params and 100 tags, and 1,000 entries of the three together.
MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_ENTRIES_PER_BATCH = 1000
MAX_KEY_LENGTH = 250
MAX_PARAM_VALUE_LENGTH = 6000
MAX_TAG_VALUE_LENGTH = 8000
#: The server refuses log-batch bodies over 1 MB (``MAX_BATCH_LOG_REQUEST_SIZE``); keep a margin.
MAX_BATCH_BYTES = 900_000

#: What MLflow stores for ±infinity.
_DOUBLE_MAX = 1.7976931348623157e308
_INVALID = re.compile(r"[^/\w.\- :]")
_warned: set[str] = set()


def _warn_once(message: str, key: str, *args: Any) -> None:
    if key not in _warned:
        _warned.add(key)
        logger.warning(message, *args)


def mlflow_name(name: str) -> str:
    """``name`` as a key MLflow accepts (unchanged when it already is one)."""
    if len(name) <= MAX_KEY_LENGTH and not _INVALID.search(name) and _path_unique(name):
        return name
    cleaned = _INVALID.sub("_", name)
    segments = [("__" if s == ".." else s) for s in cleaned.split("/") if s not in ("", ".")]
    result = "/".join(segments)[:MAX_KEY_LENGTH].rstrip("/") or "_"
    if not _path_unique(result):
        result = result.replace("/", "_")
    _warn_once("MLflow does not accept the name %r; using %r", "name:" + name, name, result)
    return result


def _path_unique(name: str) -> bool:
    norm = posixpath.normpath(name)
    return norm == name and norm != "." and not norm.startswith(("..", "/"))


def encode_metric(value: float | int) -> float | int | str:
    """A metric value as protobuf JSON: a number, or ``"NaN"`` / ``"±Infinity"``."""
    if isinstance(value, float) and not math.isfinite(value):
        if math.isnan(value):
            return "NaN"
        return "Infinity" if value > 0 else "-Infinity"
    return value


def decode_metric(value: Any) -> float:
    """A metric value from the server as a float; ``±1.797…e308`` reads as ``±inf``."""
    number = float(value)
    if number == _DOUBLE_MAX:
        return math.inf
    if number == -_DOUBLE_MAX:
        return -math.inf
    return number


def _cut(value: str, limit: int, what: str, key: str) -> str:
    if len(value) <= limit:
        return value
    _warn_once(
        "MLflow %s %r is %d characters long; truncated to %d",
        f"{what}:{key}",
        what,
        key,
        len(value),
        limit,
    )
    return value[:limit]


def encode_param(value: Any) -> str:
    """A param value as MLflow stores it: strings as they are, anything else as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str, allow_nan=True)


def decode_param(value: str) -> Any:
    """A param value read back: JSON when it parses, else the string."""
    try:
        return json.loads(value)
    except ValueError:
        return value


def param_entries(params: Mapping[str, Any]) -> list[dict[str, str]]:
    """``{"key", "value"}`` entries for log-batch: names fixed, values encoded and cut."""
    out: dict[str, str] = {}
    for key, value in params.items():
        name = mlflow_name(key)
        out[name] = _cut(encode_param(value), MAX_PARAM_VALUE_LENGTH, "param", name)
    return [{"key": k, "value": v} for k, v in out.items()]


def tag_entries(tags: Mapping[str, str]) -> list[dict[str, str]]:
    """``{"key", "value"}`` entries for runs/create and log-batch, values cut to 8000."""
    out: dict[str, str] = {}
    for key, value in tags.items():
        name = mlflow_name(key)
        out[name] = _cut(value, MAX_TAG_VALUE_LENGTH, "tag", name)
    return [{"key": k, "value": v} for k, v in out.items()]


def _size(entry: Mapping[str, Any]) -> int:
    return len(json.dumps(entry, separators=(",", ":"))) + 1


#: ``{"key":,"value":,"timestamp":,"step":}`` and the comma after it.
_METRIC_FRAME = 39


@functools.lru_cache(maxsize=4096)
def _key_size(key: str) -> int:
    return len(json.dumps(key))


def metric_size(entry: Mapping[str, Any]) -> int:
    """The compact JSON size of a log-batch metric entry plus its comma, as :func:`_size`
    counts it, without encoding the entry (a third of the cost: a batch has thousands)."""
    value = entry["value"]
    return (
        _key_size(entry["key"])
        + (len(value) + 2 if isinstance(value, str) else len(repr(value)))
        + len(str(entry["timestamp"]))
        + len(str(entry["step"]))
        + _METRIC_FRAME
    )


def split_entries(
    entries: Iterable[dict[str, Any]],
    *,
    per_request: int,
    max_bytes: int = MAX_BATCH_BYTES,
    size: Callable[[Mapping[str, Any]], int] = _size,
) -> Iterator[list[dict[str, Any]]]:
    """Group entries into requests of at most ``per_request`` entries and ``max_bytes``
    (each entry measured by ``size``)."""
    chunk: list[dict[str, Any]] = []
    total = 0
    for entry in entries:
        length = size(entry)
        if chunk and (len(chunk) >= per_request or total + length > max_bytes):
            yield chunk
            chunk, total = [], 0
        chunk.append(entry)
        total += length
    if chunk:
        yield chunk
