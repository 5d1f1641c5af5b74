"""One plugin: register it with pluggy, check its hooks, and call them with a collecting
``register`` that validates each object (probing it) and records the names, which the loader
adds to the registries afterwards (:func:`add`)."""
from __future__ import annotations

import contextlib
import inspect
from dataclasses import dataclass

import pluggy

from .. import hookspecs
from ..checks import did_you_mean
from ..registry import RegistrationError
from .info import HOOKS, PluginError, one_line, registries
from .state import STATE

__all__ = ["Pending", "new_manager", "collect", "forget", "validation_guard", "check_twice", "check_clashes", "add"]


@dataclass
class Pending:
    """A name a plugin's hook registered, not yet added to its registry."""

    kind: str
    name: str
    obj: object
    override: bool


def new_manager() -> pluggy.PluginManager:
    """A ``pluggy.PluginManager`` (project ``polydl``) with polydl's hookspecs."""
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


def _register_with(pm, plugin, info) -> None:
    """``pm.register`` with its failures as one-line ``PluginError``s naming the plugin."""
    if inspect.isclass(plugin):
        raise PluginError(f"{info.describe()}: the entry point names the class {plugin.__name__}; "
                          "name a module or an instance")
    try:
        pm.register(plugin, name=info.name)
    except pluggy.PluginValidationError as exc:
        forget(pm, plugin)
        raise PluginError(f"{info.describe()}: {' '.join(str(exc).split())}") from exc
    except ValueError as exc:
        other = STATE.plugins.get(info.name)
        if other is not None:
            raise PluginError(f"{info.describe()}: the plugin name '{info.name}' is already taken by "
                              f"{other.describe()}") from exc
        raise PluginError(f"{info.describe()}: {one_line(exc)}") from exc


def _call_hook(hc, plugin, info, reg, kind, pending) -> None:
    """Call ``plugin``'s implementation of hook ``hc`` with a ``register`` that validates each
    object for registry ``reg`` and appends it to ``pending``."""

    def register(name, obj, *, override=False):
        if not isinstance(override, bool):
            raise RegistrationError(f"plugin '{info.name}': override must be True or False, not {override!r}")
        reg.check_name(name, info.name)
        reg.validate(name, obj, info.name)
        pending.append(Pending(kind, name, obj, override))

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
            raise PluginError(f"{info.describe()}: {hc.name} raised {one_line(exc)}") from exc


def collect(pm, plugin, info) -> list[Pending]:
    """Register ``plugin`` with the plugin manager and call its hooks; the names it registers,
    each validated. Clashes are checked when the names are added. On any failure the plugin is
    taken out of the manager again."""
    _register_with(pm, plugin, info)
    try:
        _check_hooks(pm, plugin, info)
        regs = registries()
        pending: list[Pending] = []
        for hc in pm.get_hookcallers(plugin) or ():
            kind = HOOKS[hc.name]
            info.hooks.append(hc.name)
            _call_hook(hc, plugin, info, regs[kind], kind, pending)
        info.hooks.sort()
        return pending
    except BaseException:
        forget(pm, plugin)
        raise


@contextlib.contextmanager
def validation_guard():
    """Validators build and run probe objects (with gradients on, even inside ``no_grad``); they
    must not move ``polydl.random``'s state, or a seeded run would depend on when plugins loaded."""
    from .. import random as _random
    from ..tensor import enable_grad
    with _random.preserved(), enable_grad():
        yield


def forget(pm, obj) -> None:
    """Take ``obj`` out of the plugin manager, if it is there."""
    try:
        if pm.is_registered(obj):
            pm.unregister(obj)
    except Exception:  # pragma: no cover - pluggy keeps partial state on odd objects
        pass


def check_twice(info, pending) -> None:
    """A plugin that registers a name twice without ``override=True`` is broken."""
    regs = registries()
    seen = set()
    for p in pending:
        if (p.kind, p.name) in seen and not p.override:
            raise PluginError(f"plugin '{info.name}' registered the {regs[p.kind].singular} '{p.name}' twice")
        seen.add((p.kind, p.name))


def check_clashes(info, pending) -> None:
    """Each plain name of a plugin registered at run time must be free: all of them, or none."""
    check_twice(info, pending)
    regs = registries()
    for p in pending:
        try:
            regs[p.kind].check_clash(p.name, info.name, p.override)
        except RegistrationError as exc:
            raise PluginError(str(exc)) from exc


def add(info, pending, override: bool) -> None:
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
