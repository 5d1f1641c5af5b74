"""Coarse to fine as an Optuna sampler: random search on each parameter's own scale, in rounds
whose boxes shrink around the best trials of the round before.

Trial number ``n`` belongs to the round whose range of numbers holds it (``trials_per_round``
numbers each; trials beyond the last round stay in it). Round 1 samples the full space; round
``r > 1`` samples inside the box of round ``r − 1``'s top ``k`` complete trials (``top_k``, or
``max(2, ⌈top_fraction · completed⌉)``): on each parameter's sampling scale, the bounding box of
their values, widened on each side by ``margin`` times the width of round ``r − 1``'s box and
clipped to the full range (a ``choice`` keeps the choices they took). A round without a
complete trial keeps the box before it.

Each value is drawn from a generator seeded with ``(seed, trial number, parameter name)``, so
the same seed on a fresh study samples the same values for the same trial numbers whatever the
order in which trials are asked. For that to hold with trials run in parallel, round ``r``
must start only after round ``r − 1`` has finished (``polydl tune`` waits so; :meth:`ready`
tells whether it may); a box is computed once, by the first trial of its round, and recorded
in the study's user attr ``boxes``. Each trial gets the user attr ``round``.

Plain Optuna::

    space = {"lr": {"distribution": "log_uniform", "low": 1e-4, "high": 1.0}}
    study = optuna.create_study(sampler=CoarseToFineSampler(space, rounds=3, trials_per_round=20, seed=0))
    study.optimize(lambda trial: objective(trial.suggest_float("lr", 1e-4, 1.0, log=True)), n_trials=60)

Parameters outside the space are sampled by Optuna's ``RandomSampler``, seeded per trial too.
"""
from __future__ import annotations

import math
import zlib
from collections.abc import Sequence

import numpy as np
import optuna
from optuna.samplers import BaseSampler, RandomSampler
from optuna.trial import TrialState

from .space import Space

__all__ = ["CoarseToFineSampler", "split_trials", "ROUND", "BOXES", "SPACE"]

ROUND = "round"
BOXES = "boxes"
SPACE = "polydl_space"


def split_trials(trials: int, rounds: int) -> list[int]:
    """``trials`` split as evenly as possible over ``rounds`` (earlier rounds get the extra)."""
    base, extra = divmod(int(trials), int(rounds))
    return [base + (1 if r < extra else 0) for r in range(int(rounds))]


