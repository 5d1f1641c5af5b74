"""Plugin loading: the built-ins and every installed ``polydl`` entry point, once per process.

Built-in schedules, normalizers, losses, optimizers and datasets are registered through the same
hooks as third-party plugins (they are default plugins, as pytest's are). Third-party plugins are
the entry points of the group ``polydl``::

    [project.entry-points.polydl]
    cosine = "polydl_cosine"          # a module (or an object) with @polydl.hookimpl functions

Loading happens on first use of a registry (``polydl.schedules.get(...)``, ``names()``, ...),
once per process and under a lock; ``import polydl`` loads nothing. Each entry point is loaded
on its own: one that fails to import, implements an unknown hook or registers something invalid
is skipped with a ``PluginWarning`` naming the plugin, its distribution and the error, and the
others still load.

A name that two plugins register without ``override=True`` (a clash) stays with the plugin that
loaded first (the built-ins, then entry points sorted by name); the other plugin loses only that
name, with a ``PluginWarning`` that says which plugin won and how to choose the other: its
``plugin:name`` (``rms:rmsnorm``, wherever a name is looked up) or ``POLYDL_PREFER_PLUGINS``.

Environment variables, read when loading happens:

``POLYDL_STRICT_PLUGINS=1``          a broken plugin or a clash is an error (``PluginError``), not a warning
``POLYDL_LOAD_PLUGINS=a,b``          load only these entry points (entry-point or distribution names)
``POLYDL_DISABLE_PLUGIN_AUTOLOAD=1`` load no entry points, only the built-ins
``POLYDL_PREFER_PLUGINS=a,b``        a name that several plugins register goes to the first of these
                                     (entry-point or distribution names; ``polydl``: the built-ins)
                                     that registers it: clashes and overrides, without a warning
"""
from __future__ import annotations

import contextlib
import importlib
import inspect
import os
import threading
import warnings
from dataclasses import asdict, dataclass, field

import pluggy

from . import hookspecs
from .checks import did_you_mean
from .registry import SEPARATOR, RegistrationError, Registry, norm

__all__ = ["load", "is_loaded", "reset", "plugin_manager", "plugins", "failed", "problems",
           "register_plugin", "unregister_plugin", "report", "settings", "registries", "blame",
           "PluginInfo", "PluginError", "PluginWarning", "ENTRY_POINT_GROUP", "HOOKS",
           "STRICT_ENV", "LOAD_ENV", "DISABLE_ENV", "PREFER_ENV", "SUPPLIED"]

ENTRY_POINT_GROUP = "polydl"
STRICT_ENV = "POLYDL_STRICT_PLUGINS"
LOAD_ENV = "POLYDL_LOAD_PLUGINS"
DISABLE_ENV = "POLYDL_DISABLE_PLUGIN_AUTOLOAD"
PREFER_ENV = "POLYDL_PREFER_PLUGINS"

HOOKS = {
    "polydl_register_schedules": "schedules",
    "polydl_register_normalizers": "normalizers",
    "polydl_register_losses": "losses",
    "polydl_register_optimizers": "optimizers",
    "polydl_register_datasets": "datasets",
}
BUILTIN_MODULES = ("polydl.schedules", "polydl.normalizers", "polydl.losses", "polydl.optim",
                   "polydl.datasets")
#: per kind, the parameters polydl passes a factory itself: how many leading positional ones
#: (``num_features``, an optimizer's ``params``) and which keywords; the rest are the user's
SUPPLIED = {"schedules": (0, ("lr0",)), "normalizers": (1, ()), "losses": (0, ()), "optimizers": (1, ("lr",)),
            "datasets": (0, ("seed", "val_fraction", "test_fraction"))}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


class PluginError(ValueError):
    """A plugin could not be loaded (``POLYDL_STRICT_PLUGINS=1``, or an explicit registration)."""


class PluginWarning(UserWarning):
    """A broken plugin was skipped; the others were loaded."""


@dataclass
class PluginInfo:
    """One plugin: where it came from, the hooks it implements and the names it registered."""

    name: str
    source: str                      # "builtin", "entry point" or "runtime"
    target: str | None = None        # the entry point's value, or the module's name
    distribution: str | None = None
    version: str | None = None
    hooks: list = field(default_factory=list)
    registered: dict = field(default_factory=dict)   # kind -> [names]
    overrides: dict = field(default_factory=dict)    # kind -> [names it replaced]
    shadowed: dict = field(default_factory=dict)     # kind -> {name: the plugin that answers it instead}
    parameters: dict = field(default_factory=dict)   # kind -> {name: [the user's parameters]}
    error: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        """``plugin 'x' (distribution d 1.0)``: how messages name a plugin."""
        return f"plugin '{self.name}' ({_dist_text(self.distribution, self.version)})"


