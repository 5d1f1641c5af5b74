"""Loading: the built-ins, then every installed ``polydl`` entry point, once per process.

The built-ins are collected and added to the registries first, so a plugin's component may
build on them while it is probed at load time (a loss that calls
``polydl.losses.get("softmax_cross_entropy")``). Then each entry point is loaded and collected on
its own; a broken one is skipped (:func:`_fail`). Its names without ``override=True`` are added
in load order, then the deliberate overrides; last come the clash warnings.
"""
from __future__ import annotations

import importlib

from ..checks import did_you_mean
from ..registry import Registry, norm
from .clashes import check_preferred, warn_clashes
from .collect import add, check_clashes, check_twice, collect, forget, new_manager, validation_guard
from .environment import LOAD_ENV, settings
from .info import BUILTIN_MODULES, ENTRY_POINT_GROUP, PluginError, PluginInfo, one_line, registries
from .state import STATE

__all__ = ["load", "is_loaded", "reset", "plugin_manager", "register_plugin", "unregister_plugin"]


# ---------------------------------------------------------------------- discovery
def _entry_points():
    from importlib.metadata import entry_points
    eps = entry_points(group=ENTRY_POINT_GROUP)
    return sorted(eps, key=lambda ep: (ep.name, ep.value))


def _ep_dist(ep):
    dist = getattr(ep, "dist", None)
    if dist is None:
        return None, None
    try:
        return dist.metadata["Name"] or getattr(dist, "name", None), dist.version
    except Exception:  # pragma: no cover - malformed metadata
        return getattr(dist, "name", None), None


def _selected(eps, only, strict):
    """The entry points ``POLYDL_LOAD_PLUGINS`` names (by entry-point or distribution name); a
    name that matches none is a warning (an error when strict)."""
    wanted = {norm(n): n for n in only}
    matched = set()
    keep = []
    for ep in eps:
        dist, _ = _ep_dist(ep)
        keys = {norm(ep.name)} | ({norm(dist)} if dist else set())
        if keys & set(wanted):
            matched |= keys & set(wanted)
            keep.append(ep)
    for key in sorted(set(wanted) - matched):
        available = sorted({ep.name for ep in eps})
        STATE.problem(f"{LOAD_ENV} names '{wanted[key]}', but no installed polydl plugin has that entry-point "
                      f"or distribution name (installed: {', '.join(available) or 'none'})", strict, stacklevel=5)
    return keep


# ---------------------------------------------------------------------- one plugin's fate
def _fail(info, message, strict):
    """Skip a broken plugin: a warning naming it (an error when strict)."""
    info.error = message
    if strict:
        raise PluginError(message)
    STATE.failed.append(info)
    STATE.problem(message, strict)


def _skipped(info, exc) -> str:
    """The error, naming the plugin with its distribution exactly once."""
    text = str(exc)
    if info.describe() in text:
        return text
    own = f"plugin '{info.name}'"
    if text.startswith(own + ": "):
        return f"{info.describe()}: {text[len(own) + 2:]}"
    if text.startswith(own + " "):
        return info.describe() + text[len(own):]
    return f"{info.describe()}: {text}"


def _load_builtins(pm) -> None:
    """Collect and add the built-ins (a failure here is a bug in polydl: always an error)."""
    from .. import __version__
    for modname in BUILTIN_MODULES:
        info = PluginInfo(modname, "builtin", modname, "polydl", __version__)
        pending = collect(pm, importlib.import_module(modname), info)
        check_twice(info, pending)
        add(info, pending, override=False)
        add(info, pending, override=True)
        STATE.plugins[info.name] = info


def _load_entry_point(pm, ep, taken, strict):
    """Load and collect one entry point: ``(info, pending)``, or None where it was skipped."""
    dist, version = _ep_dist(ep)
    info = PluginInfo(ep.name, "entry point", ep.value, dist, version)
    if ep.name in taken:
        _fail(info, f"{info.describe()} was skipped: the plugin name '{ep.name}' is already used by "
              "another plugin; rename the entry point", strict)
        return None
    try:
        obj = ep.load()
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # SystemExit in a plugin must not silence every command
        _fail(info, f"{info.describe()} failed to load ({ep.value}): {one_line(exc)}", strict)
        return None
    try:
        pending = collect(pm, obj, info)
    except PluginError as exc:
        _fail(info, _skipped(info, exc), strict)
        return None
    taken.add(ep.name)
    return info, pending


def _load_entry_points(pm, conf) -> None:
    """Every selected entry point, in name order: its plain names added in load order, then
    the deliberate overrides."""
    strict = conf["strict"]
    eps = _entry_points()
    if conf["only"] is not None:
        eps = _selected(eps, conf["only"], strict)
    taken = set(STATE.plugins)
    loaded = [found for found in (_load_entry_point(pm, ep, taken, strict) for ep in eps) if found is not None]
    ok = []
    for info, pending in loaded:
        try:
            check_twice(info, pending)
        except PluginError as exc:
            forget(pm, pm.get_plugin(info.name))
            _fail(info, _skipped(info, exc), strict)
            continue
        add(info, pending, override=False)
        ok.append((info, pending))
    for info, pending in ok:
        add(info, pending, override=True)
        STATE.plugins[info.name] = info


