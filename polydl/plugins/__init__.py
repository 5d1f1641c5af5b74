"""Plugins: the built-ins and every installed ``polydl`` entry point, loaded once per process.

Built-in schedules, normalizers, losses, optimizers, datasets and models are registered through the same
hooks (``polydl.hookspecs``) as third-party plugins (they are default plugins, as pytest's are),
and before them, so a plugin's component may build on a built-in one. Third-party plugins are the
entry points of the group ``polydl``::

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
The environment variables (``POLYDL_STRICT_PLUGINS``, ``POLYDL_LOAD_PLUGINS``,
``POLYDL_DISABLE_PLUGIN_AUTOLOAD``, ``POLYDL_PREFER_PLUGINS``) are described in
:mod:`polydl.plugins.environment`.

Modules: ``info`` (hooks, kinds, :class:`PluginInfo`, errors), ``environment`` (the
environment variables), ``state`` (what loading found), ``collect`` (one plugin's hooks,
validated), ``loader`` (loading and runtime registration), ``clashes`` (clash warnings),
``reporting`` (the ``polydl plugins`` data and :func:`blame`).
"""
from __future__ import annotations

from .environment import DISABLE_ENV, LOAD_ENV, PREFER_ENV, STRICT_ENV, settings
from .info import (
    BUILTIN_MODULES,
    ENTRY_POINT_GROUP,
    HOOKS,
    SUPPLIED,
    PluginError,
    PluginInfo,
    PluginWarning,
    registries,
)
from .loader import _restore as _restore  # polydl.testing.registered_plugin restores through these
from .loader import _snapshot as _snapshot
from .loader import (
    is_loaded,
    load,
    plugin_manager,
    register_plugin,
    reset,
    unregister_plugin,
)
from .reporting import blame, failed, plugins, problems, report

__all__ = ["load", "is_loaded", "reset", "plugin_manager", "plugins", "failed", "problems",
           "register_plugin", "unregister_plugin", "report", "settings", "registries", "blame",
           "PluginInfo", "PluginError", "PluginWarning", "ENTRY_POINT_GROUP", "HOOKS",
           "STRICT_ENV", "LOAD_ENV", "DISABLE_ENV", "PREFER_ENV", "SUPPLIED", "BUILTIN_MODULES"]
