"""Named registries of schedules, normalizers, losses, optimizers and datasets.

Built-ins and third-party plugins fill them through the same hooks (``polydl.hookspecs``);
each entry remembers which plugin, distribution and version registered it. ``Registry.build``
checks parameter names against the factory's signature.

A name may be registered by several plugins. Every registration is kept, and one of them
answers the plain name: the first plugin of the preference list that registered it (set by
the loader from ``POLYDL_PREFER_PLUGINS``), else the last one registered with
``override=True``, else the first one registered. ``PLUGIN:NAME`` (``rms:rmsnorm``) selects the
registration of one plugin, by plugin or distribution name (``polydl`` for the built-ins),
wherever a name is looked up.

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
#: separates a plugin's name from a component's name: ``rms:rmsnorm``
SEPARATOR = ":"


class UnknownNameError(KeyError, ValueError):
    """A name that no plugin registered; the message lists the valid names."""

    def __str__(self):
        return str(self.args[0]) if self.args else ""


class RegistrationError(ValueError):
    """A plugin registered something invalid, or a name another plugin already holds."""


def norm(name) -> str:
    """A plugin or distribution name compared as pip compares them: ``Polydl_Tricks`` = ``polydl-tricks``."""
    return str(name).lower().replace("_", "-").replace(".", "-")


@dataclass
class Entry:
    """One registration of a name: the object, and the plugin (distribution, version) that
    registered it.

    Of the entry that answers the name: ``overridden`` lists the plugins whose entries it
    replaced with ``override=True`` (``previous`` is the last of them), ``shadows`` the plugins
    whose entries of the name it wins over without an override (a clash)."""

    name: str
    obj: object
    plugin: str = "polydl"
    distribution: str | None = None
    version: str | None = None
    overridden: list = field(default_factory=list)
    previous: "Entry | None" = field(default=None, repr=False, compare=False)
    override: bool = field(default=False, repr=False)
    shadows: list = field(default_factory=list, repr=False)

    @property
    def builtin(self) -> bool:
        """Registered by polydl itself (its default plugins ``polydl.schedules``, ...)."""
        return self.plugin == "polydl" or self.plugin.startswith("polydl.")

    @property
    def qualified(self) -> str:
        """``plugin:name``, the form that selects this entry whichever plugin wins the name."""
        return f"{'polydl' if self.builtin else self.plugin}{SEPARATOR}{self.name}"

    def belongs_to(self, plugin: str) -> bool:
        """Whether ``plugin`` names this entry's plugin or distribution (``polydl``: a built-in)."""
        key = norm(plugin)
        return (key == norm(self.plugin) or (self.distribution is not None and key == norm(self.distribution))
                or (key == "polydl" and self.builtin))