@dataclass
class _Pending:
    kind: str
    name: str
    obj: object
    override: bool


_lock = threading.RLock()
_pm: pluggy.PluginManager | None = None
_loading = False
_plugins: dict[str, PluginInfo] = {}
_failed: list[PluginInfo] = []
_problems: list[str] = []
_settings: dict = {}


# ---------------------------------------------------------------------- settings
def _flag(var) -> bool:
    raw = os.environ.get(var, "")
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise PluginError(f"{var} must be 1 or 0 (or true/false, yes/no, on/off), not {raw!r}")


def _names(var) -> list | None:
    raw = os.environ.get(var, "")
    return [n.strip() for n in raw.split(",") if n.strip()] or None


def settings() -> dict:
    """The plugin environment variables as parsed now: ``strict``, ``autoload``, ``only``, ``prefer``."""
    return {"strict": _flag(STRICT_ENV), "autoload": not _flag(DISABLE_ENV), "only": _names(LOAD_ENV),
            "prefer": _names(PREFER_ENV)}


def registries() -> dict:
    """The five registries by kind: schedules, normalizers, losses, optimizers, datasets."""
    from . import datasets, losses, normalizers, optim, schedules
    return {"schedules": schedules.registry, "normalizers": normalizers.registry,
            "losses": losses.registry, "optimizers": optim.registry, "datasets": datasets.registry}


def _dist_text(dist, version) -> str:
    if not dist:
        return "no distribution"
    return f"distribution {dist}{' ' + version if version else ''}"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# ---------------------------------------------------------------------- one plugin
def _new_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager("polydl")
    pm.add_hookspecs(hookspecs.PolydlSpecs)
    return pm


def _check_hooks(pm, obj, info):
    """Unknown (misspelt) hooks, unmarked hook functions and wrappers, each with a clear error."""
    for hc in pm.get_hookcallers(obj) or ():
        if not hc.has_spec():
            raise PluginError(f"{info.describe()} implements unknown hook '{hc.name}'{did_you_mean(hc.name, HOOKS)} "
                              f"(polydl's hooks: {', '.join(HOOKS)})")
        for impl in hc.get_hookimpls():
            if impl.plugin is obj and (impl.hookwrapper or impl.wrapper):
                raise PluginError(f"{info.describe()}: '{hc.name}' must be a plain hook, not a wrapper")
    for attr in dir(obj):
        if not attr.startswith("polydl_"):
            continue
        value = getattr(obj, attr, None)
        if inspect.isroutine(value) and pm.parse_hookimpl_opts(obj, attr) is None:
            raise PluginError(f"{info.describe()} defines {attr}() without the @polydl.hookimpl marker, "
                              "so polydl would never call it")


def _collect(pm, plugin, info) -> list[_Pending]:
    """Register ``obj`` with the plugin manager and call its hooks with a collecting ``register``.

    Names and objects are validated here; clashes are checked when the collected names are added."""
    if inspect.isclass(plugin):
        raise PluginError(f"{info.describe()}: the entry point names the class {plugin.__name__}; "
                          "name a module or an instance")
    try:
        pm.register(plugin, name=info.name)
    except pluggy.PluginValidationError as exc:
        _forget(pm, plugin)
        raise PluginError(f"{info.describe()}: {' '.join(str(exc).split())}") from exc
    except ValueError as exc:
        other = _plugins.get(info.name)
        if other is not None:
            raise PluginError(f"{info.describe()}: the plugin name '{info.name}' is already taken by "
                              f"{other.describe()}") from exc
        raise PluginError(f"{info.describe()}: {_one_line(exc)}") from exc
    try:
        _check_hooks(pm, plugin, info)
        regs = registries()
        pending: list[_Pending] = []
        for hc in pm.get_hookcallers(plugin) or ():
            kind = HOOKS[hc.name]
            info.hooks.append(hc.name)
            reg = regs[kind]

            def register(name, obj, *, override=False, _reg=reg, _kind=kind):
                if not isinstance(override, bool):
                    raise RegistrationError(f"plugin '{info.name}': override must be True or False, "
                                            f"not {override!r}")
                _reg.check_name(name, info.name)
                _reg.validate(name, obj, info.name)
                pending.append(_Pending(_kind, name, obj, override))

            for impl in hc.get_hookimpls():
                if impl.plugin is not plugin:
                    continue
                args = {"register": register}
                try:
                    impl.function(*[args[a] for a in impl.argnames])
                except RegistrationError as exc:
                    raise PluginError(str(exc)) from exc
                except KeyboardInterrupt:
                    raise
                except BaseException as exc:  # SystemExit too: a plugin cannot end the command
                    raise PluginError(f"{info.describe()}: {hc.name} raised {_one_line(exc)}") from exc
        info.hooks.sort()
        return pending
    except BaseException:
        _forget(pm, plugin)
        raise


