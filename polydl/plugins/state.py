"""What loading found in this process, shared by the loader and the reports."""
from __future__ import annotations

import threading
import warnings

import pluggy

from .info import PluginError, PluginInfo, PluginWarning

__all__ = ["STATE"]


class LoadState:
    """The plugin manager (None until loaded), the loaded and the skipped plugins, the warnings
    given and the settings loading read; ``lock`` guards all of them."""

    def __init__(self):
        self.lock = threading.RLock()
        self.pm: pluggy.PluginManager | None = None
        self.loading = False
        self.plugins: dict[str, PluginInfo] = {}
        self.failed: list[PluginInfo] = []
        self.problems: list[str] = []
        self.settings: dict = {}

    def clear(self) -> None:
        """Forget the plugins, the skipped ones and the warnings (not the manager)."""
        self.plugins.clear()
        self.failed.clear()
        self.problems.clear()

    def problem(self, message: str, strict: bool, stacklevel: int = 4) -> None:
        """A ``PluginError`` when ``strict``; else a recorded ``PluginWarning``."""
        if strict:
            raise PluginError(message)
        self.problems.append(message)
        warnings.warn(message, PluginWarning, stacklevel=stacklevel + 1)


STATE = LoadState()