def _load_all() -> None:
    conf = settings()
    STATE.settings.clear()
    STATE.settings.update(conf)
    for reg in registries().values():
        reg.clear()
        reg.set_preference(conf["prefer"] or ())
    STATE.clear()
    pm = new_manager()
    _load_builtins(pm)
    if conf["autoload"]:
        _load_entry_points(pm, conf)
    check_preferred(conf["prefer"], conf["strict"])
    warn_clashes(conf["strict"], conf["prefer"])
    pm.check_pending()
    STATE.pm = pm


# ---------------------------------------------------------------------- public API
def load() -> None:
    """Load the built-ins and the installed plugins. Only the first call does anything; it is
    thread-safe, and registries call it themselves on first use."""
    if STATE.pm is not None:
        return
    with STATE.lock:
        if STATE.pm is not None or STATE.loading:  # loaded meanwhile, or a re-entrant call while loading
            return
        STATE.loading = True
        try:
            _load_all()
        except BaseException:
            for reg in registries().values():
                reg.clear()
            STATE.plugins.clear()
            raise
        finally:
            STATE.loading = False


def is_loaded() -> bool:
    """Whether plugins have been loaded in this process (``import polydl`` alone does not)."""
    return STATE.pm is not None


def reset() -> None:
    """Forget every plugin and registration; the next use loads again (re-reading the
    environment variables and entry points). Meant for tests."""
    with STATE.lock:
        STATE.pm = None
        for reg in registries().values():
            reg.clear()
        STATE.clear()


def plugin_manager():
    """The ``pluggy.PluginManager`` (project ``polydl``) holding every loaded plugin."""
    load()
    return STATE.pm


def register_plugin(obj, name: str | None = None, *, distribution: str | None = None,
                    version: str | None = None) -> PluginInfo:
    """Register a plugin object (a module or an instance with ``@polydl.hookimpl`` functions) now.

    Everything it registers is validated and checked for clashes; any problem raises
    ``PluginError`` and leaves the registries as they were. See ``polydl.testing.registered_plugin``
    for the form that undoes itself."""
    load()
    if name is None:
        name = getattr(obj, "__name__", None) or type(obj).__name__
    if not isinstance(name, str) or not name:
        raise PluginError(f"a plugin name must be a non-empty string, not {name!r}")
    info = PluginInfo(name, "runtime", getattr(obj, "__name__", None) or type(obj).__name__,
                      distribution, version)
    with STATE.lock:
        if name in STATE.plugins:
            raise PluginError(f"{info.describe()}: the plugin name '{name}' is already taken by "
                              f"{STATE.plugins[name].describe()}")
        pending = collect(STATE.pm, obj, info)
        try:
            check_clashes(info, pending)
        except PluginError:
            forget(STATE.pm, obj)
            raise
        add(info, pending, override=False)
        add(info, pending, override=True)
        STATE.plugins[name] = info
    return info


def unregister_plugin(name: str) -> PluginInfo:
    """Remove a loaded plugin and every name it registered (overridden names come back)."""
    load()
    with STATE.lock:
        info = STATE.plugins.pop(name, None)
        if info is None:
            raise PluginError(f"no plugin named '{name}' is loaded{did_you_mean(name, STATE.plugins)} "
                              f"(loaded: {', '.join(STATE.plugins)})")
        for reg in registries().values():
            reg.remove_plugin(name)
        obj = STATE.pm.get_plugin(name)
        if obj is not None:
            STATE.pm.unregister(obj)
        return info


def _snapshot():
    """Registries, plugin list and plugin manager as they are now (for ``_restore``)."""
    with STATE.lock:
        load()
        return ({k: r.snapshot() for k, r in registries().items()}, dict(STATE.plugins),
                [(n, obj) for n, obj in STATE.pm.list_name_plugin() if obj is not None], STATE.pm)


def _restore(snap) -> None:
    regs, plugs, named, pm = snap
    with STATE.lock:
        if STATE.pm is not pm:  # reset() in between: the next use loads afresh anyway
            return
        for kind, reg in registries().items():
            reg.restore(regs[kind])
        STATE.plugins.clear()
        STATE.plugins.update(plugs)
        wanted = dict(named)
        for n, obj in list(STATE.pm.list_name_plugin()):
            if obj is not None and wanted.get(n) is not obj:
                STATE.pm.unregister(obj)
        for n, obj in named:
            if STATE.pm.get_plugin(n) is None:
                STATE.pm.register(obj, name=n)


Registry.connect(load, validation_guard)
