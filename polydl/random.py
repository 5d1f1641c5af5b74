"""Every random number polydl draws comes from here, so ``manual_seed(n)`` fixes them all.

Weight initialisation and data shuffling draw on the host (NumPy's PCG64), so a seeded model
starts from the same weights on every device; dropout masks are drawn on the device that holds
the activations. ``get_state()``/``set_state()`` give plain data for checkpoints.

A :class:`Stream` holds one such set of generators (the host's and one per device). The process
has a current stream; a population of models (``polydl.nn`` with ``population=P``) draws each
member's dropout masks from a stream of its own (:func:`member_streams`), so that every member
draws exactly what the same model trained alone would.
"""
from __future__ import annotations

import contextlib

import numpy as np

from . import backend

__all__ = ["manual_seed", "host_generator", "uniform", "get_state", "set_state", "initial_seed", "Stream",
           "current", "member_streams", "members", "using", "preserved"]


class Stream:
    """A seed, the host generator it starts, and (created on first use) one generator per device."""

    def __init__(self, seed: int = 0):
        self.seed = int(seed)
        self.host = np.random.default_rng(self.seed)
        self.devices: dict = {}   # Device -> cupy RandomState

    def device_rng(self, dev):
        rng = self.devices.get(dev)
        if rng is None:
            cp = dev.xp
            with cp.cuda.Device(dev.index if dev.index is not None else cp.cuda.Device().id):
                rng = cp.random.RandomState(self.seed + 7919 * (1 + (dev.index or 0)))
            self.devices[dev] = rng
        return rng

    def uniform(self, shape, dtype, dev) -> object:
        """Uniform [0, 1) numbers of ``dtype`` on device ``dev``."""
        dev = backend.device(dev)
        if dev.type == "cpu":
            return self.host.random(shape, dtype=np.float32 if np.dtype(dtype) == np.float32 else np.float64)
        dt = np.dtype(dtype) if np.dtype(dtype) in (np.float32, np.float64) else np.float32
        return self.device_rng(dev).random_sample(shape, dtype=dt)

    def get_state(self) -> dict:
        state = {"seed": self.seed, "host": self.host.bit_generator.state}
        devices = {}
        for dev, rng in self.devices.items():
            st = rng.get_state() if hasattr(rng, "get_state") else None
            if st is not None:
                devices[str(dev)] = [backend.to_numpy(x).tolist() if hasattr(x, "shape") else x for x in st]
        if devices:
            state["devices"] = devices
        return state

    @classmethod
    def from_state(cls, state: dict) -> "Stream":
        stream = cls(int(state["seed"]))
        stream.host.bit_generator.state = state["host"]
        for name, st in state.get("devices", {}).items():
            rng = stream.device_rng(backend.device(name))
            if hasattr(rng, "set_state"):
                rng.set_state(tuple(st))
        return stream


_CURRENT = Stream(0)
_MEMBERS: list | None = None   # the streams of a population's members while it draws


def current() -> Stream:
    return _CURRENT


def manual_seed(seed: int) -> None:
    """Seed the host generator and every device generator polydl uses."""
    global _CURRENT
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, not {seed!r}")
    _CURRENT = Stream(int(seed))


def initial_seed() -> int:
    return _CURRENT.seed


def host_generator() -> np.random.Generator:
    return _CURRENT.host


def uniform(shape, dtype, dev) -> object:
    """Uniform [0, 1) numbers of ``dtype`` on device ``dev``, from the current stream."""
    return _CURRENT.uniform(shape, dtype, dev)


def get_state() -> dict:
    """Plain-data state of the host generator (and of any device generator in use)."""
    return _CURRENT.get_state()


def set_state(state: dict) -> None:
    global _CURRENT
    _CURRENT = Stream.from_state(state)


def member_streams() -> list | None:
    """The streams of the population members drawing now (see :func:`members`), or None."""
    return _MEMBERS


@contextlib.contextmanager
def members(streams: list):
    """Inside the block, a population's dropout draws member p's masks from ``streams[p]``."""
    global _MEMBERS
    prev = _MEMBERS
    _MEMBERS = list(streams)
    try:
        yield
    finally:
        _MEMBERS = prev


@contextlib.contextmanager
def using(stream: Stream):
    """Inside the block, ``stream`` is the current stream (a population trained member by member
    draws member k's dropout masks from member k's own stream)."""
    global _CURRENT
    saved = _CURRENT
    _CURRENT = stream
    try:
        yield
    finally:
        _CURRENT = saved


@contextlib.contextmanager
def preserved():
    """Leave the current stream as it was, whatever is drawn inside the block."""
    global _CURRENT
    saved = _CURRENT
    state = saved.host.bit_generator.state
    try:
        yield
    finally:
        _CURRENT = saved
        saved.host.bit_generator.state = state
