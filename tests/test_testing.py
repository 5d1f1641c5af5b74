"""``polydl.testing.gradcheck`` passes correct gradients and catches wrong ones."""
from __future__ import annotations

import numpy as np
import pytest

import polydl
from polydl import backend
from polydl.tensor import _make
from polydl.testing import GradcheckError, gradcheck


def _square_with_backward(backward_factor):
    """x² whose backward is ``backward_factor(x) · g`` (2x is right)."""
    def fn(x):
        xd = x.data
        return _make(xd * xd, (x,), lambda g: (g * backward_factor(xd),))
    return fn


def _x(device, values=(0.5, -1.25, 2.0), dtype=np.float64):
    return polydl.tensor(np.asarray(values, dtype=dtype), device=device, requires_grad=True)


def test_passes_a_correct_backward(device):
    assert gradcheck(_square_with_backward(lambda xd: 2 * xd), _x(device)) is True


@pytest.mark.parametrize("wrong", [lambda xd: 3 * xd, lambda xd: xd, lambda xd: 2 * xd + 1e-3],
                         ids=["3x", "x", "2x+1e-3"])
def test_fails_a_wrong_backward(device, wrong):
    fn = _square_with_backward(wrong)
    with pytest.raises(GradcheckError, match="input 0"):
        gradcheck(fn, _x(device))
    assert gradcheck(fn, _x(device), raise_exception=False) is False
    assert issubclass(GradcheckError, AssertionError)


def test_fails_when_a_single_element_is_wrong(device):
    def wrong(xd):
        g = 2 * xd
        g[2] = 0.0
        return g

    with pytest.raises(GradcheckError, match=r"index \(2,\)"):
        gradcheck(_square_with_backward(wrong), _x(device))


def test_fails_when_only_the_second_input_is_wrong(device):
    def fn(a, b):
        ad, bd = a.data, b.data
        return _make(ad * bd, (a, b), lambda g: (g * bd, g * ad * 1.1))

    with pytest.raises(GradcheckError, match="input 1"):
        gradcheck(fn, _x(device), _x(device, (1.0, 2.0, 3.0)))


def test_fails_when_a_gradient_is_missing(device):
    def fn(a, b):
        ad, bd = a.data, b.data
        return _make(ad * bd, (a, b), lambda g: (g * bd, None))

    with pytest.raises(GradcheckError, match="input 1"):
        gradcheck(fn, _x(device), _x(device, (1.0, 2.0, 3.0)))


def test_checks_every_output_element(device):
    # the backward is wrong only for the second output element's contribution
    def fn(x):
        xd = x.data
        out = xd * xd

        def backward(g):
            gg = g.copy()
            gg[1] *= 0.5
            return (gg * 2 * xd,)
        return _make(out, (x,), backward)

    with pytest.raises(GradcheckError):
        gradcheck(fn, _x(device))


def test_float32_inputs_are_checked_in_float64(device):
    x = _x(device, dtype=np.float32)
    assert gradcheck(lambda a: (a ** 3).sum() * 0.1, x)
    assert x.dtype == np.float32


def test_inputs_are_not_modified(device):
    values = np.array([[0.5, -1.25], [2.0, 0.75]])
    x = polydl.tensor(values.copy(), device=device, requires_grad=True)
    gradcheck(lambda a: (a * a).sum(), x)
    np.testing.assert_array_equal(x.numpy(), values)


def test_non_contiguous_inputs(device):
    base = np.arange(1.0, 7.0).reshape(3, 2)
    x = polydl.tensor(backend.to_device(base, device).T, requires_grad=True)  # a transposed view
    assert gradcheck(lambda a: (a * a * a).sum(axis=0), x)
    x32 = polydl.tensor(backend.to_device(base.astype(np.float32), device).T, requires_grad=True)
    assert gradcheck(lambda a: (a * a).sum(), x32)


def test_non_tensor_and_constant_arguments_pass_through(device):
    labels = backend.to_device(np.array([1, 0]), device)
    assert gradcheck(lambda z, y: polydl.F.softmax_cross_entropy(z, y),
                     polydl.tensor(np.array([[0.1, 0.2], [0.3, -0.4]]), device=device, requires_grad=True), labels)
    const = polydl.tensor(np.array([1.0, 2.0, 3.0]), device=device)
    assert gradcheck(lambda a, c: a * c, _x(device), const)


def test_needs_an_input_that_requires_grad():
    with pytest.raises(ValueError, match="requires_grad"):
        gradcheck(lambda a: a * 2, polydl.tensor([1.0]))


def test_fn_must_return_a_tensor():
    with pytest.raises(TypeError, match="Tensor"):
        gradcheck(lambda a: 3.0, polydl.tensor([1.0], requires_grad=True))


def test_devices_follow_the_environment(monkeypatch):
    monkeypatch.delenv("POLYDL_TEST_DEVICES", raising=False)
    assert polydl.testing.devices() == ["cpu", "cuda"]
    monkeypatch.setenv("POLYDL_TEST_DEVICES", "cpu, cuda:1")
    assert polydl.testing.devices() == ["cpu", "cuda:1"]


def test_require_device_skips_only_missing_gpus(monkeypatch):
    import pytest as _pytest

    polydl.testing.require_device("cpu")  # never skips
    monkeypatch.setattr(polydl.backend, "cuda_available", lambda: False)
    with _pytest.raises(_pytest.skip.Exception, match="no CUDA GPU"):
        polydl.testing.require_device("cuda")


