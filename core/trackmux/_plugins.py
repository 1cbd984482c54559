"""Plugin discovery: one pluggy manager, trackers found through the ``trackmux`` entry points.

Built-in trackers (``null``, ``wandb``) are registered by the same entry-point group that
third-party packages use. A *tracker* is a plugin that implements ``connect``; any other
plugin (a wrapper that filters ranks or redacts keys, say) applies to every tracker.
"""

from __future__ import annotations

import importlib.metadata
import inspect
from typing import Any

import pluggy
from trackmux_spec import TrackerInfo, TrackerNotFoundError, hookspecs
from trackmux_spec.hookspecs import PROJECT_NAME

__all__ = [
    "ENTRY_POINT_GROUP",
    "PluginDescription",
    "describe_plugins",
    "get_plugin_manager",
    "tracker_caller",
    "tracker_names",
]

#: The entry-point group trackers (and wrapper plugins) register in.
ENTRY_POINT_GROUP = PROJECT_NAME


def get_plugin_manager(*, load_entry_points: bool = True) -> pluggy.PluginManager:
    """A fresh plugin manager with the hookspecs added and the installed plugins loaded."""
    pm = pluggy.PluginManager(PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    if load_entry_points:
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    return pm


def tracker_names(pm: pluggy.PluginManager) -> list[str]:
    """The names of the registered plugins that implement ``connect``."""
    names = []
    for impl in pm.hook.connect.get_hookimpls():
        name = pm.get_name(impl.plugin)
        if name is not None and name not in names:
            names.append(name)
    return sorted(names)


def _tracker_plugin(pm: pluggy.PluginManager, name: str) -> Any:
    plugin = pm.get_plugin(name)
    if plugin is None or name not in tracker_names(pm):
        raise TrackerNotFoundError(name, tracker_names(pm))
    return plugin


class TrackerHooks:
    """The hooks of one tracker, with every wrapper plugin still applied."""

    def __init__(self, pm: pluggy.PluginManager, name: str) -> None:
        plugin = _tracker_plugin(pm, name)
        others = [pm.get_plugin(n) for n in tracker_names(pm) if n != name]
        self.name = name
        self._pm = pm
        self._plugin = plugin
        self._others = others
        self._callers: dict[str, Any] = {}

    def caller(self, hook: str) -> Any:
        """The hook caller of ``hook`` restricted to this tracker (and the wrappers)."""
        caller = self._callers.get(hook)
        if caller is None:
            caller = self._pm.subset_hook_caller(hook, remove_plugins=self._others)
            self._callers[hook] = caller
        return caller

    def implements(self, hook: str) -> bool:
        """Whether this tracker itself implements ``hook``."""
        return any(
            impl.plugin is self._plugin for impl in getattr(self._pm.hook, hook).get_hookimpls()
        )

    def is_async(self, hook: str) -> bool:
        """Whether this tracker's own implementation of ``hook`` is a coroutine function."""
        for impl in getattr(self._pm.hook, hook).get_hookimpls():
            if impl.plugin is self._plugin:
                return inspect.iscoroutinefunction(impl.function)
        return False

    def info(self) -> TrackerInfo:
        """The tracker's :class:`TrackerInfo` (the defaults if it declares none)."""
        info = self.caller("tracker_info")()
        return info if isinstance(info, TrackerInfo) else TrackerInfo()


def tracker_caller(pm: pluggy.PluginManager, name: str) -> TrackerHooks:
    """The hooks of tracker ``name``; :class:`TrackerNotFoundError` if it is not installed."""
    return TrackerHooks(pm, name)


class PluginDescription:
    """One registered plugin, as ``trackmux plugins`` lists it."""

    def __init__(
        self,
        name: str,
        distribution: str | None,
        version: str | None,
        hooks: list[str],
        is_tracker: bool,
    ) -> None:
        self.name = name
        self.distribution = distribution
        self.version = version
        self.hooks = hooks
        self.is_tracker = is_tracker

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "hooks": self.hooks,
            "tracker": self.is_tracker,
        }


def describe_plugins(pm: pluggy.PluginManager) -> list[PluginDescription]:
    """Every registered plugin with its distribution, version and hooks."""
    dists = {id(plugin): dist for plugin, dist in pm.list_plugin_distinfo()}
    trackers = set(tracker_names(pm))
    out = []
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda item: item[0]):
        dist = dists.get(id(plugin))
        hooks = sorted(caller.name for caller in pm.get_hookcallers(plugin) or [])
        dist_name = dist.metadata["name"] if dist is not None else None
        version = dist.version if dist is not None else None
        out.append(PluginDescription(name, dist_name, version, hooks, name in trackers))
    return out


def distribution_version(name: str) -> str | None:
    """The installed version of distribution ``name``, if any."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None