@contextlib.contextmanager
def _validation_guard():
    """Validators build and run probe objects (with gradients on, even inside ``no_grad``); they
    must not move ``polydl.random``'s state, or a seeded run would depend on when plugins loaded."""
    from . import random as _random
    from .tensor import enable_grad
    with _random.preserved(), enable_grad():
        yield


def _forget(pm, obj):
    try:
        if pm.is_registered(obj):
            pm.unregister(obj)
    except Exception:  # pragma: no cover - pluggy keeps partial state on odd objects
        pass


def _check_twice(info, pending):
    """A plugin that registers a name twice without ``override=True`` is broken."""
    regs = registries()
    seen = set()
    for p in pending:
        if (p.kind, p.name) in seen and not p.override:
            raise PluginError(f"plugin '{info.name}' registered the {regs[p.kind].singular} '{p.name}' twice")
        seen.add((p.kind, p.name))


def _check_clashes(info, pending):
    """Each plain name of a plugin registered at run time must be free: all of them, or none."""
    _check_twice(info, pending)
    regs = registries()
    for p in pending:
        try:
            regs[p.kind].check_clash(p.name, info.name, p.override)
        except RegistrationError as exc:
            raise PluginError(str(exc)) from exc


def _add(info, pending, override: bool):
    """Add the (non-)override names of one plugin, clashing or not (the registry keeps every
    plugin's entry and chooses the one that answers the name)."""
    regs = registries()
    for p in pending:
        if p.override != override:
            continue
        regs[p.kind].add(p.name, p.obj, info.name, info.distribution, info.version, override=override)
        names = info.registered.setdefault(p.kind, [])
        if p.name not in names:
            names.append(p.name)
        if override and len(regs[p.kind].candidates(p.name)) > 1:
            info.overrides.setdefault(p.kind, []).append(p.name)


def _refresh(info):
    """``shadowed`` (the names another plugin answers instead) and ``parameters`` of a plugin."""
    info.shadowed, info.parameters = {}, {}
    for kind, names in info.registered.items():
        reg = registries()[kind]
        lead, passed = SUPPLIED[kind]
        for name in names:
            winner = reg.entry(name) if reg.holds(name) else None
            if winner is not None and winner.plugin != info.name:
                info.shadowed.setdefault(kind, {})[name] = winner.plugin
            if any(e.plugin == info.name for e in reg.candidates(name)):
                params = [p for p in reg.parameters(f"{info.name}{SEPARATOR}{name}", skip=lead) if p not in passed]
                info.parameters.setdefault(kind, {})[name] = params


def _clash_message(reg, name, winner, loser) -> str:
    """The warning for a plain name that two plugins register: who keeps it, and how to choose the other."""
    w, lo = _plugins.get(winner.plugin), _plugins.get(loser.plugin)
    w_text = w.describe() if w else f"plugin '{winner.plugin}'"
    l_text = lo.describe() if lo else f"plugin '{loser.plugin}'"
    pick = loser.qualified
    return (f"{reg.singular} '{name}' of {l_text} is not used: {w_text} registers it too and keeps it (it loads "
            f"first); the other names of plugin '{loser.plugin}' are loaded. To use the {reg.singular} of plugin "
            f"'{loser.plugin}', name it {pick} (--{reg.singular} {pick}), or set {PREFER_ENV}={loser.plugin} to "
            "decide its clashes in its favour")


