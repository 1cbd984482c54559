"""Plugin discovery: one pluggy manager, plugins loaded from entry points when needed.

Trackers register in the ``trackmux`` entry-point group, under the name users select them
by (``null``, ``wandb``, a third party's); wrapper plugins, which apply to every tracker,
register in ``trackmux.wrappers``. The built-in trackers use the same group as third-party
ones.

Loading is lazy and isolated. Creating a :class:`PluginManager` reads nothing; the first
lookup reads the entry-point metadata once; a tracker's plugin is imported when that
tracker is selected, together with every wrapper. An entry point whose import or
registration fails is recorded as broken (:class:`BrokenPlugin`, naming the entry point and
its distribution) and leaves the manager as it was: selecting that tracker raises
:class:`~trackmux_spec.PluginLoadError`, a broken wrapper is skipped with a warning, and
every other plugin keeps working. ``trackmux plugins`` loads everything and lists the
broken ones with the reason.
"""

from __future__ import annotations

import inspect
import logging
from typing import TYPE_CHECKING, Any

import pluggy
from trackmux_spec import PluginLoadError, TrackerInfo, TrackerNotFoundError, hookspecs
from trackmux_spec.hookspecs import PROJECT_NAME

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

__all__ = [
    "ENTRY_POINT_GROUP",
    "WRAPPER_ENTRY_POINT_GROUP",
    "BrokenPlugin",
    "PluginDescription",
    "PluginManager",
    "describe_plugins",
    "get_plugin_manager",
    "tracker_caller",
    "tracker_names",
]

logger = logging.getLogger("trackmux")

#: The entry-point group of trackers: the entry point's name is the tracker's name.
ENTRY_POINT_GROUP = PROJECT_NAME
#: The entry-point group of wrapper plugins (no ``connect``; applied to every tracker).
WRAPPER_ENTRY_POINT_GROUP = f"{PROJECT_NAME}.wrappers"


class BrokenPlugin:
    """An entry point whose plugin could not be imported or registered, and why."""

    def __init__(self, name: str, group: str, value: str, distribution: str | None,
                 version: str | None, reason: str) -> None:
        self.name = name
        self.group = group
        self.value = value
        self.distribution = distribution
        self.version = version
        self.reason = reason

    def __repr__(self) -> str:
        return f"<BrokenPlugin {self.describe()}>"

    def describe(self) -> str:
        """One line: the entry point, its distribution, and the reason."""
        dist = self.distribution or "an unknown distribution"
        if self.version:
            dist = f"{dist} {self.version}"
        return (f"entry point {self.name} = {self.value} (group {self.group!r}) from {dist}: "
                f"{self.reason}")


def _entry_point_distribution(ep: EntryPoint) -> tuple[str | None, str | None]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return None, None
    return dist.metadata["Name"], dist.version


def _implements_connect(pm: pluggy.PluginManager, plugin: object) -> bool:
    return any(impl.plugin is plugin for impl in pm.hook.connect.get_hookimpls())