class CoarseToFineSampler(BaseSampler):
    """Random search on each parameter's own scale, in ``rounds`` that zoom in on the best."""

    def __init__(self, space, rounds: int = 1, trials_per_round: int | Sequence[int] | None = None, *,
                 top_k: int | None = None, top_fraction: float = 0.25, margin: float = 0.1, seed: int | None = None):
        self.space = space if isinstance(space, Space) else Space.from_dict(space, "the sampler's space",
                                                                             config_keys=False)
        if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
            raise ValueError(f"rounds must be a whole number >= 1, not {rounds!r}")
        if trials_per_round is None:
            if rounds > 1:
                raise ValueError("rounds > 1 needs trials_per_round: how many trials each round samples")
            sizes = [1]
        elif isinstance(trials_per_round, int) and not isinstance(trials_per_round, bool):
            sizes = [trials_per_round] * rounds
        else:
            sizes = [int(t) for t in trials_per_round]
            if len(sizes) != rounds:
                raise ValueError(f"trials_per_round lists {len(sizes)} rounds, not {rounds}")
        if any(s < 1 for s in sizes):
            raise ValueError(f"every round needs at least one trial, not trials_per_round={trials_per_round!r}")
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
            raise ValueError(f"top_k must be a whole number >= 1, not {top_k!r}")
        if not 0 < top_fraction <= 1:
            raise ValueError(f"top_fraction must be in (0, 1], not {top_fraction!r}")
        if not 0 <= margin:
            raise ValueError(f"margin must be >= 0, not {margin!r}")
        self.rounds = rounds
        self.sizes = sizes
        self.top_k, self.top_fraction, self.margin = top_k, top_fraction, margin
        self.seed = int(np.random.SeedSequence().entropy % 2 ** 32) if seed is None else int(seed)
        self._starts = [sum(sizes[:r]) for r in range(rounds)]
        self._boxes: dict[tuple, dict] = {}

    # ------------------------------------------------------------------ rounds
    def round_of(self, number: int) -> int:
        """The round (1 to ``rounds``) of trial ``number``."""
        r = 1
        for i, start in enumerate(self._starts):
            if number >= start:
                r = i + 1
        return r

    def round_numbers(self, r: int) -> range:
        """The trial numbers of round ``r``."""
        start = self._starts[r - 1]
        return range(start, start + self.sizes[r - 1])

    def ready(self, study, number: int) -> bool:
        """Whether trial ``number`` may be asked: every trial of the rounds before its own is
        finished (complete, pruned or failed)."""
        r = self.round_of(number)
        if r == 1:
            return True
        need = set(range(0, self._starts[r - 1]))
        done = {t.number for t in study.get_trials(deepcopy=False) if t.state.is_finished()}
        return need <= done

    # ------------------------------------------------------------------ boxes
    def box(self, study, r: int) -> dict:
        """Round ``r``'s box per parameter (scale coordinates, or kept choice indices)."""
        key = (id(study._storage), study._study_id, r)
        if key in self._boxes:
            return self._boxes[key]
        recorded = study.user_attrs.get(BOXES, {}).get(str(r))
        if recorded is not None and set(recorded) == set(self.space):
            box = {k: self.space[k].box_from_dict(recorded[k]) for k in self.space}
        else:
            if r == 1:
                box = {k: d.full for k, d in self.space.params.items()}
            else:
                box = self._shrink(study, r)
            self._record(study, r, box)
        self._boxes[key] = box
        return box

    def _shrink(self, study, r: int) -> dict:
        before = self.box(study, r - 1)
        numbers = set(self.round_numbers(r - 1))
        done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                if t.number in numbers and t.value is not None and not math.isnan(t.value)
                and all(k in t.params for k in self.space)]
        if not done:
            return dict(before)
        sign = -1.0 if study.direction == optuna.study.StudyDirection.MAXIMIZE else 1.0
        done.sort(key=lambda t: (sign * t.value, t.number))
        k = self.top_k if self.top_k is not None else max(2, math.ceil(self.top_fraction * len(done)))
        top = done[:min(k, len(done))]
        return {name: d.shrink([t.params[name] for t in top], before[name], self.margin)
                for name, d in self.space.params.items()}

    def _record(self, study, r: int, box: dict) -> None:
        attrs = study.user_attrs
        if SPACE not in attrs:
            study.set_user_attr(SPACE, self.space.to_dict())
        boxes = dict(attrs.get(BOXES, {}))
        boxes[str(r)] = {k: self.space[k].box_dict(b) for k, b in box.items()}
        study.set_user_attr(BOXES, boxes)

    # ------------------------------------------------------------------ BaseSampler
    def infer_relative_search_space(self, study, trial):
        return {}

    def sample_relative(self, study, trial, search_space):
        return {}

    def before_trial(self, study, trial) -> None:
        r = self.round_of(trial.number)
        if trial.user_attrs.get(ROUND) != r:
            study._storage.set_trial_user_attr(trial._trial_id, ROUND, r)

    def rng(self, number: int, name: str) -> np.random.Generator:
        """The generator of parameter ``name`` in trial ``number``."""
        return np.random.default_rng([self.seed, int(number), zlib.crc32(name.encode("utf-8"))])

    def sample_independent(self, study, trial, param_name, param_distribution):
        if param_name not in self.space:
            fallback = RandomSampler(seed=int(self.rng(trial.number, param_name).integers(2 ** 31)))
            return fallback.sample_independent(study, trial, param_name, param_distribution)
        expected = self.space.optuna_distributions()[param_name]
        if param_distribution != expected:
            raise ValueError(f"the trial suggests {param_name} from {param_distribution}, but the space samples it "
                             f"from {expected}; suggest it with Space.suggest(trial) or the same range")
        r = self.round_of(trial.number)
        box = self.box(study, r)[param_name]
        return self.space[param_name].sample(self.rng(trial.number, param_name), box)
