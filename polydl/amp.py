"""Mixed precision: float32 master weights, half-precision matrix products, loss scaling.

Inside ``autocast("float16")`` (or ``"bfloat16"``) the matrix products of ``linear`` run in the
half dtype and produce half activations, while the parameters, their gradients and the optimizer
stay float32. Batch normalization computes its statistics in its parameters' dtype (float32) and
softmax cross-entropy works in float32 whatever the dtype of the scores.

float16 gradients underflow, so the loss is multiplied by a scale S before ``backward()`` and the
gradients divided by S before the step (dynamic loss scaling): a step whose gradients are not
finite is skipped and S halved; after ``growth_interval`` finite steps in a row S doubles.
bfloat16 has float32's exponent range and needs no scaling.

    scaler = GradScaler("float16")
    with autocast("float16"):
        loss = loss_fn(model(x), y)
    scaler.scale(loss).backward()
    scaler.step(optimizer)        # unscale, check, step (or skip)
"""
from __future__ import annotations

import contextlib
import math

import numpy as np

__all__ = ["autocast", "current", "resolve", "GradScaler", "HALF_DTYPES"]

HALF_DTYPES = ("float16", "bfloat16")


class _State:
    dtype = None  # the compute dtype of matrix products, or None (no autocast)


_STATE = _State()


def resolve(name) -> np.dtype:
    """The NumPy dtype for ``name``: float16 is NumPy's; bfloat16 comes from ``ml_dtypes``
    (NumPy has none of its own; CuPy 14+ uses the same type)."""
    if isinstance(name, np.dtype):
        return name
    if name == "bfloat16":
        try:
            import ml_dtypes
        except ImportError:
            raise ValueError("dtype bfloat16 needs the ml_dtypes package (pip install ml_dtypes) and, on CUDA, "
                             "CuPy 14 or newer; or use --dtype float16") from None
        return np.dtype(ml_dtypes.bfloat16)
    dt = np.dtype(name)
    if dt.kind != "f":
        raise ValueError(f"mixed precision needs a floating dtype, not {dt}")
    return dt


def current():
    """The autocast compute dtype, or None."""
    return _STATE.dtype


@contextlib.contextmanager
def autocast(dtype="float16", enabled: bool = True):
    """Run matrix products in ``dtype`` (float16 or bfloat16) inside the block."""
    prev = _STATE.dtype
    _STATE.dtype = resolve(dtype) if enabled and dtype is not None else None
    try:
        yield
    finally:
        _STATE.dtype = prev


class GradScaler:
    """Dynamic loss scaling for float16 (a no-op for other dtypes).

    ``scale(loss)`` gives loss·S; ``step(optimizer)`` divides the flat gradient buffers by S and
    steps only if they are all finite, then updates S. Returns whether the step was taken."""

    def __init__(self, dtype="float16", init_scale: float = 2.0 ** 15, growth_factor: float = 2.0,
                 backoff_factor: float = 0.5, growth_interval: int = 2000, enabled: bool | None = None):
        dt = resolve(dtype) if dtype is not None else None
        self.enabled = (dt == np.float16) if enabled is None else bool(enabled)
        for name, v, ok in (("init_scale", init_scale, init_scale > 0), ("growth_factor", growth_factor, growth_factor > 1),
                            ("backoff_factor", backoff_factor, 0 < backoff_factor < 1),
                            ("growth_interval", growth_interval, growth_interval >= 1)):
            if not ok or not math.isfinite(v):
                raise ValueError(f"GradScaler {name} is out of range: {v}")
        self.scale_value = float(init_scale)
        self.growth_factor = float(growth_factor)
        self.backoff_factor = float(backoff_factor)
        self.growth_interval = int(growth_interval)
        self.good_steps = 0
        self.skipped = 0

    def scale(self, loss):
        return loss * self.scale_value if self.enabled else loss

    def unscale_and_check(self, optimizer) -> bool:
        """Divide every flat gradient buffer by S; True if all are finite."""
        if not self.enabled:
            return True
        finite = True
        inv = 1.0 / self.scale_value
        for group in optimizer.groups:
            group.grad *= group.grad.dtype.type(inv)
            finite = finite and bool(group.xp.isfinite(group.grad).all())  # one sync per buffer
        return finite

    def step(self, optimizer) -> bool:
        """Step ``optimizer`` if the unscaled gradients are finite, else count the mini-batch as
        skipped (``optimizer.skip()``: its schedule moves on, its update count does not)."""
        ok = self.unscale_and_check(optimizer)
        if ok:
            optimizer.step()
        else:
            optimizer.skip()
        self.update(ok)
        return ok

    def update(self, finite: bool) -> None:
        if not self.enabled:
            return
        if finite:
            self.good_steps += 1
            if self.good_steps >= self.growth_interval:
                self.scale_value *= self.growth_factor
                self.good_steps = 0
        else:
            self.scale_value *= self.backoff_factor
            self.good_steps = 0
            self.skipped += 1

    def state_dict(self) -> dict:
        return {"scale": self.scale_value, "good_steps": self.good_steps, "skipped": self.skipped,
                "enabled": self.enabled}

    def load_state_dict(self, sd: dict) -> None:
        self.scale_value = float(sd["scale"])
        self.good_steps = int(sd["good_steps"])
        self.skipped = int(sd.get("skipped", 0))

