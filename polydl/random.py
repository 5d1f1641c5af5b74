"""Every random number polydl draws comes from here, so ``manual_seed(n)`` fixes them all.

Weight initialisation and data shuffling draw on the host (NumPy's PCG64), so a seeded model
starts from the same weights on every device; dropout masks are drawn on the device that holds
the activations. ``get_state()``/``set_state()`` give plain data for checkpoints.
"""
from __future__ import annotations

import numpy as np

from . import backend

__all__ = ["manual_seed", "host_generator", "uniform", "get_state", "set_state", "initial_seed"]

_SEED = 0
_HOST = np.random.default_rng(_SEED)
_DEVICE_RNG: dict = {}   # Device -> cupy RandomState, created on first use


def manual_seed(seed: int) -> None:
    """Seed the host generator and every device generator polydl uses."""
    global _SEED, _HOST
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, not {seed!r}")
    _SEED = int(seed)
    _HOST = np.random.default_rng(_SEED)
    _DEVICE_RNG.clear()


def initial_seed() -> int:
    return _SEED


def host_generator() -> np.random.Generator:
    return _HOST


def _device_rng(dev):
    rng = _DEVICE_RNG.get(dev)
    if rng is None:
        cp = dev.xp
        with cp.cuda.Device(dev.index if dev.index is not None else cp.cuda.Device().id):
            rng = cp.random.RandomState(_SEED + 7919 * (1 + (dev.index or 0)))
        _DEVICE_RNG[dev] = rng
    return rng


def uniform(shape, dtype, dev) -> object:
    """Uniform [0, 1) numbers of ``dtype`` on device ``dev``."""
    dev = backend.device(dev)
    if dev.type == "cpu":
        return _HOST.random(shape, dtype=np.float32 if np.dtype(dtype) == np.float32 else np.float64)
    return _device_rng(dev).random_sample(shape, dtype=np.dtype(dtype) if np.dtype(dtype) in (np.float32, np.float64) else np.float32)


def get_state() -> dict:
    """Plain-data state of the host generator (and of any device generator in use)."""
    state = {"seed": _SEED, "host": _HOST.bit_generator.state}
    devices = {}
    for dev, rng in _DEVICE_RNG.items():
        st = rng.get_state() if hasattr(rng, "get_state") else None
        if st is not None:
            devices[str(dev)] = [backend.to_numpy(x).tolist() if hasattr(x, "shape") else x for x in st]
    if devices:
        state["devices"] = devices
    return state


def set_state(state: dict) -> None:
    global _SEED, _HOST
    _SEED = int(state["seed"])
    _HOST = np.random.default_rng()
    _HOST.bit_generator.state = state["host"]
    _DEVICE_RNG.clear()
    for name, st in state.get("devices", {}).items():
        dev = backend.device(name)
        rng = _device_rng(dev)
        if hasattr(rng, "set_state"):
            rng.set_state(tuple(st))
