"""What a run's config can hold, and how the values people pass become storable ones.

A config reaches every backend as JSON-ready data: ``None``, ``bool``, ``int``, ``float``
(NaN and the infinities included), ``str``, lists and dicts with string keys. What
``wandb.init(config=...)`` accepts becomes that data the way the ``wandb`` SDK turns it into
JSON (``wandb/util.py``, ``json_friendly_val``), except where that loses information:

========================================  ==========================================
value                                     stored as
========================================  ==========================================
``None``, bools, ints, floats, strings    themselves (subclasses as the plain type)
``enum.Enum`` members                     their ``name`` (as wandb)
numpy scalars, numpy arrays, torch        ``.tolist()``: numbers, bools, lists
tensors, anything with ``tolist()``       (wandb: a string for arrays of more than 32
                                          elements; a 0-d array is a number here)
``pathlib`` paths                         ``str(path)``
``datetime``, ``date``, ``time``          ``isoformat()`` (as wandb)
``timedelta``                             ``str(delta)`` (as wandb)
``bytes``                                 decoded as UTF-8 (as wandb)
``Decimal``, ``Fraction``                 ``float(value)``
tuples, lists, other sequences            lists
sets and frozensets                       sorted lists (wandb: in arbitrary order)
mappings, dataclasses, attrs classes,     dicts; mapping keys that are integers become
``argparse.Namespace``                    strings (as JSON does)
functions and classes                     ``"module.qualname"`` (as wandb)
numpy/torch ``dtype`` and torch ``device``  ``str(value)``: ``"float32"``, ``"torch.bfloat16"``,
                                          ``"cuda:0"`` (as wandb)
========================================  ==========================================

Anything else (a model, an open file, a complex number...) is refused with a
``TypeError`` naming the key (``"optimizer.betas[1]"``) and the value's type, when the config
is built: never later, in a background tracker. numpy, torch and the like are recognised by
what their values do, never imported.
"""

from __future__ import annotations

import datetime
import enum
import operator
import sys
from collections.abc import Mapping, Sequence, Set
from pathlib import PurePath
from typing import Any

import attrs

__all__ = ["config_value", "object_fields"]

#: Array libraries whose ``dtype`` and ``device`` values are stored as their names.
_ARRAY_LIBRARIES = frozenset({"numpy", "torch", "jax", "jaxlib", "tensorflow", "cupy"})

#: How deep a config may nest (a cycle is reported before this is reached).
MAX_DEPTH = 64


def config_value(value: Any, key: str) -> Any:
    """``value`` as JSON-ready data (see the module docstring).

    :param key: the value's name in the config, for error messages.
    :raises TypeError: a value a config cannot hold, naming ``key`` and the type.
    """
    return _convert(value, key, set(), 0)


def object_fields(value: Any) -> dict[str, Any] | None:
    """The fields of a dataclass, attrs instance or ``argparse.Namespace`` as a dict (not
    converted); ``None`` for anything else."""
    kind = type(value)
    if isinstance(kind, type) and hasattr(kind, "__dataclass_fields__"):
        import dataclasses

        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if attrs.has(kind):
        return {a.name: getattr(value, a.name) for a in attrs.fields(kind)}
    argparse = sys.modules.get("argparse")  # no Namespace can exist before it is imported
    if argparse is not None and isinstance(value, argparse.Namespace):
        return dict(vars(value))
    return None


def _type_name(value: Any) -> str:
    kind = type(value)
    module = kind.__module__
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"


def _refuse(key: str, value: Any, why: str = "") -> TypeError:
    return TypeError(
        f"config key {key!r} holds a value of type {_type_name(value)}, which a run's config "
        f"cannot store"
        f"{why}; pass numbers, strings, lists or dicts (or str(value))"
    )


def _convert(value: Any, key: str, seen: set[int], depth: int) -> Any:
    if value is None or value is True or value is False:
        return value
    kind = type(value)
    if kind is str or kind is int or kind is float:
        return value
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if depth >= MAX_DEPTH:
        raise TypeError(f"config key {key!r} nests more than {MAX_DEPTH} levels deep")
    if isinstance(value, Mapping):
        return _container(value, key, seen, depth, _mapping)
    fields = object_fields(value)
    if fields is not None:
        return _container(fields, key, seen, depth, _mapping, marker=value)
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return str(value)
    if isinstance(value, bytes | bytearray):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise _refuse(key, value, " (bytes that are not UTF-8 text)") from None
    if isinstance(value, Set):
        return _container(value, key, seen, depth, _set)
    if isinstance(value, Sequence):
        return _container(value, key, seen, depth, _sequence)
    if callable(value) and hasattr(value, "__qualname__") and hasattr(value, "__module__"):
        return f"{value.__module__}.{value.__qualname__}"  # a function or a class
    if _is_dtype_or_device(kind):
        return str(value)
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        try:
            converted = tolist()
        except Exception as exc:  # e.g. a torch tensor on the "meta" device
            raise _refuse(key, value, f" (its tolist() failed: {exc})") from None
        if type(converted) is not kind:
            return _convert(converted, key, seen, depth + 1)
    if isinstance(value, complex):
        raise _refuse(key, value, " (a complex number)")
    if hasattr(value, "__float__") and not callable(value):
        try:
            return float(value)
        except (TypeError, ValueError, OverflowError) as exc:
            raise _refuse(key, value, f" ({exc})") from None
    raise _refuse(key, value)


def _is_dtype_or_device(kind: type) -> bool:
    name = kind.__name__
    return (name in ("dtype", "device") or name.endswith("DType")) and (
        kind.__module__.partition(".")[0] in _ARRAY_LIBRARIES)


def _container(value: Any, key: str, seen: set[int], depth: int, convert: Any,
               marker: Any = None) -> Any:
    ident = id(value if marker is None else marker)
    if ident in seen:
        raise TypeError(f"config key {key!r} contains itself (a reference cycle)")
    seen.add(ident)
    try:
        return convert(value, key, seen, depth + 1)
    finally:
        seen.discard(ident)


def _mapping(value: Mapping[Any, Any], key: str, seen: set[int], depth: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for sub_key, sub_value in value.items():
        name = _key(sub_key, key)
        out[name] = _convert(sub_value, f"{key}.{name}", seen, depth)
    return out


def _key(sub_key: Any, key: str) -> str:
    if isinstance(sub_key, enum.Enum):
        return sub_key.name
    if isinstance(sub_key, str):
        return str(sub_key)
    if not isinstance(sub_key, bool):
        try:
            return str(operator.index(sub_key))
        except TypeError:
            pass
    raise TypeError(
        f"config key {key!r} has a key {sub_key!r} ({_type_name(sub_key)}); "
        f"config keys must be strings (or integers)"
    )


def _sequence(value: Sequence[Any], key: str, seen: set[int], depth: int) -> list[Any]:
    return [_convert(item, f"{key}[{index}]", seen, depth) for index, item in enumerate(value)]


def _set(value: Set[Any], key: str, seen: set[int], depth: int) -> list[Any]:
    items = [_convert(item, f"{key}[]", seen, depth) for item in value]
    try:
        return sorted(items)
    except TypeError:
        return sorted(items, key=repr)