class PluginManager(pluggy.PluginManager):
    """pluggy's manager with the hookspecs added, loading entry points only when needed.

    :param entry_points: whether installed plugins are found through entry points at all
        (``False``: only what is registered by hand, as tests do).
    """

    def __init__(self, *, entry_points: bool = True) -> None:
        super().__init__(PROJECT_NAME)
        self.add_hookspecs(hookspecs)
        self._use_entry_points = entry_points
        self._index: dict[str, dict[str, EntryPoint]] | None = None
        self._broken: dict[tuple[str, str], BrokenPlugin] = {}
        self._distributions: dict[str, tuple[str | None, str | None]] = {}
        self._wrappers_loaded = False

    # -- the entry-point index ------------------------------------------------------------

    def _entry_points(self, group: str) -> dict[str, EntryPoint]:
        """The entry points of ``group`` by name, read once per manager."""
        if self._index is None:
            self._index = {ENTRY_POINT_GROUP: {}, WRAPPER_ENTRY_POINT_GROUP: {}}
            if self._use_entry_points:
                import importlib.metadata

                found = importlib.metadata.entry_points()
                for index_group, by_name in self._index.items():
                    for ep in found.select(group=index_group):
                        if ep.name in by_name:
                            first, _ = _entry_point_distribution(by_name[ep.name])
                            self._mark_broken(ep, f"duplicate entry-point name: {first} "
                                                  f"already provides {ep.name!r}")
                        else:
                            by_name[ep.name] = ep
        return self._index[group]

    def _mark_broken(self, ep: EntryPoint, reason: str) -> BrokenPlugin:
        dist, version = _entry_point_distribution(ep)
        reason = "; ".join(line.strip() for line in reason.splitlines() if line.strip())
        broken = BrokenPlugin(ep.name, ep.group, ep.value, dist, version, reason)
        self._broken.setdefault((ep.group, ep.name), broken)
        return broken

    @property
    def broken(self) -> list[BrokenPlugin]:
        """The entry points that failed to load so far, in the order they failed."""
        return list(self._broken.values())

    def distribution_of(self, name: str) -> tuple[str | None, str | None]:
        """The distribution name and version that provided plugin ``name`` (or ``None``s)."""
        return self._distributions.get(name, (None, None))

    # -- loading ----------------------------------------------------------------------------

    def _load(self, ep: EntryPoint, *, tracker: bool) -> BrokenPlugin | None:
        """Import and register one entry point; a failure leaves the manager unchanged."""
        if self.has_plugin(ep.name) or self.is_blocked(ep.name):
            return None
        known = self._broken.get((ep.group, ep.name))
        if known is not None:
            return known
        try:
            plugin = ep.load()
        except Exception as exc:
            return self._mark_broken(ep, f"import failed: {type(exc).__name__}: {exc}")
        try:
            self.register(plugin, name=ep.name)
        except Exception as exc:
            if self.is_registered(plugin):
                self.unregister(plugin)
            return self._mark_broken(ep, f"registration failed: {type(exc).__name__}: {exc}")
        if tracker != _implements_connect(self, plugin):
            self.unregister(plugin)
            reason = (f"does not implement connect(); wrapper plugins register in the "
                      f"{WRAPPER_ENTRY_POINT_GROUP!r} group" if tracker else
                      f"implements connect(); trackers register in the "
                      f"{ENTRY_POINT_GROUP!r} group")
            return self._mark_broken(ep, reason)
        self._distributions[ep.name] = _entry_point_distribution(ep)
        return None

    def load_tracker(self, name: str) -> object:
        """The plugin of tracker ``name``, imported from its entry point if need be.

        :raises TrackerNotFoundError: no such tracker is installed.
        :raises PluginLoadError: it is installed, but its plugin failed to load.
        """
        plugin = self.get_plugin(name)
        if plugin is not None and _implements_connect(self, plugin):
            return plugin
        ep = self._entry_points(ENTRY_POINT_GROUP).get(name)
        if plugin is None and ep is not None:
            problem = self._load(ep, tracker=True)
            if problem is not None:
                raise PluginLoadError(name, self.tracker_names(), problem.describe())
            plugin = self.get_plugin(name)
        if plugin is None or not _implements_connect(self, plugin):
            raise TrackerNotFoundError(name, self.tracker_names())
        return plugin

    def load_wrappers(self) -> None:
        """Import every wrapper plugin; a broken one is skipped with a warning naming it."""
        if self._wrappers_loaded:
            return
        self._wrappers_loaded = True
        for ep in self._entry_points(WRAPPER_ENTRY_POINT_GROUP).values():
            problem = self._load(ep, tracker=False)
            if problem is not None:
                logger.warning("trackmux: skipping a wrapper plugin that failed to load: %s",
                               problem.describe())

    def load_all(self) -> None:
        """Import every installed plugin (as ``trackmux plugins`` does), isolating failures."""
        for ep in self._entry_points(ENTRY_POINT_GROUP).values():
            self._load(ep, tracker=True)
        self._wrappers_loaded = True
        for ep in self._entry_points(WRAPPER_ENTRY_POINT_GROUP).values():
            self._load(ep, tracker=False)

    def tracker_names(self) -> list[str]:
        """Every tracker: registered ones and installed entry points not known to be broken."""
        names = set(_registered_trackers(self))
        broken = {name for group, name in self._broken if group == ENTRY_POINT_GROUP}
        names |= {name for name in self._entry_points(ENTRY_POINT_GROUP)
                  if name not in broken and not self.is_blocked(name)}
        return sorted(names)


