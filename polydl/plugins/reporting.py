"""Reports on the loaded plugins: the ``polydl plugins`` listing data (:func:`report`), each
plugin's shadowed names and parameters (:func:`plugins`), the skipped plugins and warnings, and
:func:`blame`, which names the plugin component whose code raised an error."""
from __future__ import annotations

from ..registry import SEPARATOR
from .info import ENTRY_POINT_GROUP, SUPPLIED, PluginInfo, registries
from .loader import load
from .state import STATE

__all__ = ["plugins", "failed", "problems", "report", "blame"]


def _refresh(info: PluginInfo) -> None:
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


def plugins() -> list[PluginInfo]:
    """The loaded plugins in load order: built-ins, then entry points, then runtime ones; each
    with the names another plugin answers instead (``shadowed``) and its ``parameters``."""
    load()
    for info in STATE.plugins.values():
        _refresh(info)
    return list(STATE.plugins.values())


def failed() -> list[PluginInfo]:
    """The plugins that were skipped, each with its ``error``."""
    load()
    return list(STATE.failed)


def problems() -> list[str]:
    """Every warning loading gave (broken plugins, unknown names in POLYDL_LOAD_PLUGINS)."""
    load()
    return list(STATE.problems)


def report() -> dict:
    """Everything ``polydl plugins --json`` prints: settings, loaded and failed plugins, warnings."""
    from .. import __version__
    load()
    return {
        "polydl_version": __version__,
        "entry_point_group": ENTRY_POINT_GROUP,
        "settings": dict(STATE.settings),
        "plugins": [p.as_dict() for p in plugins()],
        "failed": [p.as_dict() for p in STATE.failed],
        "warnings": list(STATE.problems),
    }


def blame(exc: BaseException):
    """``(kind, Entry)`` of the plugin component whose code raised ``exc`` (the innermost frame of
    its traceback that lies in a module of a non-built-in registry entry), or None."""
    modules = {}
    for reg in registries().values():
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
