"""Named registries of schedules, normalizers, losses, optimizers and datasets.

Built-ins and third-party plugins fill them through the same hooks (``polydl.hookspecs``);
each entry remembers which plugin, distribution and version registered it.
"""
from __future__ import annotations

import difflib
import re
from contextlib import contextmanager
from dataclasses import dataclass, field

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


class UnknownNameError(KeyError, ValueError):
    """A name that no plugin registered; the message lists the valid names."""

    def __str__(self):
        return str(self.args[0]) if self.args else ""


class RegistrationError(ValueError):
    """A plugin registered something invalid, or a name another plugin already holds."""


@dataclass
class Entry:
    """One registered name: the object, and the plugin (distribution, version) that registered it.

    ``overridden`` lists the plugins whose entries this one replaced with ``override=True``."""

    name: str
    obj: object
    plugin: str = "polydl"
    distribution: str | None = None
    version: str | None = None
    overridden: list = field(default_factory=list)
    previous: "Entry | None" = field(default=None, repr=False, compare=False)


class Registry:
    """``register(name, obj)``, ``lookup(name)``, ``get(name, **params)``, ``names()``."""

    def __init__(self, kind: str, validate=None, singular: str | None = None):
        self.kind = kind
        self.singular = singular or kind.rstrip("s")
        self._validate = validate
        self._entries: dict[str, Entry] = {}

    def _load(self):
        from . import plugins
        plugins.load()

    # ------------------------------------------------------------------ checks
    def check_name(self, name, plugin="polydl"):
        if not isinstance(name, str) or not _NAME.match(name):
            raise RegistrationError(
                f"plugin '{plugin}' registered a {self.singular} named {name!r}: a name must be a word of "
                "letters, digits, '_' or '-' that starts with a letter or digit")

    def validate(self, name, obj, plugin="polydl"):
        """Run this kind's validator on ``obj``; any failure becomes one ``RegistrationError``."""
        if self._validate is None:
            return
        try:
            with _rng_preserved():
                self._validate(name, obj)
        except RegistrationError as exc:
            raise RegistrationError(f"plugin '{plugin}': {exc}") from exc
        except Exception as exc:
            raise RegistrationError(f"plugin '{plugin}' registered an invalid {self.singular} '{name}': "
                                    f"{type(exc).__name__}: {exc}") from exc

    def check_clash(self, name, plugin="polydl", override=False):
        existing = self._entries.get(name)
        if existing is None or override:
            return
        if existing.plugin == plugin:
            raise RegistrationError(f"plugin '{plugin}' registered the {self.singular} '{name}' twice")
        raise RegistrationError(
            f"{self.singular} '{name}' registered by plugin '{plugin}' is already registered by plugin "
            f"'{existing.plugin}'{_dist(existing)}; rename it, or pass override=True to replace it deliberately")

    # ------------------------------------------------------------------ changes
    def register(self, name, obj, *, override=False, plugin="polydl", distribution=None, version=None):
        """Add ``obj`` as ``name``, validated; a name held by another plugin needs ``override=True``.

        Plugins register through their hooks; calling this directly (after the plugins loaded,
        which it makes happen first) is for code that builds a registry by hand."""
        self._load()
        if not isinstance(override, bool):
            raise RegistrationError(f"override must be True or False, not {override!r}")
        self.check_name(name, plugin)
        self.check_clash(name, plugin, override)
        self.validate(name, obj, plugin)
        self._add(name, obj, plugin, distribution, version)

    def _add(self, name, obj, plugin, distribution=None, version=None):
        existing = self._entries.get(name)
        entry = Entry(name, obj, plugin, distribution, version)
        if existing is not None:
            entry.overridden = existing.overridden + [existing.plugin]
            entry.previous = existing
        self._entries[name] = entry

    def unregister(self, name):
        """Forget ``name`` (whatever it overrode is not restored; see ``remove_plugin``)."""
        self._entries.pop(name, None)

    def remove_plugin(self, plugin) -> list[str]:
        """Remove every entry of ``plugin``; a name it overrode goes back to the entry it replaced."""
        removed = []
        for name in list(self._entries):
            chain, e = [], self._entries[name]
            while e is not None:
                chain.append(e)
                e = e.previous
            kept = [e for e in chain if e.plugin != plugin]
            if len(kept) == len(chain):
                continue
            removed.append(name)
            rebuilt = None
            for e in reversed(kept):  # oldest first
                new = Entry(e.name, e.obj, e.plugin, e.distribution, e.version)
                if rebuilt is not None:
                    new.overridden = rebuilt.overridden + [rebuilt.plugin]
                    new.previous = rebuilt
                rebuilt = new
            if rebuilt is None:
                del self._entries[name]
            else:
                self._entries[name] = rebuilt
        return removed

    def clear(self):
        self._entries.clear()

    def snapshot(self) -> dict:
        return dict(self._entries)

    def restore(self, snapshot: dict):
        self._entries = dict(snapshot)

    # ------------------------------------------------------------------ queries
    def entry(self, name) -> Entry:
        self._load()
        try:
            return self._entries[name]
        except (KeyError, TypeError):
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

    def __repr__(self):
        return f"<Registry {self.kind}>"


@contextmanager
def _rng_preserved():
    """Validators build and run probe objects (with gradients on, even inside ``no_grad``); they
    must not move ``polydl.random``'s state, or a seeded run would depend on when plugins loaded."""
    from . import random as _random
    from .tensor import enable_grad
    seed, host = _random._SEED, _random._HOST
    state = host.bit_generator.state
    try:
        with enable_grad():
            yield
    finally:
        _random._SEED, _random._HOST = seed, host
        host.bit_generator.state = state


def _dist(entry) -> str:
    if entry.distribution:
        return f" (distribution {entry.distribution}{' ' + entry.version if entry.version else ''})"
    return ""