def get_plugin_manager(*, load_entry_points: bool = True) -> PluginManager:
    """A fresh plugin manager with the hookspecs added.

    Installed plugins are loaded from their entry points when first needed (a tracker when
    it is selected, the wrappers with it); ``load_entry_points=False`` gives a manager that
    only knows what is registered by hand.
    """
    return PluginManager(entry_points=load_entry_points)


def _registered_trackers(pm: pluggy.PluginManager) -> list[str]:
    names = []
    for impl in pm.hook.connect.get_hookimpls():
        name = pm.get_name(impl.plugin)
        if name is not None and name not in names:
            names.append(name)
    return names


def tracker_names(pm: pluggy.PluginManager) -> list[str]:
    """The names of the trackers ``pm`` knows (installed or registered), without loading them."""
    if isinstance(pm, PluginManager):
        return pm.tracker_names()
    return sorted(_registered_trackers(pm))


class TrackerHooks:
    """The hooks of one tracker, with every wrapper plugin still applied.

    The other trackers registered in the manager are left out of every call, including
    trackers loaded after this object was made.
    """

    def __init__(self, pm: pluggy.PluginManager, name: str) -> None:
        if isinstance(pm, PluginManager):
            plugin = pm.load_tracker(name)
            pm.load_wrappers()
        else:
            plugin = pm.get_plugin(name)
            if plugin is None or not _implements_connect(pm, plugin):
                raise TrackerNotFoundError(name, tracker_names(pm))
        self.name = name
        self._pm = pm
        self._plugin = plugin
        self._callers: dict[str, tuple[tuple[int, ...], Any]] = {}

    def caller(self, hook: str) -> Any:
        """The hook caller of ``hook`` restricted to this tracker (and the wrappers)."""
        others = [impl.plugin for impl in self._pm.hook.connect.get_hookimpls()
                  if impl.plugin is not self._plugin]
        key = tuple(id(plugin) for plugin in others)
        cached = self._callers.get(hook)
        if cached is None or cached[0] != key:
            cached = (key, self._pm.subset_hook_caller(hook, remove_plugins=others))
            self._callers[hook] = cached
        return cached[1]

    def implements(self, hook: str) -> bool:
        """Whether this tracker itself implements ``hook``."""
        return any(
            impl.plugin is self._plugin for impl in getattr(self._pm.hook, hook).get_hookimpls()
        )

    def wrapped(self, hook: str) -> bool:
        """Whether another plugin (a wrapper) runs around this tracker's ``hook``."""
        return any(impl.plugin is not self._plugin for impl in self.caller(hook).get_hookimpls())

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
    """The hooks of tracker ``name``, loading its plugin (and the wrappers) if need be.

    :raises TrackerNotFoundError: no such tracker is installed.
    :raises PluginLoadError: it is installed, but its plugin failed to load.
    """
    return TrackerHooks(pm, name)


class PluginDescription:
    """One plugin, as ``trackmux plugins`` lists it; ``broken`` says why it did not load."""

    def __init__(
        self,
        name: str,
        distribution: str | None,
        version: str | None,
        hooks: list[str],
        is_tracker: bool,
        broken: str | None = None,
    ) -> None:
        self.name = name
        self.distribution = distribution
        self.version = version
        self.hooks = hooks
        self.is_tracker = is_tracker
        self.broken = broken

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "hooks": self.hooks,
            "tracker": self.is_tracker,
            "broken": self.broken,
        }


def describe_plugins(pm: pluggy.PluginManager) -> list[PluginDescription]:
    """Every plugin, loading all installed ones: distribution, version, hooks, or why broken."""
    if isinstance(pm, PluginManager):
        pm.load_all()
    trackers = set(_registered_trackers(pm))
    out = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:  # blocked
            continue
        dist, version = (pm.distribution_of(name) if isinstance(pm, PluginManager)
                         else (None, None))
        hooks = sorted(caller.name for caller in pm.get_hookcallers(plugin) or [])
        out.append(PluginDescription(name, dist, version, hooks, name in trackers))
    if isinstance(pm, PluginManager):
        for problem in pm.broken:
            out.append(PluginDescription(problem.name, problem.distribution, problem.version, [],
                                         problem.group == ENTRY_POINT_GROUP,
                                         broken=problem.reason))
    return sorted(out, key=lambda item: (item.name, item.broken is not None))