def _clashes(strict, prefer) -> None:
    """A warning (an error when strict) for each name two plugins register without an override,
    unless the preference list decides it."""
    for reg in registries().values():
        for name in reg.names():
            cands = reg.candidates(name)
            winner = reg.entry(name)
            if len(cands) < 2 or any(e.override for e in cands):
                continue
            if any(winner.belongs_to(p) for p in prefer or ()):
                continue
            for loser in cands:
                if loser is not winner:
                    message = _clash_message(reg, name, winner, loser)
                    if strict:
                        raise PluginError(message)
                    _problems.append(message)
                    warnings.warn(message, PluginWarning, stacklevel=4)


def _check_preferred(prefer, strict) -> None:
    """A name in POLYDL_PREFER_PLUGINS that matches no loaded plugin is a warning (an error when strict)."""
    loaded = {norm(k) for p in _plugins.values() for k in (p.name, p.distribution) if k} | {"polydl"}
    for name in prefer or ():
        if norm(name) not in loaded:
            msg = (f"{PREFER_ENV} names '{name}', but no loaded polydl plugin has that entry-point or distribution "
                   f"name (loaded: {', '.join(p.name for p in _plugins.values() if p.source != 'builtin') or 'none'}"
                   "; polydl: the built-ins)")
            if strict:
                raise PluginError(msg)
            _problems.append(msg)
            warnings.warn(msg, PluginWarning, stacklevel=4)


def _fail(info, message, strict):
    info.error = message
    if strict:
        raise PluginError(message)
    _failed.append(info)
    _problems.append(message)
    warnings.warn(message, PluginWarning, stacklevel=4)


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


def _load_all():
    global _pm
    from . import __version__

    conf = settings()
    _settings.clear()
    _settings.update(conf)
    strict = conf["strict"]
    for reg in registries().values():
        reg.clear()
        reg.set_preference(conf["prefer"] or ())
    _plugins.clear()
    _failed.clear()
    _problems.clear()
    pm = _new_manager()
    loaded: list[tuple[PluginInfo, list[_Pending]]] = []
    for modname in BUILTIN_MODULES:  # a failure here is a bug in polydl: always an error
        info = PluginInfo(modname, "builtin", modname, "polydl", __version__)
        loaded.append((info, _collect(pm, importlib.import_module(modname), info)))
    if conf["autoload"]:
        eps = _entry_points()
        only = conf["only"]
        if only is not None:
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
                msg = (f"{LOAD_ENV} names '{wanted[key]}', but no installed polydl plugin has that entry-point "
                       f"or distribution name (installed: {', '.join(available) or 'none'})")
                if strict:
                    raise PluginError(msg)
                _problems.append(msg)
                warnings.warn(msg, PluginWarning, stacklevel=3)
            eps = keep
        taken = {info.name for info, _ in loaded}
        for ep in eps:
            dist, version = _ep_dist(ep)
            info = PluginInfo(ep.name, "entry point", ep.value, dist, version)
            if ep.name in taken:
                _fail(info, f"{info.describe()} was skipped: the plugin name '{ep.name}' is already used by "
                      "another plugin; rename the entry point", strict)
                continue
            try:
                obj = ep.load()
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # SystemExit in a plugin must not silence every command
                _fail(info, f"{info.describe()} failed to load ({ep.value}): {_one_line(exc)}", strict)
                continue
            try:
                pending = _collect(pm, obj, info)
            except PluginError as exc:
                _fail(info, _skipped(info, exc), strict)
                continue
            taken.add(ep.name)
            loaded.append((info, pending))
    ok = []
    for info, pending in loaded:  # names without override first, in load order ...
        try:
            _check_twice(info, pending)
        except PluginError as exc:
            if info.source == "builtin":
                raise
            _forget(pm, pm.get_plugin(info.name))
            _fail(info, _skipped(info, exc), strict)
            continue
        _add(info, pending, override=False)
        ok.append((info, pending))
    for info, pending in ok:  # ... then the deliberate overrides
        _add(info, pending, override=True)
        _plugins[info.name] = info
    _check_preferred(conf["prefer"], strict)
    _clashes(strict, conf["prefer"])
    pm.check_pending()
    _pm = pm


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


# ---------------------------------------------------------------------- public API
def load() -> None:
    """Load the built-ins and the installed plugins. Only the first call does anything; it is
    thread-safe, and registries call it themselves on first use."""
    global _loading
    if _pm is not None:
        return
    with _lock:
        if _pm is not None or _loading:  # loaded meanwhile, or a re-entrant call while loading
            return
        _loading = True
        try:
            _load_all()
        except BaseException:
            for reg in registries().values():
                reg.clear()
            _plugins.clear()
            raise
        finally:
            _loading = False


