"""Clash warnings: a plain name that two plugins register without an override stays with the
plugin that loaded first, and the other plugin's author and user are told who keeps it and how
to choose theirs (``plugin:name`` or ``POLYDL_PREFER_PLUGINS``)."""
from __future__ import annotations

from ..registry import norm
from .environment import PREFER_ENV
from .info import registries
from .state import STATE

__all__ = ["clash_message", "warn_clashes", "check_preferred"]


def clash_message(reg, name, winner, loser) -> str:
    """The warning for a plain name that two plugins register: who keeps it, and how to choose the other."""
    w, lo = STATE.plugins.get(winner.plugin), STATE.plugins.get(loser.plugin)
    w_text = w.describe() if w else f"plugin '{winner.plugin}'"
    l_text = lo.describe() if lo else f"plugin '{loser.plugin}'"
    pick = loser.qualified
    return (f"{reg.singular} '{name}' of {l_text} is not used: {w_text} registers it too and keeps it (it loads "
            f"first); the other names of plugin '{loser.plugin}' are loaded. To use the {reg.singular} of plugin "
            f"'{loser.plugin}', name it {pick} (--{reg.singular} {pick}), or set {PREFER_ENV}={loser.plugin} to "
            "decide its clashes in its favour")


def warn_clashes(strict, prefer) -> None:
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
                    STATE.problem(clash_message(reg, name, winner, loser), strict)


def check_preferred(prefer, strict) -> None:
    """A name in POLYDL_PREFER_PLUGINS that matches no loaded plugin is a warning (an error when strict)."""
    loaded = {norm(k) for p in STATE.plugins.values() for k in (p.name, p.distribution) if k} | {"polydl"}
    for name in prefer or ():
        if norm(name) not in loaded:
            others = ", ".join(p.name for p in STATE.plugins.values() if p.source != "builtin") or "none"
            STATE.problem(f"{PREFER_ENV} names '{name}', but no loaded polydl plugin has that entry-point or "
                          f"distribution name (loaded: {others}; polydl: the built-ins)", strict)
