"""Validation of what ``log_metrics`` accepts: the hot path's only work besides an append.

The policy, per input (documented in the README's "What log_metrics accepts"):

* ``int`` and ``float`` are kept as they are, NaN and the infinities included (each tracker
  stores them the way its backend can; see the plugin's docs).
* Anything else with ``.item()`` (numpy scalars, one-element torch tensors) or ``__float__``
  (``Decimal``, ``Fraction``, numpy floats) is converted, without importing numpy or torch.
* A nested mapping is flattened: ``{"train": {"loss": 1}}`` logs ``"train/loss"``.
* ``bool`` and numpy ``bool_`` are logged as ``1``/``0`` (W&B would store a boolean, MLflow
  only takes numbers: one value for every backend).
* ``None``, strings and other objects are rejected with :class:`TypeError`; keys
  that are not strings, empty, longer than :data:`MAX_KEY_LENGTH` or starting with ``_``
  (reserved for ``_step``, ``_timestamp``…) with :class:`TypeError` or :class:`ValueError`.
  The error names the key and the value, and the whole call is rejected: nothing of it is
  logged, nothing logged before is affected.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from gc import is_tracked
from typing import Any

__all__ = ["MAX_KEY_LENGTH", "normalize_metrics", "normalize_step"]

#: The longest metric name trackmux accepts (MLflow's limit, the strictest of the backends).
MAX_KEY_LENGTH = 250


#: Names that passed validation once; checking membership is the hot path's fast lane.
_KNOWN_KEYS: set[str] = set()
_KNOWN_KEYS_LIMIT = 4096


def normalize_metrics(metrics: Any) -> dict[str, float | int]:
    """Return a private copy of ``metrics`` with every value a plain ``int`` or ``float``.

    The copy is not tracked by the cyclic GC (it holds only numbers), so a buffered record
    never adds to a collection's work.
    """
    if type(metrics) is dict and metrics:
        known = _KNOWN_KEYS
        for key, value in metrics.items():
            kind = type(value)
            if key not in known or (kind is not float and kind is not int):
                return _normalize(metrics)
        out = metrics.copy()
        if is_tracked(out):  # metrics once held a container: CPython copies the tracking
            out = dict(metrics.items())  # built entry by entry: untracked
        return out
    return _normalize(metrics)


def _normalize(metrics: Any) -> dict[str, float | int]:
    if type(metrics) is not dict and not isinstance(metrics, Mapping):
        raise TypeError(
            f"metrics must be a mapping of names to numbers, got {type(metrics).__name__} "
            f"{_short(metrics)}"
        )
    out: dict[str, float | int] = {}
    for key, value in metrics.items():
        kind = type(value)
        if (
            (kind is float or kind is int)
            and type(key) is str
            and 0 < len(key) <= MAX_KEY_LENGTH
            and key[0] != "_"
        ):
            out[key] = value
        else:
            _add_slow(out, key, value, "")
    if not out:
        raise ValueError("metrics is empty: log at least one value")
    if len(_KNOWN_KEYS) < _KNOWN_KEYS_LIMIT:
        _KNOWN_KEYS.update(out)
    return out


def _add_slow(out: dict[str, float | int], key: Any, value: Any, prefix: str) -> None:
    if not isinstance(key, str):
        raise TypeError(f"metric names must be strings, got {key!r} for value {_short(value)}")
    name = prefix + key
    _check_name(name, value)
    if isinstance(value, Mapping):
        if not value:
            raise ValueError(f"metric {name!r} is an empty mapping")
        for sub_key, sub_value in value.items():
            _add_slow(out, sub_key, sub_value, name + "/")
        return
    out[name] = _number(name, value)


def _check_name(name: str, value: Any) -> None:
    if not name:
        raise ValueError(f"metric name is empty (value {_short(value)})")
    if len(name) > MAX_KEY_LENGTH:
        raise ValueError(
            f"metric name {name[:40]!r}... is {len(name)} characters long; "
            f"the limit is {MAX_KEY_LENGTH}"
        )
    if name[0] == "_":
        raise ValueError(
            f"metric name {name!r} starts with '_', which is reserved for trackmux's own "
            f"columns (_step, _timestamp, _runtime)"
        )


def _number(name: str, value: Any) -> float | int:
    kind = type(value)
    if kind is float or kind is int:
        return value  # type: ignore[no-any-return]
    if isinstance(value, bool):
        return int(value)
    if value is None:
        raise TypeError(f"metric {name!r} is None; log a number (NaN for a missing value)")
    if isinstance(value, (str, bytes)):
        raise TypeError(f"metric {name!r} is not a number: {_short(value)}")
    item = getattr(value, "item", None)
    if callable(item):
        try:
            converted = item()
        except Exception as exc:  # multi-element, or a tensor that cannot be read (meta)
            raise TypeError(
                f"metric {name!r} is not a scalar ({type(value).__name__} {_short(value)}): {exc}"
            ) from None
        if converted is not value:
            return _number(name, converted)
    if isinstance(value, int):
        return int(value)
    if hasattr(value, "__float__"):
        try:
            return float(value)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"metric {name!r} cannot be read as a number: {exc}") from None
    raise TypeError(f"metric {name!r} is not a number: {type(value).__name__} {_short(value)}")


def normalize_step(step: Any) -> int:
    """Return ``step`` as a non-negative ``int`` (numpy integers accepted)."""
    if type(step) is int:
        value = step
    else:
        if isinstance(step, bool):
            raise TypeError(f"step must be an integer, got {step!r}")
        try:
            value = operator.index(step)
        except TypeError:
            raise TypeError(f"step must be an integer, got {_short(step)}") from None
    if value < 0:
        raise ValueError(f"step must be >= 0, got {value}")
    return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