def is_loaded() -> bool:
    """Whether plugins have been loaded in this process (``import polydl`` alone does not)."""
    return _pm is not None


def reset() -> None:
    """Forget every plugin and registration; the next use loads again (re-reading the
    environment variables and entry points). Meant for tests."""
    global _pm
    with _lock:
        _pm = None
        for reg in registries().values():
            reg.clear()
        _plugins.clear()
        _failed.clear()
        _problems.clear()


def plugin_manager() -> pluggy.PluginManager:
    """The ``pluggy.PluginManager`` (project ``polydl``) holding every loaded plugin."""
    load()
    return _pm


def plugins() -> list[PluginInfo]:
    """The loaded plugins in load order: built-ins, then entry points, then runtime ones; each
    with the names another plugin answers instead (``shadowed``) and its ``parameters``."""
    load()
    for info in _plugins.values():
        _refresh(info)
    return list(_plugins.values())


def failed() -> list[PluginInfo]:
    """The plugins that were skipped, each with its ``error``."""
    load()
    return list(_failed)


def problems() -> list[str]:
    """Every warning loading gave (broken plugins, unknown names in POLYDL_LOAD_PLUGINS)."""
    load()
    return list(_problems)


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
    with _lock:
        if name in _plugins:
            raise PluginError(f"{info.describe()}: the plugin name '{name}' is already taken by "
                              f"{_plugins[name].describe()}")
        pending = _collect(_pm, obj, info)
        try:
            _check_clashes(info, pending)
        except PluginError:
            _forget(_pm, obj)
            raise
        _add(info, pending, override=False)
        _add(info, pending, override=True)
        _plugins[name] = info
    return info


def unregister_plugin(name: str) -> PluginInfo:
    """Remove a loaded plugin and every name it registered (overridden names come back)."""
    load()
    with _lock:
        info = _plugins.pop(name, None)
        if info is None:
            raise PluginError(f"no plugin named '{name}' is loaded{did_you_mean(name, _plugins)} "
                              f"(loaded: {', '.join(_plugins)})")
        for reg in registries().values():
            reg.remove_plugin(name)
        obj = _pm.get_plugin(name)
        if obj is not None:
            _pm.unregister(obj)
        return info


def _snapshot():
    """Registries, plugin list and plugin manager as they are now (for ``_restore``)."""
    with _lock:
        load()
        return ({k: r.snapshot() for k, r in registries().items()}, dict(_plugins),
                [(n, obj) for n, obj in _pm.list_name_plugin() if obj is not None], _pm)


def _restore(snap):
    regs, plugs, named, pm = snap
    with _lock:
        if _pm is not pm:  # reset() in between: the next use loads afresh anyway
            return
        for kind, reg in registries().items():
            reg.restore(regs[kind])
        _plugins.clear()
        _plugins.update(plugs)
        wanted = dict(named)
        for n, obj in list(_pm.list_name_plugin()):
            if obj is not None and wanted.get(n) is not obj:
                _pm.unregister(obj)
        for n, obj in named:
            if _pm.get_plugin(n) is None:
                _pm.register(obj, name=n)


def blame(exc: BaseException):
    """``(kind, Entry)`` of the plugin component whose code raised ``exc`` (the innermost frame of
    its traceback that lies in a module of a non-built-in registry entry), or None."""
    modules = {}
    for kind, reg in registries().items():
        for entry in reg.all_entries():
            module = getattr(entry.obj, "__module__", None)
            if module and not entry.builtin:
                modules.setdefault(module, (reg.singular, entry))
    found = None
    tb = exc.__traceback__
    while tb is not None:
        hit = modules.get(tb.tb_frame.f_globals.get("__name__"))
        if hit is not None:
            found = hit
        tb = tb.tb_next
    return found


def report() -> dict:
    """Everything ``polydl plugins --json`` prints: settings, loaded and failed plugins, warnings."""
    from . import __version__
    load()
    return {
        "polydl_version": __version__,
        "entry_point_group": ENTRY_POINT_GROUP,
        "settings": dict(_settings),
        "plugins": [p.as_dict() for p in plugins()],
        "failed": [p.as_dict() for p in _failed],
        "warnings": list(_problems),
    }


Registry.connect(load, _validation_guard)
