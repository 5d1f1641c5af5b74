"""An optimizer's two state-dict formats: the whole optimizer, and one member of a population.

``state_dict()`` is plain data: ``type``, ``step`` (updates taken, Adam's t), ``position`` (the
clock, :mod:`polydl.optim.clock`), ``last_lr``, ``hyperparameters`` and NumPy copies of the state
buffers, one dict per parameter group (``tmp`` scratch space left out). A buffer named in the
class's ``scaled_state`` holds its moving average divided by (1 − β); loading it under another β
rescales it (:func:`polydl.optim.hyper.rescale`).

``member_state_dict(p)`` is exactly the ``state_dict()`` of the same optimizer over member p
alone (its row of each buffer, its hyperparameters, the shared position), so a member's
checkpoint and a single run's are interchangeable.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from ..schedules import Schedule
from .hyper import plain, rescale

__all__ = ["StateDicts"]


def _buffers(state, row=None) -> list[dict]:
    """NumPy copies of every group's state buffers (one member's row where ``row`` is given)."""
    return [{k: np.array(backend.to_numpy(v if row is None else v[row]), copy=True) for k, v in buffers.items()
             if k != "tmp"} for buffers in state]


def _restore_lr(saved, current):
    """α from a state dict: numbers as they are; a schedule kept if it is the optimizer's own,
    else rebuilt by name from the registry."""
    if isinstance(saved, list):
        cur = current if isinstance(current, list) else [current] * len(saved)
        return [_restore_lr(s, c) for s, c in zip(saved, cur, strict=False)]
    if isinstance(saved, dict):
        if isinstance(current, Schedule) and current.name == saved["schedule"] and current.params == saved["params"]:
            return current
        from .. import schedules
        return schedules.get(saved["schedule"], **saved["params"])
    return saved


class StateDicts:
    """The state-dict part of :class:`~polydl.optim.Optimizer` (it keeps ``groups``, ``state``,
    ``step_count``, ``last_lr``, the clock and the hyperparameters)."""

    def state_dict(self) -> dict:
        """Plain data: the number of updates, the position in the run, the hyperparameters and
        NumPy copies of the state buffers (those named in ``scaled_state`` hold the moving average
        divided by (1 − β))."""
        return {
            "type": type(self).__name__,
            "step": int(self.step_count),
            "position": self._position_dict(),
            "last_lr": plain(self.last_lr),
            "hyperparameters": self.hyperparameters(),
            "state": _buffers(self.state),
        }

    def member_state_dict(self, member: int) -> dict:
        """Member ``member``'s ``state_dict``: exactly what the same optimizer over that member
        alone would give (its row of each buffer, its hyperparameters, the shared position). An
        ordinary model is a population of one: its member 0 is its ``state_dict()``."""
        if self.members is None:
            self._check_single(member)
            return self.state_dict()
        last = self.last_lr
        return {
            "type": type(self).__name__,
            "step": int(self.step_count),
            "position": self._position_dict(),
            "last_lr": float(last[member]) if isinstance(last, np.ndarray) else last,
            "hyperparameters": self.member_hyperparameters(member),
            "state": _buffers(self.state, member),
        }

    @staticmethod
    def _check_single(member) -> None:
        if member != 0:
            raise IndexError(f"member {member} of an optimizer over one model (its only member is 0)")

    def _check_type(self, sd) -> None:
        if sd.get("type", type(self).__name__) != type(self).__name__:
            raise ValueError(f"optimizer state is for {sd['type']}, not {type(self).__name__}")

    def _check_groups(self, states, member=None) -> None:
        if len(states) != len(self.groups):
            raise ValueError(f"optimizer state has {len(states)} parameter groups, this optimizer {len(self.groups)}")
        for group, buffers in zip(self.groups, states, strict=True):
            want = group.data.shape if member is None else (group.size,)
            for k, v in buffers.items():
                if tuple(v.shape) != tuple(want):
                    raise ValueError(f"optimizer state '{k}' has shape {tuple(v.shape)}, expected {tuple(want)}: "
                                     "the model does not match this checkpoint")

    def _loaded(self, k, v, dtype, saved: dict, now):
        """A copy of saved buffer ``k`` in ``dtype`` (stepping must not write into the caller's
        state dict), rescaled from the saved β to ``now(β's name)`` where ``k`` is kept scaled."""
        arr = np.array(v, dtype=dtype, copy=True)
        hyper = self.scaled_state.get(k)
        if hyper is not None and hyper in saved:
            rescale(arr, saved[hyper], now(hyper))
        return arr

    def load_state_dict(self, sd: dict, hyperparameters: bool = True) -> None:
        """Restore the state buffers, the number of updates and the position; and, unless
        ``hyperparameters`` is False, the saved hyperparameters (α, its schedule, the βs). With
        False the optimizer keeps its own (a resumed run with a new α or β), and buffers scaled by
        a β are rescaled from the saved β to this optimizer's."""
        self._check_type(sd)
        states = sd["state"]
        self._check_groups(states)
        saved = dict(sd.get("hyperparameters", {}))
        if hyperparameters:
            for k, v in saved.items():
                if k == "lr":
                    self.lr = _restore_lr(v, self._lr)
                else:
                    setattr(self, k, v)

        def now(hyper):
            return getattr(self, hyper)

        self.state = [{k: backend.to_device(self._loaded(k, v, group.dtype, saved, now), group.device)
                       for k, v in buffers.items()} for group, buffers in zip(self.groups, states, strict=True)]
        self.step_count = int(sd["step"])
        self.last_lr = np.array(sd["last_lr"]) if isinstance(sd.get("last_lr"), list) else sd.get("last_lr")
        self._load_position(sd.get("position"))

    def load_member_state_dict(self, member: int, sd: dict) -> None:
        """Load one member's ``state_dict`` (as :meth:`member_state_dict` gives, or a single run's)
        into its rows; the hyperparameters stay the optimizer's own."""
        self._check_type(sd)
        states = sd["state"]
        self._check_groups(states, member)
        saved = dict(sd.get("hyperparameters", {}))

        def now(hyper):
            value = getattr(self, hyper)
            return float(value[member]) if isinstance(value, np.ndarray) else value

        for group, state, buffers in zip(self.groups, self.state, states, strict=True):
            for name in self.state_names:
                if name not in state:
                    state[name] = group.xp.zeros_like(group.data)
            for k, v in buffers.items():
                state[k][member] = backend.to_device(self._loaded(k, v, group.dtype, saved, now), group.device)
        self.step_count = int(sd["step"])
        self._load_position(sd.get("position"))

    def load_member_state_dicts(self, sds, clock_from: int = 0) -> None:
        """Continue a population from its members' state dicts, one per member in order (each as
        :meth:`member_state_dict` gives, or a single run's): every member's rows of the state
        buffers from its own, the clock (number of updates, position) from member
        ``clock_from``'s, and ``last_lr`` per member (NaN for a member that has none; None when
        member ``clock_from`` has none). The hyperparameters stay the optimizer's own.

        An ordinary model is a population of one: ``sds`` is its one state dict, loaded by
        ``load_state_dict(sds[0], hyperparameters=False)``."""
        sds = list(sds)
        if self.members is None:
            if len(sds) != 1:
                raise ValueError(f"an optimizer over one model takes one state dict, not {len(sds)}")
            self._check_single(clock_from)
            self.load_state_dict(sds[0], hyperparameters=False)
            return
        if len(sds) != self.members:
            raise ValueError(f"{len(sds)} state dicts for an optimizer over a population of {self.members}")
        if not 0 <= clock_from < self.members:
            raise IndexError(f"clock_from={clock_from} is not a member of a population of {self.members}")
        for k, sd in enumerate(sds):
            self.load_member_state_dict(k, sd)
        live = sds[clock_from]
        self.step_count = int(live["step"])
        self._load_position(live.get("position"))
        last = [sd.get("last_lr") for sd in sds]
        self.last_lr = (None if last[clock_from] is None
                        else np.array([np.nan if v is None else v for v in last], dtype=float))
