"""The directory of a study (``polydl tune --out OUT``), as other tools read it.

::

    OUT/study.json        written first (atomically): the marker that OUT is a polydl study
    OUT/study.db          the default storage (SQLite), unless --storage names another
    OUT/study.db.polydl.lock
                          the owners' lock around count + ask (<file>.polydl.lock beside a
                          storage file elsewhere, OUT/study.polydl.lock for a server)
    OUT/trials/NNNN/      one ordinary ``polydl train`` run directory per trial (config.toml,
                          metrics.jsonl, checkpoint.npz, summary.json, curves.png); NNNN is the
                          Optuna trial number, zero-padded to 4 digits
    OUT/owners/PID-TOKEN.lock
                          held (flock, shared) by each live owner process and its workers; the
                          first owner takes it before it writes study.json
    OUT/ray/              --executor ray: the files of a local Ray instance (session_*/logs),
                          and visible-TOKEN, which tells a Ray task that it sees OUT

``study.json`` is one JSON object::

    {"format": "polydl-study", "version": 1, "storage": URL, "study_name": NAME,
     "metric": "val_loss" | "val_accuracy", "direction": "minimize" | "maximize",
     "space": {key: {"distribution": ..., "low": ..., "high": ...} | {..., "choices": [...]}},
     "rounds": R, "trials": N, "sampler": "random" | "tpe", "seed": S}

``URL`` is an Optuna storage URL (``sqlite:////abs/path/study.db``, ``journal:/abs/path.log``,
``postgresql://...``). In the storage, every trial of the study carries the user attrs
``config`` (the complete training configuration, a dict), ``round`` (1 to R), ``run_dir`` (the
trial's run directory, absolute), ``owner`` (``{"host", "pid", "token", "lock"}`` of the
process that runs it) and, when it failed, ``error`` (one line). ``run_dir`` and ``lock`` are
for people: polydl derives both from ``OUT`` (``OUT/trials/NNNN``, ``OUT/owners/PID-TOKEN.lock``)
and never opens or deletes a path read from the storage. Its parameters are named by
their space keys, and its intermediate values are the metric after each epoch (step = epoch).
The study's user attrs hold ``polydl_space`` (the space as above), ``polydl_settings`` (metric,
rounds, trials, sampler, seed, pruner and the base training configuration) and ``boxes``:
``{"1": {key: box}, "2": ...}``, the box each round samples in, where a box is ``{"low",
"high", "scale": [a, b]}`` (``scale``: the ends on the key's sampling scale) or ``{"choices"}``.
"""
from __future__ import annotations

import json
from pathlib import Path

from .. import fsafe
from ..training.checkpoint import atomic_write

__all__ = ["STUDY_JSON", "TRIALS", "OWNERS", "RAY", "FORMAT", "VERSION", "trial_dir", "write_study_json",
           "read_study_json", "is_study_dir", "LayoutError"]

STUDY_JSON = "study.json"
TRIALS = "trials"
OWNERS = "owners"
RAY = "ray"
FORMAT = "polydl-study"
VERSION = 1
MAX_BYTES = 1 << 24  # a study.json is a few kB: more is not one
KEYS = ("format", "version", "storage", "study_name", "metric", "direction", "space", "rounds", "trials",
        "sampler", "seed")


class LayoutError(ValueError):
    """A directory that is not a polydl study, or a damaged ``study.json``."""


def trial_dir(out, number: int) -> Path:
    """``OUT/trials/NNNN``."""
    return Path(out) / TRIALS / f"{int(number):04d}"


def is_study_dir(path) -> bool:
    return (Path(path) / STUDY_JSON).is_file()


def write_study_json(out, info: dict) -> None:
    """Write ``OUT/study.json`` atomically with exactly the keys of :data:`KEYS`."""
    doc = {"format": FORMAT, "version": VERSION, **{k: info[k] for k in KEYS[2:]}}
    atomic_write(Path(out) / STUDY_JSON, json.dumps(doc, indent=2) + "\n")


def read_study_json(out) -> dict:
    path = Path(out) / STUDY_JSON
    try:
        doc = json.loads(fsafe.read_regular(path, MAX_BYTES).decode("utf-8"))
    except FileNotFoundError:
        raise LayoutError(f"{out} is not a polydl study: it has no {STUDY_JSON}") from None
    except fsafe.NotRegularFile as exc:
        raise LayoutError(exc.strerror) from None
    except OSError as exc:
        raise LayoutError(f"{path} cannot be read ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LayoutError(f"{path} is damaged and cannot be read ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise LayoutError(f"{path} is not a polydl study file")
    if doc.get("version") != VERSION:
        raise LayoutError(f"{path} has study format version {doc.get('version')}, this polydl reads {VERSION}")
    missing = [k for k in KEYS if k not in doc]
    if missing:
        raise LayoutError(f"{path} is damaged: it has no {', '.join(missing)}")
    return doc
