"""Run directories shipped between a Ray task and its owner.

A task that trains in a scratch directory (it does not see ``OUT``) returns the files of the
run directory (marker, configuration, metrics, summary, checkpoint, curves: :func:`run_files`)
with its result, ``config.toml`` pointing at the owner's directory (:func:`own_config_toml`);
the owner writes them into ``OUT/trials/NNNN`` in a new directory moved into place
(:func:`install_run`), so ``polydl evaluate`` and ``polydl tune report`` read them there. A
continued trial carries the owner's copy of its run directory to such a task.
"""
from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

from .... import fsafe
from ....training import checkpoint as ckpt
from ....training.rundir import LOCK, MARKER, is_run_dir
from .errors import RayExecutorError

__all__ = ["SHIP_VARIABLE", "run_files", "install_run", "own_config_toml", "plain_name"]

#: ``POLYDL_RAY_SHIP=1``: ship every run directory back, even where the workers see OUT
SHIP_VARIABLE = "POLYDL_RAY_SHIP"


def plain_name(name) -> bool:
    """A file name of a run directory: no directory part, not ``.`` nor ``..``."""
    return isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\\" not in name \
        and "\0" not in name


def run_files(run_dir) -> dict[str, bytes]:
    """The files of a run directory (marker, configuration, metrics, checkpoint, summary,
    curves), without its lock and temporaries; regular files only (no link is followed)."""
    out = {}
    for p in sorted(Path(run_dir).iterdir()):
        if p.name != LOCK and not p.name.startswith(".polydl-tmp-") and plain_name(p.name):
            try:
                out[p.name] = fsafe.read_regular(p)
            except fsafe.NotRegularFile:
                pass
    return out


def own_config_toml(run_dir: Path, out: str) -> None:
    """Point ``config.toml``'s ``out`` at the owner's run directory."""
    from .... import training

    path = run_dir / ckpt.CONFIG
    try:
        config = training.from_dict(training.load_toml(path))
        ckpt.atomic_write(path, config.replace(out=out).to_toml())
    except (OSError, ValueError):
        pass


def install_run(run_dir, files: dict[str, bytes]) -> None:
    """Write a shipped run directory into ``run_dir``: a new directory beside it, moved into
    place (an older run there, polydl's, is replaced). Raises ``OSError`` or :class:`RayExecutorError`."""
    target = Path(run_dir)
    bad = [name for name in files if not plain_name(name)]
    if bad:
        raise RayExecutorError(f"the files shipped back for {target} include {bad[0]!r}, not a file name of a run "
                               "directory; nothing is written")
    if target.is_symlink():
        raise RayExecutorError(f"{target} is a link; the trial's run directory is not written there")
    if target.exists() and (not target.is_dir() or (any(target.iterdir()) and not is_run_dir(target))):
        raise RayExecutorError(f"{target} holds files polydl did not write; the trial's run directory is not "
                               "written there")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".polydl-tmp-{target.name}.{secrets.token_hex(4)}"
    tmp.mkdir()
    try:
        for name in sorted(files, key=lambda n: n != MARKER):  # the marker first
            ckpt.atomic_write(tmp / name, files[name])
        if target.exists():
            old = target.parent / f".polydl-old-{target.name}.{secrets.token_hex(4)}"
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
