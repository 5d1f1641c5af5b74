"""Named registries of schedules, normalizers, losses, optimizers and datasets.

Built-ins and third-party plugins fill them through the same hooks (``polydl.hookspecs``);
each entry remembers which plugin, distribution and version registered it. ``Registry.build``
checks parameter names against the factory's signature.

This module is a leaf: it imports nothing of polydl but ``polydl.checks``. The plugin loader
(``polydl.plugins``) connects itself through :meth:`Registry.connect`: a registry then loads the
plugins on first use, and runs validators inside the loader's guard.
"""
from __future__ import annotations

import contextlib
import inspect
import re
from dataclasses import dataclass, field

from .checks import did_you_mean

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

    @property
    def builtin(self) -> bool:
        """Registered by polydl itself (its default plugins ``polydl.schedules``, ...)."""
        return self.plugin == "polydl" or self.plugin.startswith("polydl.")


class Registry:
    """``register(name, obj)``, ``lookup(name)``, ``build(name, **params)``, ``names()``."""

    #: called before every query (the plugin loader's ``load``; it returns at once once loaded)
    _loader = None
    #: a context manager that every validator runs inside (the loader keeps RNG state there)
    _guard = contextlib.nullcontext

    def __init__(self, kind: str, validate=None, singular: str | None = None, internal: tuple = ()):
        self.kind = kind
        self.singular = singular or kind.rstrip("s")
        self._validate = validate
        self._entries: dict[str, Entry] = {}
        #: keyword parameters polydl passes itself (a population's size): not listed as the user's
        self.internal = tuple(internal)

    @classmethod
    def connect(cls, loader, guard=None) -> None:
        """Make every registry call ``loader()`` before it answers, and run validators inside
        ``guard()`` (the plugin loader connects itself when it is imported)."""
        cls._loader = staticmethod(loader)
        if guard is not None:
            cls._guard = staticmethod(guard)

    def _load(self):
        if self._loader is not None:
            self._loader()

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
            with self._guard():
                self._validate(name, obj)
        except RegistrationError as exc:
            raise RegistrationError(f"plugin '{plugin}': {exc}") from exc
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # SystemExit in a validator's probe too
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
        self.add(name, obj, plugin, distribution, version)

    def add(self, name, obj, plugin="polydl", distribution=None, version=None) -> Entry:
        """Insert an already validated ``obj`` as ``name`` (what the plugin loader does once a
        plugin's names are checked); an entry it replaces is kept as ``previous``."""
        existing = self._entries.get(name)
        entry = Entry(name, obj, plugin, distribution, version)
        if existing is not None:
            entry.overridden = existing.overridden + [existing.plugin]
            entry.previous = existing
        self._entries[name] = entry
        return entry

    def holds(self, name) -> bool:
        """Whether ``name`` is registered now (without loading plugins first)."""
        return name in self._entries

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
        return f"unknown {self.singular} '{name}'{did_you_mean(name, names)} (valid: {', '.join(names)})"

    def lookup(self, name):
        """The registered object itself (a factory or class)."""
        return self.entry(name).obj

    def parameters(self, name, skip: int = 0, internal: bool = False) -> list[str]:
        """The names of the parameters the factory ``name`` takes, less its first ``skip``
        (those polydl passes itself, such as ``num_features``) and, unless ``internal``, the
        registry's ``internal`` ones."""
        try:
            params = inspect.signature(self.lookup(name)).parameters.values()
        except (TypeError, ValueError):
            return []
        plain = [p for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        return [p.name for p in plain[skip:] if internal or p.name not in self.internal]

    def check_params(self, name, *args, **params) -> inspect.BoundArguments | None:
        """Bind ``(*args, **params)`` to the factory's signature; an unknown or missing parameter is
        a ``ValueError`` naming it and listing the ones the factory takes. None when the factory
        has no signature to check."""
        factory = self.lookup(name)
        try:
            sig = inspect.signature(factory)
        except (TypeError, ValueError):
            return None
        try:
            return sig.bind(*args, **params)
        except TypeError as exc:
            valid = self.parameters(name, skip=len(args))
            takes = f"(its parameters: {', '.join(valid) or 'none'})"
            takes_kw = any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values())
            bad = [k for k in params if k not in sig.parameters] if not takes_kw else []
            if bad:
                hint = did_you_mean(bad[0], valid) if len(bad) == 1 else ""
                raise ValueError(f"{self.singular} '{name}' has no parameter {', '.join(map(repr, bad))}{hint} "
                                 f"{takes}") from None
            raise ValueError(f"{self.singular} '{name}': {exc} {takes}") from None

    def build(self, name, *args, **params):
        """``factory(*args, **params)`` after :meth:`check_params`; a ``TypeError`` the factory
        raises for a parameter's value (a string where it wants a number) becomes a ``ValueError``."""
        self.check_params(name, *args, **params)
        try:
            return self.lookup(name)(*args, **params)
        except TypeError as exc:
            given = ", ".join(f"{k}={v!r}" for k, v in params.items())
            raise ValueError(f"{self.singular} '{name}' cannot be built with {given or 'its defaults'}: "
                             f"{exc}") from None

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


def _dist(entry) -> str:
    if entry.distribution:
        return f" (distribution {entry.distribution}{' ' + entry.version if entry.version else ''})"
    return ""
