"""Helpers for testing polydl code and plugins.

``gradcheck(fn, *inputs)`` compares the gradients that autodiff gives for ``fn`` with float64
central differences: ∂f/∂xᵢ ≈ (f(x + h eᵢ) − f(x − h eᵢ)) / 2h.

``registered_plugin(obj)`` registers a plugin object for the duration of a ``with`` block (a
test) and then puts every registry back as it was.
"""
from __future__ import annotations

import contextlib

import numpy as np

from . import backend
from .tensor import Tensor, no_grad

__all__ = ["gradcheck", "GradcheckError", "registered_plugin"]


class GradcheckError(AssertionError):
    """Autodiff and finite differences disagree."""


def _scalarize(out, weights):
    """Reduce ``out`` to a scalar with fixed random weights, so every output element is checked."""
    if out.data.size == 1:
        return out.sum()
    return (out * weights).sum()


def gradcheck(fn, *inputs, eps: float = 1e-6, atol: float = 1e-6, rtol: float = 1e-4, seed: int = 0,
              raise_exception: bool = True) -> bool:
    """Check d fn(*inputs) / d input for every input tensor that requires grad.

    Inputs are cast to float64 on their device. A non-scalar output is reduced with fixed random
    weights. Keep inputs away from kinks (ReLU at 0, ties in max). Returns True, or raises
    ``GradcheckError`` naming the input and the worst element."""
    # contiguous float64 copies: perturbing them in place through a flat view must reach fn,
    # and must leave the caller's arrays alone
    inputs = [Tensor(backend.get_array_module(x.data).array(x.data, dtype=np.float64, order="C"),
                     requires_grad=x.requires_grad)
              if isinstance(x, Tensor) and x.dtype.kind == "f" else x for x in inputs]
    checked = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise ValueError("gradcheck needs at least one input tensor with requires_grad=True")
    out = fn(*inputs)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, not {type(out).__name__}")
    xp = backend.get_array_module(out.data)
    rng = np.random.default_rng(seed)
    weights = Tensor(backend.to_device(rng.uniform(0.5, 1.5, out.shape), out.device)) if out.data.size > 1 else None
    for i in checked:
        inputs[i].grad = None
    loss = _scalarize(out, weights)
    loss.backward()
    for i in checked:
        x = inputs[i]
        analytic = backend.to_numpy(x.grad) if x.grad is not None else np.zeros(x.shape)
        numeric = np.zeros(x.shape)
        flat = x.data.reshape(-1)
        with no_grad():
            for j in range(flat.size):
                orig = flat[j].item()
                flat[j] = orig + eps
                fp = float(_scalarize(fn(*inputs), weights).item())
                flat[j] = orig - eps
                fm = float(_scalarize(fn(*inputs), weights).item())
                flat[j] = orig
                numeric.reshape(-1)[j] = (fp - fm) / (2 * eps)
        err = np.abs(analytic - numeric)
        bad = err > atol + rtol * np.abs(numeric)
        if bad.any():
            k = int(np.argmax(err - (atol + rtol * np.abs(numeric))))
            idx = np.unravel_index(k, x.shape) if x.shape else ()
            msg = (f"gradcheck failed for input {i} at index {tuple(int(v) for v in idx)}: autodiff "
                   f"{analytic.reshape(-1)[k]:.8g}, finite differences {numeric.reshape(-1)[k]:.8g} "
                   f"({int(bad.sum())} of {bad.size} elements differ)")
            if raise_exception:
                raise GradcheckError(msg)
            return False
    del xp
    return True


@contextlib.contextmanager
def registered_plugin(obj, name: str | None = None, *, distribution: str | None = None,
                      version: str | None = None):
    """Register ``obj`` (a module or an object with ``@polydl.hookimpl`` functions) as a polydl
    plugin inside the ``with`` block, exactly as an installed entry point would be::

        with polydl.testing.registered_plugin(my_plugin_module) as info:
            assert "cosine" in info.registered["schedules"]
            schedule = polydl.schedules.get("cosine", lr0=0.1, epochs=10)

    Everything it registers is validated at once; a problem (an invalid object, a name another
    plugin holds, a misspelt hook) raises ``polydl.plugins.PluginError``. On leaving the block the
    registries and the plugin manager are restored, overridden names included. If ``obj`` is
    already loaded (your plugin is installed, so its entry point loaded it), that registration is
    taken out for the block, so the test sees exactly what ``obj`` registers. Yields the plugin's
    ``PluginInfo``. ``name`` defaults to the module's ``__name__`` (or the class name)."""
    from . import plugins

    snap = plugins._snapshot()
    try:
        existing = plugins.plugin_manager().get_name(obj)
        if existing is not None:  # already loaded (e.g. installed): test a fresh registration
            plugins.unregister_plugin(existing)
        yield plugins.register_plugin(obj, name, distribution=distribution, version=version)
    finally:
        plugins._restore(snap)


# ---------------------------------------------------------------------------- devices in tests
def devices() -> list[str]:
    """The devices a test suite should run on: ``POLYDL_TEST_DEVICES`` (e.g. ``cpu`` or
    ``cpu,cuda``), else both ``cpu`` and ``cuda``. Use with :func:`require_device`::

        @pytest.fixture(params=polydl.testing.devices())
        def device(request):
            polydl.testing.require_device(request.param)
            return request.param
    """
    import os

    env = os.environ.get("POLYDL_TEST_DEVICES")
    return [d.strip() for d in env.split(",") if d.strip()] if env else ["cpu", "cuda"]


def require_device(name: str) -> None:
    """Skip the calling test (pytest) when device ``name`` is a GPU that is not available."""
    if name.startswith("cuda") and not backend.cuda_available():
        import pytest

        pytest.skip("no CUDA GPU (CuPy missing or no visible device)")
