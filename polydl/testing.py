"""Helpers for testing polydl code and plugins.

``gradcheck(fn, *inputs)`` compares the gradients that autodiff gives for ``fn`` with float64
central differences: ∂f/∂xᵢ ≈ (f(x + h eᵢ) − f(x − h eᵢ)) / 2h. ``gradcheck_module(module,
*inputs)`` does the same for every parameter of a module and its inputs in one call.

``registered_plugin(obj)`` registers a plugin object for the duration of a ``with`` block (a
test) and then puts every registry back as it was.
"""
from __future__ import annotations

import contextlib

import numpy as np

from . import backend
from .tensor import Parameter, Tensor, no_grad

__all__ = ["gradcheck", "gradcheck_module", "GradcheckError", "registered_plugin", "devices", "require_device"]


class GradcheckError(AssertionError):
    """Autodiff and finite differences disagree, or a checked tensor gets no (finite) gradient."""


def _scalarize(out, weights):
    """Reduce ``out`` to a scalar with fixed random weights, so every output element is checked."""
    if out.data.size == 1:
        return out.sum()
    return (out * weights).sum()


def _float64(x, cls=None):
    """A contiguous float64 copy of the floating tensor ``x`` on its device (perturbing it in place
    through a flat view reaches the function, and leaves the caller's array alone); anything
    else unchanged."""
    if not isinstance(x, Tensor) or x.dtype.kind != "f":
        return x
    data = backend.get_array_module(x.data).array(x.data, dtype=np.float64, order="C")
    if cls is Parameter or (cls is None and isinstance(x, Parameter)):
        return Parameter(data) if x.requires_grad else Tensor(data)
    return Tensor(data, requires_grad=x.requires_grad)


def _index(flat_k, shape):
    return tuple(int(v) for v in np.unravel_index(flat_k, shape)) if shape else ()


def _check(evaluate, leaves, labels, eps, atol, rtol, seed, allow_unused):
    """Autodiff against central differences for each tensor in ``leaves`` (float64 tensors that
    ``evaluate()`` computes with); the first disagreement as a message, or None."""
    out = evaluate()
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, not {type(out).__name__}")
    rng = np.random.default_rng(seed)
    weights = Tensor(backend.to_device(rng.uniform(0.5, 1.5, out.shape), out.device)) if out.data.size > 1 else None
    for x in leaves:
        x.grad = None
    if out.requires_grad:
        _scalarize(out, weights).backward()
    for x, label in zip(leaves, labels, strict=True):
        if x.grad is None and not allow_unused:
            return (f"gradcheck failed for {label}: it receives no gradient (its .grad stays None after backward), "
                    "so fn does not compute with it or an op drops its gradient; fn must use the tensors gradcheck "
                    "passes it (float64 copies of the inputs; for a module's parameters use gradcheck_module), "
                    "or pass allow_unused=True for an input that truly does not matter")
        analytic = backend.to_numpy(x.grad) if x.grad is not None else np.zeros(x.shape)
        numeric = np.zeros(x.shape)
        flat = x.data.reshape(-1)
        with no_grad():
            for j in range(flat.size):
                orig = flat[j].item()
                flat[j] = orig + eps
                fp = float(_scalarize(evaluate(), weights).item())
                flat[j] = orig - eps
                fm = float(_scalarize(evaluate(), weights).item())
                flat[j] = orig
                numeric.reshape(-1)[j] = (fp - fm) / (2 * eps)
        for name, values in (("autodiff gives", analytic), ("finite differences give", numeric)):
            bad = ~np.isfinite(values)
            if bad.any():
                k = int(np.flatnonzero(bad.reshape(-1))[0])
                return (f"gradcheck failed for {label}: {name} {values.reshape(-1)[k]} at index {_index(k, x.shape)} "
                        f"({int(bad.sum())} of {bad.size} elements not finite)")
        err = np.abs(analytic - numeric)
        bad = err > atol + rtol * np.abs(numeric)
        if bad.any():
            k = int(np.argmax(err - (atol + rtol * np.abs(numeric))))
            return (f"gradcheck failed for {label} at index {_index(k, x.shape)}: autodiff "
                    f"{analytic.reshape(-1)[k]:.8g}, finite differences {numeric.reshape(-1)[k]:.8g} "
                    f"({int(bad.sum())} of {bad.size} elements differ)")
    return None


