"""``polydl plugins``: every loaded plugin with its distribution, version, hooks and names."""
from __future__ import annotations

import json
import warnings

import click

from polydl import plugins as _plugins

from ._common import Command

_KINDS = ("schedules", "normalizers", "losses", "optimizers", "datasets", "models")


def _format_plugin_warnings():
    """On the command line a skipped plugin is one ``Warning: ...`` line, not a source location."""
    original = warnings.formatwarning
    if getattr(original, "_polydl", False):
        return

    def formatwarning(message, category, filename, lineno, line=None):
        if isinstance(category, type) and issubclass(category, _plugins.PluginWarning):
            return f"Warning: {message}\n"
        return original(message, category, filename, lineno, line)

    formatwarning._polydl = True
    warnings.formatwarning = formatwarning


_format_plugin_warnings()


def _origin(p: dict) -> str:
    if p["source"] == "builtin":
        return f"built-in ({p['distribution']} {p['version']})"
    dist = f"{p['distribution']} {p['version'] or ''}".strip() if p["distribution"] else "no distribution"
    return f"{dist}  [{p['target']}]" if p["target"] else dist


def _name(p: dict, kind: str, name: str) -> str:
    """``rmsnorm (eps)``, ``batchnorm (momentum, eps; override)``, ``rmsnorm (shadowed by tricks: use rms:rmsnorm)``."""
    notes = ", ".join(p.get("parameters", {}).get(kind, {}).get(name, ()))
    winner = p.get("shadowed", {}).get(kind, {}).get(name)
    if winner is not None:
        own = "polydl" if p["source"] == "builtin" else p["name"]
        notes += f"{'; ' if notes else ''}shadowed by {winner}: use {own}:{name}"
    elif name in p["overrides"].get(kind, ()):
        notes += f"{'; ' if notes else ''}override"
    return f"{name} ({notes})" if notes else name


def _text(report: dict) -> str:
    s = report["settings"]
    flags = [f"autoload {'on' if s['autoload'] else 'off (POLYDL_DISABLE_PLUGIN_AUTOLOAD)'}",
             f"strict {'on' if s['strict'] else 'off'}"]
    if s["only"] is not None:
        flags.append(f"only {', '.join(s['only'])} (POLYDL_LOAD_PLUGINS)")
    if s.get("prefer"):
        flags.append(f"prefer {', '.join(s['prefer'])} (POLYDL_PREFER_PLUGINS)")
    lines = [f"polydl {report['polydl_version']}: {len(report['plugins'])} plugins loaded from the built-ins "
             f"and the entry-point group '{report['entry_point_group']}' ({'; '.join(flags)})", ""]
    width = max(len(p["name"]) for p in report["plugins"])
    for p in report["plugins"]:
        lines.append(f"{p['name']:<{width}}  {_origin(p)}")
        lines.append(f"  hooks: {', '.join(p['hooks']) or '(none)'}")
        for kind in _KINDS:
            names = p["registered"].get(kind)
            if names:
                lines.append(f"  {kind}: {', '.join(_name(p, kind, n) for n in names)}")
    if report["warnings"]:
        lines += ["", f"warnings ({len(report['failed'])} plugin(s) skipped; POLYDL_STRICT_PLUGINS=1 makes "
                      "them errors):"]
        lines += [f"  {w}" for w in report["warnings"]]
    return "\n".join(lines)


@click.command("plugins", cls=Command)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (plugins, failed, warnings, settings).")
def plugins(as_json):
    """List the loaded plugins: distribution, version, hooks and the names each registered, with
    their parameters.

    A name two plugins register goes to the one that loads first; the other's is listed as
    shadowed, and PLUGIN:NAME selects it. Broken plugins and clashes are listed under warnings.
    POLYDL_STRICT_PLUGINS=1 makes them an error, POLYDL_LOAD_PLUGINS=a,b loads only those,
    POLYDL_DISABLE_PLUGIN_AUTOLOAD=1 only the built-ins, POLYDL_PREFER_PLUGINS=a,b lets those
    win the names they register."""
    with warnings.catch_warnings():  # listed below instead of printed as they happen
        warnings.simplefilter("ignore", _plugins.PluginWarning)
        report = _plugins.report()
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
    else:
        click.echo(_text(report))

