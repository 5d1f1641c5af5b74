"""Named registries of schedules, normalizers, losses, optimizers and datasets.

Built-ins and third-party plugins fill them through the same hooks (``polydl.hookspecs``);
each entry remembers which plugin, distribution and version registered it.

Also the checks every part of polydl shares for names and parameters: ``did_you_mean`` for an
unknown name, ``check_number`` / ``check_whole`` for a parameter's value, and
``Registry.build``, which checks parameter names against the factory's signature.
"""
from __future__ import annotations

import difflib
import inspect
import math
import numbers
import re
from contextlib import contextmanager
from dataclasses import dataclass, field

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


# ---------------------------------------------------------------------- shared checks
def closest(name, choices, cutoff: float = 0.6) -> str | None:
    """The choice most similar to ``name`` (difflib ratio ≥ ``cutoff``), or None."""
    found = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=cutoff)
    return found[0] if found else None


def did_you_mean(name, choices) -> str:
    """``"; did you mean 'x'?"`` for the closest choice, or ``""`` when none is close."""
    best = closest(name, choices)
    return f"; did you mean '{best}'?" if best is not None else ""


def _bound(value, low, high, low_open, high_open) -> str | None:
    """The violated range as text (``">= 0"``, ``"in (0, 1]"``), or None when ``value`` is in it."""
    below = low is not None and (value <= low if low_open else value < low)
    above = high is not None and (value >= high if high_open else value > high)
    if not (below or above):
        return None
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low}"
    return f"{'<' if high_open else '<='} {high}"


def check_number(label: str, value, low=None, high=None, *, low_open=False, high_open=False) -> float:
    """``value`` as a float if it is a finite real number within the bounds; else ``ValueError``
    ``"<label> must be a finite number"`` or ``"<label> must be >= low"`` (``in [low, high)``, ...)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{label} must be a finite number, not {value!r}")
    value = float(value)
    rule = _bound(value, low, high, low_open, high_open)
    if rule is not None:
        raise ValueError(f"{label} must be {rule}, not {value:g}")
    return value


def check_whole(label: str, value, low=None, *, meaning: str = "", integral_floats=False) -> int:
    """``value`` as an int if it is a whole number ≥ ``low``; ``integral_floats`` also accepts
    ``10.0``. ``meaning`` is added to the message: ``"epochs must be >= 1 (<meaning>), not 0"``."""
    ok = isinstance(value, numbers.Integral) or (integral_floats and isinstance(value, numbers.Real)
                                                 and math.isfinite(value) and value == int(value))
    if isinstance(value, bool) or not ok:
        raise ValueError(f"{label} must be a whole number, not {value!r}")
    value = int(value)
    if low is not None and value < low:
        raise ValueError(f"{label} must be >= {low}{f' ({meaning})' if meaning else ''}, not {value}")
    return value


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
        return f"unknown {self.singular} '{name}'{did_you_mean(name, names)} (valid: {', '.join(names)})"

    def lookup(self, name):
        """The registered object itself (a factory or class)."""
        return self.entry(name).obj

    def parameters(self, name, skip: int = 0) -> list[str]:
        """The names of the parameters the factory ``name`` takes, less its first ``skip``
        (those polydl passes itself, such as ``num_features``)."""
        try:
            params = inspect.signature(self.lookup(name)).parameters.values()
        except (TypeError, ValueError):
            return []
        plain = [p for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        return [p.name for p in plain[skip:]]

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

    def get(self, name, *args, **params):
        """Build the named object: ``obj(*args, **params)`` (see :meth:`build`)."""
        return self.build(name, *args, **params)

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
