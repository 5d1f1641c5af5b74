"""Fake installed distributions for the plugin tests: a ``*.dist-info`` folder with an
``entry_points.txt`` on ``sys.path`` is all ``importlib.metadata`` needs to find an entry point."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from polydl import plugins

DOC = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
ENV_VARS = ("POLYDL_STRICT_PLUGINS", "POLYDL_LOAD_PLUGINS", "POLYDL_DISABLE_PLUGIN_AUTOLOAD", "POLYDL_PREFER_PLUGINS")


def make_dist(root, dist: str, version: str = "1.0", entry_points: dict | None = None,
              files: dict | None = None) -> Path:
    """Write ``<root>/<dist>-<version>.dist-info`` declaring ``entry_points`` (name -> target) in the
    group ``polydl``, and the module ``files`` (relative path -> source) beside it."""
    root = Path(root)
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    if entry_points:
        lines = ["[polydl]"] + [f"{k} = {v}" for k, v in entry_points.items()]
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    for rel, text in (files or {}).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def doc_blocks() -> list[tuple[str, str]]:
    """The fenced blocks of docs/plugins.md: (language, text)."""
    return [(m.group(1), m.group(2)) for m in FENCE.finditer(DOC.read_text())]


def doc_files(blocks=None) -> dict:
    """The files docs/plugins.md writes out (the blocks that start ``# file: PATH``): path -> text."""
    out = {}
    for lang, text in blocks if blocks is not None else doc_blocks():
        first, _, rest = text.partition("\n")
        if first.startswith("# file: "):
            out[first[len("# file: "):].strip()] = rest if lang == "python" else text
    return out


def run_python(code: str, *paths, env: dict | None = None, timeout: float = 60):
    """Run ``code`` in a fresh interpreter with ``paths`` first on PYTHONPATH."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=child_env(*paths, **(env or {})), timeout=timeout)


def run_cli(*args, paths=(), env: dict | None = None, timeout: float = 120):
    """Run ``polydl ARGS`` in a fresh interpreter (``python -m polydl_cli.main``)."""
    return subprocess.run([sys.executable, "-m", "polydl_cli.main", *args], capture_output=True, text=True,
                          env=child_env(*paths, **(env or {})), timeout=timeout)


def child_env(*paths, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS and k != "PYTHONPATH"}
    pp = [str(p) for p in paths] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])
    if pp:
        env["PYTHONPATH"] = os.pathsep.join(pp)
    env.update({k: str(v) for k, v in extra.items()})
    return env


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A fresh plugin state with ``tmp_path`` on sys.path for fake distributions, and none of the
    POLYDL_*PLUGIN* variables set; afterwards the next use reloads the real plugins."""
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    plugins.reset()
    yield tmp_path
    plugins.reset()
    for name, mod in list(sys.modules.items()):
        if str(getattr(mod, "__file__", "") or "").startswith(str(tmp_path)):
            del sys.modules[name]
