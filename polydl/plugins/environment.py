"""The plugin environment variables, read when loading happens:

``POLYDL_STRICT_PLUGINS=1``          a broken plugin or a clash is an error (``PluginError``), not a warning
``POLYDL_LOAD_PLUGINS=a,b``          load only these entry points (entry-point or distribution names)
``POLYDL_DISABLE_PLUGIN_AUTOLOAD=1`` load no entry points, only the built-ins
``POLYDL_PREFER_PLUGINS=a,b``        a name that several plugins register goes to the first of these
                                     (entry-point or distribution names; ``polydl``: the built-ins)
                                     that registers it: clashes and overrides, without a warning
"""
from __future__ import annotations

import os

from .info import PluginError

__all__ = ["STRICT_ENV", "LOAD_ENV", "DISABLE_ENV", "PREFER_ENV", "settings"]

STRICT_ENV = "POLYDL_STRICT_PLUGINS"
LOAD_ENV = "POLYDL_LOAD_PLUGINS"
DISABLE_ENV = "POLYDL_DISABLE_PLUGIN_AUTOLOAD"
PREFER_ENV = "POLYDL_PREFER_PLUGINS"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


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