# ---------------------------------------------------------------------------- gradients that fool nothing
def test_a_nan_gradient_fails(device):
    """NaN compares False with any tolerance: a NaN autodiff gradient must still fail."""
    fn = _square_with_backward(lambda xd: xd * np.nan)
    with pytest.raises(GradcheckError, match=r"input 0: autodiff gives nan at index \(0,\)"):
        gradcheck(fn, _x(device))
    assert gradcheck(fn, _x(device), raise_exception=False) is False


def test_infinite_gradients_and_finite_differences_fail(device):
    with pytest.raises(GradcheckError, match=r"autodiff gives -inf at index \(1,\)"):
        gradcheck(_square_with_backward(lambda xd: np.where(xd == -1.25, -np.inf, 2 * xd)), _x(device))

    def blows_up(x):  # finite at the input, infinite one step h away: its differences are not finite
        xd = x.data
        return _make(x.xp.where(xd > 0.5, np.inf, 0.0), (x,), lambda g: (g * 0,))

    with pytest.raises(GradcheckError, match=r"finite differences give (inf|nan) at index \(0,\)"):
        gradcheck(blows_up, _x(device))


def test_an_input_that_receives_no_gradient_fails_unless_allowed(device):
    x, unused = _x(device), _x(device, (1.0, 2.0, 3.0))
    with pytest.raises(GradcheckError, match=r"input 1: it receives no gradient \(its .grad stays None after "
                                             r"backward\).*allow_unused=True"):
        gradcheck(lambda a, b: a * a, x, unused)
    assert gradcheck(lambda a, b: a * a, x, unused, allow_unused=True)
    # allowed, it still has to be truly unused: an input that matters but gets no gradient fails
    with pytest.raises(GradcheckError, match=r"input 1 at index"):
        gradcheck(lambda a, b: a * polydl.tensor(b.data), x, unused, allow_unused=True)


class _RMSNorm(polydl.nn.Module):
    """y = x / √(mean(x²) + ε) · g, where g's gradient is multiplied by ``g_error`` (1 is right)."""

    def __init__(self, n, g_error=1.0, device="cpu"):
        rng = np.random.default_rng(3)
        self.g = polydl.Parameter(backend.to_device(rng.uniform(0.5, 2.0, n).astype(np.float32), device))
        self.g_error = g_error

    def forward(self, x):
        rms = polydl.F.sqrt(polydl.F.mean(x * x, axis=-1, keepdims=True) + 1e-5)
        g = _make(self.g.data, (self.g,), lambda grad: (grad * self.g_error,))  # the identity, maybe wrong
        return x / rms * g


def test_a_parameter_the_function_does_not_use_fails(device):
    """``gradcheck(lambda g: norm(x), norm.g)`` checks a copy of g that the function ignores: it
    used to pass with a wrong γ gradient (no gradient counted as zeros, and so did the finite
    differences)."""
    norm = _RMSNorm(4, g_error=2.0, device=device)
    x = polydl.tensor(np.random.default_rng(4).normal(size=(3, 4)), device=device)
    with pytest.raises(GradcheckError, match="input 0: it receives no gradient.*gradcheck_module"):
        gradcheck(lambda g: norm(x), norm.g)


def test_gradcheck_module_checks_every_parameter_and_the_input(device):
    x = polydl.tensor(np.random.default_rng(4).normal(size=(3, 4)), device=device, requires_grad=True)
    assert polydl.testing.gradcheck_module(_RMSNorm(4, device=device), x)
    wrong = polydl.nn.Sequential(polydl.nn.Linear(4, 4, device=device), _RMSNorm(4, g_error=2.0, device="cpu").to(device=device))
    with pytest.raises(GradcheckError, match=r"parameter '1.g' at index"):
        polydl.testing.gradcheck_module(wrong, x)
    assert polydl.testing.gradcheck_module(wrong, x, raise_exception=False) is False


def test_gradcheck_module_restores_the_module_even_when_it_fails(device):
    """float32 parameters stay float32 and unchanged, BatchNorm's running averages do not move, and
    the module holds its own tensors again, after a passing and after a failing check."""
    model = polydl.nn.Sequential(polydl.nn.Linear(4, 3, device=device), polydl.nn.BatchNorm(3, device=device),
                                 _RMSNorm(3, g_error=1.5, device=device))
    before = {name: t for name, t in [*model.named_parameters(), *model.named_buffers()]}
    values = model.state_dict()
    x = polydl.tensor(np.random.default_rng(5).normal(size=(6, 4)), device=device)
    with pytest.raises(GradcheckError, match="parameter '2.g'"):
        polydl.testing.gradcheck_module(model, x)
    model[2].g_error = 1.0
    assert polydl.testing.gradcheck_module(model, x)
    after = dict([*model.named_parameters(), *model.named_buffers()])
    assert all(after[name] is t for name, t in before.items())
    for name, v in model.state_dict().items():
        np.testing.assert_array_equal(v, values[name])
        assert v.dtype == np.float32, name


def test_gradcheck_module_needs_a_module_and_something_to_check():
    with pytest.raises(TypeError, match="needs a polydl.nn.Module"):
        polydl.testing.gradcheck_module(lambda x: x, polydl.tensor([1.0], requires_grad=True))
    with pytest.raises(ValueError, match="parameters or an input tensor"):
        polydl.testing.gradcheck_module(polydl.nn.ReLU(), polydl.tensor([1.0]))
