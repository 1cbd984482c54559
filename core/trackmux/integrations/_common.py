"""What the framework integrations share: the run they log to, and storable config values."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from trackmux_spec._config_values import config_value

import trackmux
from trackmux._current_run import current_run

__all__ = ["numeric", "storable", "use_run"]

logger = logging.getLogger("trackmux")


def use_run(**init_kwargs: Any) -> trackmux.Run:
    """The current run (``trackmux.run``), or a new one from ``trackmux.init(**init_kwargs)``."""
    run = current_run()
    if run is not None:
        return run
    return trackmux.init(**{k: v for k, v in init_kwargs.items() if v is not None})


def storable(values: Mapping[str, Any], framework: str) -> dict[str, Any]:
    """``values`` for a run's config: what a config cannot hold (a module, an optimizer
    object...) is stored as its ``repr``, with one warning naming the keys."""
    out: dict[str, Any] = {}
    replaced = []
    for key, value in values.items():
        try:
            config_value(value, str(key))
            out[str(key)] = value
        except TypeError:
            out[str(key)] = repr(value)
            replaced.append(str(key))
    if replaced:
        logger.warning("%s config: stored %s as text (a config holds JSON-like values only)",
                       framework, ", ".join(sorted(replaced)))
    return out


def numeric(values: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of ``values`` that are numbers (plain, numpy or one-element tensors)."""
    return {k: v for k, v in values.items()
            if isinstance(v, int | float) or (hasattr(v, "item") and not isinstance(v, str))}
