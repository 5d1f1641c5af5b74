"""Hyperparameter search on Optuna studies (``polydl[tune]``): random sampling on each
hyperparameter's own scale, coarse to fine in rounds, trials as ordinary run directories.

- :mod:`~polydl.tune.distributions`: sampling on each scale (log-uniform α, 1 − β log-uniform);
- :mod:`~polydl.tune.space`: the search space (TOML), the default tiers, applying samples;
- :mod:`~polydl.tune.sampler`: :class:`CoarseToFineSampler`, an Optuna sampler;
- :mod:`~polydl.tune.storage`: storages by path or URL, the owners' lock;
- :mod:`~polydl.tune.layout`: the study directory as other tools read it;
- :mod:`~polydl.tune.owners`: which process owns a trial, and whether it still lives;
- :mod:`~polydl.tune.study`: :func:`tune`, the owner of a study;
- :mod:`~polydl.tune.executors`: where trials train: ``local`` worker processes, ``population``
  groups of trials in them, ``ray`` tasks on a cluster (``polydl[ray]``);
- :mod:`~polydl.tune.worker`: a ``local`` worker process;
- :mod:`~polydl.tune.report`: the report, importances, ``tune.png``, the best configuration;
- :mod:`~polydl.tune.watch`: following a study as it grows (``polydl watch``).

Only the modules that talk to Optuna import it, and only a running Ray executor imports Ray;
``import polydl.tune`` works without either.
"""
from .distributions import DISTRIBUTIONS
from .space import Space, SpaceError, default_space

__all__ = ["Space", "SpaceError", "default_space", "DISTRIBUTIONS", "CoarseToFineSampler", "tune", "TuneSettings",
           "TuneError", "TuneInterrupted"]

_LAZY = {"CoarseToFineSampler": "sampler", "tune": "study", "TuneSettings": "study", "TuneError": "study",
         "TuneInterrupted": "study"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
