"""Named registries of schedules, normalizers, losses, optimizers and datasets.

Built-ins and third-party plugins fill them through the same hooks (``polydl.hookspecs``);
each entry remembers which plugin, distribution and version registered it.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field


class UnknownNameError(KeyError, ValueError):
    """A name that no plugin registered; the message lists the valid names."""

    def __str__(self):
        return str(self.args[0]) if self.args else ""


class RegistrationError(ValueError):
    """A plugin registered something invalid, or a name another plugin already holds."""


@dataclass
class Entry:
    name: str
    obj: object
    plugin: str = "polydl"
    distribution: str | None = None
    version: str | None = None
    overridden: list = field(default_factory=list)


class Registry:
    """``register(name, obj)``, ``get(name, **params)``, ``names()``."""

    def __init__(self, kind: str, validate=None, singular: str | None = None):
        self.kind = kind
        self.singular = singular or kind.rstrip("s")
        self._validate = validate
        self._entries: dict[str, Entry] = {}

    def _load(self):
        from . import plugins
        plugins.load()

    def register(self, name, obj, *, override=False, plugin="polydl", distribution=None, version=None):
        if not isinstance(name, str) or not name or not name.replace("_", "").replace("-", "").isalnum():
            raise RegistrationError(
                f"{self.singular} name must be a non-empty word of letters, digits, '_' or '-', not {name!r}")
        existing = self._entries.get(name)
        if existing is not None and not override:
            raise RegistrationError(
                f"{self.singular} '{name}' registered by plugin '{plugin}' is already registered by plugin "
                f"'{existing.plugin}'; rename it, or pass override=True to replace it deliberately")
        if self._validate is not None:
            try:
                self._validate(name, obj)
            except RegistrationError:
                raise
            except Exception as exc:
                raise RegistrationError(f"plugin '{plugin}' registered an invalid {self.singular} '{name}': {exc}") from exc
        entry = Entry(name, obj, plugin, distribution, version)
        if existing is not None:
            entry.overridden = existing.overridden + [existing.plugin]
        self._entries[name] = entry

    def unregister(self, name):
        self._entries.pop(name, None)

    def entry(self, name) -> Entry:
        self._load()
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self.unknown_message(name)) from None

    def unknown_message(self, name) -> str:
        names = sorted(self._entries)
        close = difflib.get_close_matches(str(name), names, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        return f"unknown {self.singular} '{name}'{hint} (valid: {', '.join(names)})"

    def lookup(self, name):
        """The registered object itself (a factory or class)."""
        return self.entry(name).obj

    def get(self, name, *args, **params):
        """Build the named object: ``obj(*args, **params)``."""
        factory = self.lookup(name)
        return factory(*args, **params)

    def names(self) -> list[str]:
        self._load()
        return sorted(self._entries)

    def entries(self) -> list[Entry]:
        self._load()
        return [self._entries[n] for n in sorted(self._entries)]

    def __contains__(self, name):
        self._load()
        return name in self._entries

    def __iter__(self):
        return iter(self.names())
