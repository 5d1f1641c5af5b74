"""Plugin loading: the built-ins and every installed ``polydl`` entry point, once per process.

Built-in schedules, normalizers, losses, optimizers and datasets are registered through the same
hooks as third-party plugins (they are default plugins, as pytest's are).
"""
from __future__ import annotations

import threading

import pluggy

from . import hookspecs

HOOKS = {
    "polydl_register_schedules": "schedules",
    "polydl_register_normalizers": "normalizers",
    "polydl_register_losses": "losses",
    "polydl_register_optimizers": "optimizers",
    "polydl_register_datasets": "datasets",
}
BUILTIN_MODULES = ("polydl.schedules", "polydl.normalizers", "polydl.losses", "polydl.optim",
                   "polydl.datasets")

_lock = threading.RLock()
_pm: pluggy.PluginManager | None = None
_loading = False


def registries():
    from . import datasets, losses, normalizers, optim, schedules
    return {"schedules": schedules.registry, "normalizers": normalizers.registry,
            "losses": losses.registry, "optimizers": optim.registry, "datasets": datasets.registry}


def plugin_manager() -> pluggy.PluginManager:
    load()
    return _pm


def _fill(pm, plugin, name, dist=None, version=None):
    """Call each register hook of one plugin with a ``register`` bound to that plugin."""
    regs = registries()
    for hook_name, kind in HOOKS.items():
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            if impl.plugin is not plugin:
                continue

            def register(reg_name, obj, *, override=False, _reg=regs[kind]):
                _reg.register(reg_name, obj, override=override, plugin=name, distribution=dist, version=version)

            impl.function(register=register)


def load() -> None:
    """Load the built-ins and the installed plugins (only the first call does anything)."""
    global _pm, _loading
    if _pm is not None or _loading:
        return
    with _lock:
        if _pm is not None or _loading:
            return
        _loading = True
        try:
            import importlib

            from . import __version__

            pm = pluggy.PluginManager("polydl")
            pm.add_hookspecs(hookspecs.PolydlSpecs)
            for modname in BUILTIN_MODULES:
                mod = importlib.import_module(modname)
                pm.register(mod, name=modname)
                _fill(pm, mod, modname, "polydl", __version__)
            _pm = pm
        finally:
            _loading = False