def _result(message, raise_exception) -> bool:
    if message is None:
        return True
    if raise_exception:
        raise GradcheckError(message)
    return False


def gradcheck(fn, *inputs, eps: float = 1e-6, atol: float = 1e-6, rtol: float = 1e-4, seed: int = 0,
              raise_exception: bool = True, allow_unused: bool = False) -> bool:
    """Check d fn(*inputs) / d input for every input tensor that requires grad.

    ``fn`` is called with float64 copies of the inputs (on their devices), so it must compute
    with its arguments. A non-scalar output is reduced with fixed random weights. Keep inputs
    away from kinks (ReLU at 0, ties in max). The check fails when the two disagree, when either
    is NaN or infinite, and when an input receives no gradient at all (its ``.grad`` stays None:
    ``fn`` ignores it, or an op drops its gradient); ``allow_unused=True`` lets such an input pass
    as long as its finite differences are zero too. Returns True, or raises ``GradcheckError``
    naming the input and the element (False instead with ``raise_exception=False``)."""
    inputs = [_float64(x, Tensor) for x in inputs]
    checked = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise ValueError("gradcheck needs at least one input tensor with requires_grad=True")
    message = _check(lambda: fn(*inputs), [inputs[i] for i in checked], [f"input {i}" for i in checked],
                     eps, atol, rtol, seed, allow_unused)
    return _result(message, raise_exception)


def gradcheck_module(module, *inputs, eps: float = 1e-6, atol: float = 1e-6, rtol: float = 1e-4, seed: int = 0,
                     raise_exception: bool = True, allow_unused: bool = False) -> bool:
    """:func:`gradcheck` of ``module(*inputs)`` with respect to every parameter of ``module`` (that
    requires grad) and every input tensor that requires grad, in one call::

        assert polydl.testing.gradcheck_module(RMSNorm(4), x)

    For the check, float64 copies of the module's parameters and buffers take their places; the
    originals are put back afterwards, also when the check fails, so the module (its dtype, its
    values, BatchNorm's running averages) is as it was. A failure names the parameter by its
    dotted name (``parameter '1.gamma'``); the keywords are gradcheck's."""
    from .nn.module import Module

    if not isinstance(module, Module):
        raise TypeError(f"gradcheck_module needs a polydl.nn.Module, not {type(module).__name__}")
    xs = [_float64(x, Tensor) for x in inputs]
    swapped = []  # (owner, attribute, original), in the order they were replaced
    try:
        seen = set()
        for _, owner in module.named_modules():
            if id(owner) in seen:
                continue
            seen.add(id(owner))
            for attr, value in list(vars(owner).items()):
                if isinstance(value, Tensor):
                    swapped.append((owner, attr, value))
                    setattr(owner, attr, _float64(value) if value.dtype.kind == "f" else value)
        leaves = [(f"input {i}", x) for i, x in enumerate(xs) if isinstance(x, Tensor) and x.requires_grad]
        leaves += [(f"parameter '{name}'", p) for name, p in module.named_parameters() if p.requires_grad]
        if not leaves:
            raise ValueError("gradcheck_module needs a module with parameters or an input tensor with "
                             "requires_grad=True")
        message = _check(lambda: module(*xs), [t for _, t in leaves], [label for label, _ in leaves],
                         eps, atol, rtol, seed, allow_unused)
    finally:
        for owner, attr, value in reversed(swapped):
            setattr(owner, attr, value)
    return _result(message, raise_exception)


@contextlib.contextmanager
def registered_plugin(obj, name: str | None = None, *, distribution: str | None = None,
                      version: str | None = None):
    """Register ``obj`` (a module or an object with ``@polydl.hookimpl`` functions) as a polydl
    plugin inside the ``with`` block, exactly as an installed entry point would be::

        with polydl.testing.registered_plugin(my_plugin_module) as info:
            assert "warmup_cosine" in info.registered["schedules"]
            schedule = polydl.schedules.get("warmup_cosine", lr0=0.1, epochs=10)

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
