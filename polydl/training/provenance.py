"""Where a run's components came from: the plugin, distribution and version that supplied its
schedule, normalizer, loss, optimizer, model and (a named) dataset when it was built.

:func:`record` writes them into the checkpoint's metadata (``components``) and, as comments
that ``load_toml`` skips, at the end of ``config.toml``. :func:`check` compares them with what
answers the same names now, where a run is loaded again (evaluate, predict, resume): a name that
another plugin supplies now, or none, is one :class:`ProvenanceError` line that says which
package to install; the same distribution in another version is a :class:`ProvenanceWarning`,
and the run goes on.
"""
from __future__ import annotations

import warnings
from pathlib import Path

from .. import datasets, losses, models, normalizers, optim, schedules
from ..plugins import PREFER_ENV, PluginWarning
from ..registry import SEPARATOR, UnknownNameError, norm

__all__ = ["COMPONENTS", "ProvenanceError", "ProvenanceWarning", "record", "comments", "config_text", "check",
           "supplied", "describe", "plugin_fix"]

#: the configuration keys that name a registered component, and their registries
COMPONENTS = {"schedule": schedules.registry, "normalizer": normalizers.registry, "loss": losses.registry,
              "optimizer": optim.registry, "dataset": datasets.registry, "model": models.registry}


class ProvenanceError(ValueError):
    """A run's component now comes from another plugin, or from none."""


class ProvenanceWarning(PluginWarning):
    """A run's component comes from the same distribution in another version."""


def _named_dataset(name: str) -> bool:
    return name in datasets.registry and not Path(name).is_file()


def record(config) -> dict:
    """``{key: {"name", "plugin", "distribution", "version"}}`` for each component of ``config``
    (a dataset only where it is a registered name, not a file)."""
    out = {}
    for key, reg in COMPONENTS.items():
        name = getattr(config, key)
        if key == "dataset" and not _named_dataset(name):
            continue
        entry = reg.entry(name)
        out[key] = {"name": name, "plugin": entry.plugin, "distribution": entry.distribution,
                    "version": entry.version}
    return out


def _builtin(c: dict) -> bool:
    plugin = str(c.get("plugin"))
    return plugin == "polydl" or plugin.startswith("polydl.")


def _supplier(c: dict) -> str:
    dist = f"{c['distribution']} {c.get('version') or ''}".strip() if c.get("distribution") else "no distribution"
    return f"built-in ({dist})" if _builtin(c) else f"plugin {c['plugin']} ({dist})"


def comments(components: dict) -> str:
    """The components as TOML comments, one line each, for the end of ``config.toml``."""
    if not components:
        return ""
    width = max(len(str(c["name"])) for c in components.values())
    lines = ["", "# components, and what supplied each when the run was built:"]
    for key, c in components.items():
        lines.append(f"#   {key:<10} {c['name']:<{width}}  {_supplier(c)}")
    return "\n".join(lines) + "\n"


def config_text(config) -> str:
    """What ``config.toml`` holds: the configuration as TOML, then its components as comments."""
    return config.to_toml() + comments(record(config))


def _install(c: dict) -> str:
    dist, version = c.get("distribution"), c.get("version")
    if not dist:
        return f"register plugin '{c['plugin']}' again (it was not installed from a distribution)"
    return f"install it: pip install \"{dist}=={version}\"" if version else f"install it: pip install {dist}"


def _same_supplier(c: dict, entry) -> bool:
    if c.get("distribution") or entry.distribution:
        return norm(c.get("distribution") or "") == norm(entry.distribution or "")
    return c.get("plugin") == entry.plugin


def supplied(config, key: str):
    """The registry entry of ``config``'s component ``key`` where a plugin supplies it, else None
    (a built-in, or a name that answers nothing now)."""
    try:
        entry = COMPONENTS[key].entry(getattr(config, key))
    except UnknownNameError:
        return None
    return None if entry.builtin else entry


def describe(kind: str, entry) -> str:
    """``loss 'x' of plugin 'p' (distribution polydl-p 1.0)`` (``loss 'x' (built-in)`` for polydl's own)."""
    if entry.builtin:
        return f"{kind} '{entry.name}' (built-in)"
    dist = f"distribution {entry.distribution}{' ' + entry.version if entry.version else ''}" \
        if entry.distribution else "no distribution"
    return f"{kind} '{entry.name}' of plugin '{entry.plugin}' ({dist})"


def plugin_fix(entry) -> str:
    """What a user can do about a plugin's component: ``update it (pip install -U DIST)``, or
    ``fix it`` where no distribution installed it."""
    return f"update it (pip install -U {entry.distribution})" if entry.distribution else "fix it"


def _what(c: dict) -> str:
    dist = f"distribution {c['distribution']} {c.get('version') or ''}".strip() if c.get("distribution") \
        else "no distribution"
    return f"plugin '{c['plugin']}' ({dist})"


def check(meta: dict, config, keys, run_dir) -> None:
    """Compare the components ``keys`` of ``config`` with those recorded in ``meta`` (a
    checkpoint's metadata) and answering the same names now. A component whose name changed
    since (a new schedule on resume) is not compared, nor a checkpoint that recorded none."""
    recorded = meta.get("components") or {}
    changed: dict = {}  # (distribution, version then, version now) -> [(kind, name)]
    for key in keys:
        c = recorded.get(key)
        if not isinstance(c, dict) or c.get("name") != getattr(config, key):
            continue
        reg = COMPONENTS[key]
        name = c["name"]
        was = f"the run in {run_dir} was trained with the {reg.singular} '{name}' of {_what(c)}"
        plugin, _, plain = name.rpartition(SEPARATOR)
        try:
            entry = reg.entry(name)
        except UnknownNameError:
            gone = f"plugin '{plugin}' registers no {reg.singular} '{plain}' now" if plugin else \
                "no installed plugin registers it now"
            raise ProvenanceError(f"{was}, but {gone}; {_install(c)}") from None
        if not _same_supplier(c, entry):
            now = f"'{name}' now comes from {_what(vars(entry))}"
            own = [e for e in reg.candidates(plain) if _same_supplier(c, e)]
            if own:
                choose = own[0].qualified.rpartition(SEPARATOR)[0]
                fix = f"that plugin is installed but loses the name: set {PREFER_ENV}={choose} to use it"
            else:
                fix = f"{_install(c)}, and set {PREFER_ENV}={c['plugin']} if the other plugin keeps the name"
            raise ProvenanceError(f"{was}, but {now}; {fix}")
        if c.get("distribution") and (entry.version or None) != (c.get("version") or None):
            changed.setdefault((c["distribution"], c.get("version"), entry.version), []).append((reg.singular, name))
    if changed:  # one line for all of them
        parts = [f"{', '.join(f'the {kind} {name!r}' for kind, name in items)} of {dist} {then}, and {dist} {now} is "
                 "installed now" for (dist, then, now), items in changed.items()]
        fix = " and ".join(f"pip install \"{dist}=={then}\"" for dist, then, _ in changed)
        warnings.warn(f"the run in {run_dir} was trained with {'; '.join(parts)}; its results may differ ({fix} "
                      "restores it)", ProvenanceWarning, stacklevel=3)