class Registry:
    """``register(name, obj)``, ``lookup(name)``, ``build(name, **params)``, ``names()``.

    ``internal``: parameter names a factory may declare that polydl never passes and users do
    not set (a normalizer's ``dtype`` and ``device``: modules are moved with ``Module.to``); they
    are left out of every list of parameters."""

    #: called before every query (the plugin loader's ``load``; it returns at once once loaded)
    _loader = None
    #: a context manager that every validator runs inside (the loader keeps RNG state there)
    _guard = contextlib.nullcontext

    def __init__(self, kind: str, validate=None, singular: str | None = None, internal: tuple = ()):
        self.kind = kind
        self.singular = singular or kind.rstrip("s")
        self.internal = tuple(internal)
        self._validate = validate
        self._entries: dict[str, Entry] = {}       # name -> the entry that answers it
        self._candidates: dict[str, list] = {}     # name -> every entry of it, in registration order
        self._prefer: tuple = ()

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
        self.add(name, obj, plugin, distribution, version, override=override)

    def add(self, name, obj, plugin="polydl", distribution=None, version=None, *, override=True) -> Entry:
        """Insert an already validated ``obj`` as ``name`` (what the plugin loader does once a
        plugin's names are checked). With ``override`` it answers the name from now on (the
        entry it replaces is kept, as ``previous``); without, it answers only where no other
        plugin registered the name, or where the preference list puts its plugin first."""
        entry = Entry(name, obj, plugin, distribution, version, override=override)
        kept = [e for e in self._candidates.get(name, ()) if e.plugin != plugin]
        self._candidates[name] = kept + [entry]
        self._choose(name)
        return entry

    def set_preference(self, plugins) -> None:
        """Plugins (or distributions) that win the names they register, the first listed first."""
        self._prefer = tuple(plugins)
        for name in list(self._candidates):
            self._choose(name)

    def _choose(self, name) -> None:
        cands = self._candidates.get(name)
        if not cands:
            self._candidates.pop(name, None)
            self._entries.pop(name, None)
            return
        for e in cands:
            e.overridden, e.previous, e.shadows = [], None, []
        ranked = [(i, e) for e in cands for i, p in enumerate(self._prefer) if e.belongs_to(p)]
        overrides = [e for e in cands if e.override]
        if ranked:
            winner = min(ranked, key=lambda r: r[0])[1]
        else:
            winner = overrides[-1] if overrides else cands[0]
        if winner.override:
            at = cands.index(winner)
            replaced = [e for e in cands if not e.override] + [e for e in overrides if cands.index(e) < at]
            winner.overridden = [e.plugin for e in replaced]
            winner.previous = replaced[-1] if replaced else None
            winner.shadows = [e.plugin for e in cands if e is not winner and e not in replaced]
        else:
            winner.shadows = [e.plugin for e in cands if e is not winner]
        self._entries[name] = winner

    def holds(self, name) -> bool:
        """Whether ``name`` is registered now (without loading plugins first)."""
        return name in self._entries

    def unregister(self, name):
        """Forget ``name``, every plugin's registration of it."""
        self._entries.pop(name, None)
        self._candidates.pop(name, None)

    def remove_plugin(self, plugin) -> list[str]:
        """Remove every entry of ``plugin``; a name it held goes back to the entry that answers it
        without this one (the one it overrode, or the one it shadowed)."""
        removed = []
        for name in list(self._candidates):
            cands = self._candidates[name]
            kept = [e for e in cands if e.plugin != plugin]
            if len(kept) == len(cands):
                continue
            removed.append(name)
            self._candidates[name] = kept
            self._choose(name)
        return removed

    def clear(self):
        self._entries.clear()
        self._candidates.clear()

    def snapshot(self) -> dict:
        return {name: list(cands) for name, cands in self._candidates.items()}

    def restore(self, snapshot: dict):
        self._candidates = {name: list(cands) for name, cands in snapshot.items()}
        self._entries = {}
        for name in list(self._candidates):
            self._choose(name)

    # ------------------------------------------------------------------ queries
    def entry(self, name) -> Entry:
        """The entry that answers ``name``, or for ``plugin:name`` that plugin's own entry."""
        self._load()
        if isinstance(name, str) and SEPARATOR in name:
            return self._qualified(name)
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise UnknownNameError(self.unknown_message(name)) from None

    def _qualified(self, text: str) -> Entry:
        plugin, _, name = text.rpartition(SEPARATOR)
        cands = self._candidates.get(name, ())
        for e in sorted(cands, key=lambda e: e.plugin != plugin):  # the plugin's own name before a distribution's
            if e.belongs_to(plugin):
                return e
        if not cands:
            raise UnknownNameError(f"unknown {self.singular} '{name}' in '{text}'{did_you_mean(name, self._entries)} "
                                   f"(valid: {', '.join(sorted(self._entries))})")
        have = ", ".join(f"{e.qualified}{_dist(e)}" for e in cands)
        raise UnknownNameError(f"plugin '{plugin}' registers no {self.singular} '{name}' (installed: {have})")

    def candidates(self, name) -> list[Entry]:
        """Every plugin's entry of the plain ``name``, in registration order (empty if none)."""
        self._load()
        return list(self._candidates.get(name, ()))

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
        a ``ValueError`` naming it and listing the ones the factory takes. A boolean parameter (a
        ``bool`` default or annotation) given as text or 0/1 is bound as ``True``/``False`` (see
        :func:`parse_bool`). None when the factory has no signature to check."""
        factory = self.lookup(name)
        try:
            sig = inspect.signature(factory)
        except (TypeError, ValueError):
            return None
        params = self._booleans(name, sig, params)
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

    def _booleans(self, name, sig: inspect.Signature, params: dict) -> dict:
        """``params`` with the values of the factory's boolean parameters parsed as booleans."""
        out = dict(params)
        for key, value in params.items():
            p = sig.parameters.get(key)
            if p is not None and is_bool_parameter(p):
                out[key] = parse_bool(f"{self.singular} '{name}': {key}", value)
        return out

    def build(self, name, *args, **params):
        """``factory(*args, **params)`` after :meth:`check_params` (boolean parameters parsed); a
        ``TypeError`` the factory raises for a parameter's value (a string where it wants a number)
        becomes a ``ValueError``."""
        bound = self.check_params(name, *args, **params)
        if bound is not None:
            params = {k: bound.arguments.get(k, v) for k, v in params.items()}
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
        """The entry that answers each name, by name."""
        self._load()
        return [self._entries[n] for n in sorted(self._entries)]

    def all_entries(self) -> list[Entry]:
        """Every registration, those that answer no plain name (shadowed or overridden) too."""
        self._load()
        return [e for n in sorted(self._candidates) for e in self._candidates[n]]

    def __contains__(self, name):
        self._load()
        if isinstance(name, str) and SEPARATOR in name:
            try:
                self._qualified(name)
            except UnknownNameError:
                return False
            return True
        return name in self._entries

    def __iter__(self):
        return iter(self.names())

    def __repr__(self):
        return f"<Registry {self.kind}>"


#: the words a boolean parameter accepts, in any case
TRUE_WORDS = ("true", "yes", "1")
FALSE_WORDS = ("false", "no", "0")


def is_bool_parameter(p: inspect.Parameter) -> bool:
    """Whether a factory's parameter takes a boolean: a ``True``/``False`` default, or the
    annotation ``bool`` (``bool | None`` too)."""
    if isinstance(p.default, bool) or p.annotation is bool:
        return True
    ann = p.annotation
    return isinstance(ann, str) and {a.strip() for a in ann.split("|")} in ({"bool"}, {"bool", "None"})


def parse_bool(label: str, value):
    """``value`` of the boolean ``label`` as ``True``/``False``: a bool (NumPy's too), 0 or 1, or
    the text true/false, yes/no, 1/0 in any case; ``None`` stays ``None``. Anything else is a
    ``ValueError`` naming ``label`` and the accepted values."""
    if value is None or isinstance(value, bool):
        return value
    if getattr(value, "dtype", None) is not None and value.dtype.kind == "b" and getattr(value, "shape", None) == ():
        return bool(value)
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    raise ValueError(f"{label} must be true or false (also yes/no or 1/0, in any case), not {value!r}")


def _dist(entry) -> str:
    if entry.distribution:
        return f" (distribution {entry.distribution}{' ' + entry.version if entry.version else ''})"
    return ""
