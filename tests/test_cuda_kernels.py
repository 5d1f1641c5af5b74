"""The fused CUDA kernels (``polydl.cuda_kernels``) against the NumPy forms of the same ops.

On the ``cuda`` device (a GPU, or the CuPy stand-in with ``--cuda-standin``; skipped otherwise)
each op runs as polydl runs it, through the kernels, and again with the kernels off
(``backend.fused_kernel`` and ``backend.raw_kernel`` giving None: the NumPy form on CuPy); on
``cpu`` the same comparison covers the CPU kernels. Without a GPU the kernels' CUDA sources also
run here, on the CPU (``cuda_emulator``: the same launch code in ``functional`` and ``optim``
with NumPy arrays, the raw kernels' threads as coroutines, every argument checked against the
kernel's C signature).
"""
from __future__ import annotations

import contextlib

import cuda_emulator
import numpy as np
import pytest

import polydl
from polydl import backend, cpu_kernels, cuda_kernels, optim
from polydl import functional as F
from polydl.optim.optimizers import _cast_numpy
from polydl.tensor import Parameter, Tensor

needs_cxx = pytest.mark.skipif(not cuda_emulator.available(), reason="needs a C++ compiler (g++)")
OUTPUTS = ("out", "stats", "gx", "grads", "p", "loss")


@contextlib.contextmanager
def numpy_forms():
    """Every op and step in its NumPy form: no CPU kernels, no CUDA kernels."""
    with pytest.MonkeyPatch.context() as mp, cpu_kernels.use("off"):
        mp.setattr(backend, "fused_kernel", lambda name: None)
        mp.setattr(backend, "raw_kernel", lambda name, x_dtype, t_dtype: None)
        yield


@contextlib.contextmanager
def emulated():
    """``backend``'s kernels compiled for the CPU (outputs filled with NaN before each launch)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(backend, "fused_kernel", cuda_emulator.fused_kernel)
        mp.setattr(backend, "raw_kernel", lambda name, x, t: cuda_emulator.raw_kernel(name, x, t, OUTPUTS))
        yield


def assert_close(got, want, dtype, what):
    got, want = backend.to_numpy(got).astype(np.float64), backend.to_numpy(want).astype(np.float64)
    assert got.shape == want.shape, what
    assert np.isfinite(got).all() == np.isfinite(want).all(), f"{what}: NaN or inf where the NumPy form has none"
    tol = {"float64": 1e-12, "float32": 1e-5, "float16": 2e-3, "bfloat16": 1.6e-2}[np.dtype(dtype).name]
    scale = max(np.abs(want).max(), 1e-30)
    err = np.abs(got - want).max() / scale
    assert err <= tol, f"{what}: max |Δ| / max |ref| = {err:.2e} > {tol:.0e}"


def _dtype(name):
    return polydl.amp.resolve(name) if name == "bfloat16" else np.dtype(name)


# ---------------------------------------------------------------------------- batch normalization
def bn_case(members, x_dtype, t_dtype, seed=0, m=37, f=70, P=3):
    """Inputs of a batch normalization: x (m, F) or (P, m, F), γ, β, the running averages and the
    output's gradient; F and m not multiples of the kernels' block (32 × 16)."""
    rng = np.random.default_rng(seed)
    shape, vec = ((P, m, f), (P, f)) if members else ((m, f), (f,))
    x = (rng.standard_normal(shape) * 2 + rng.uniform(-3, 3, f)).astype(np.float32).astype(x_dtype)
    vecs = [rng.uniform(0.5, 1.5, vec), rng.standard_normal(vec) * 0.3, rng.standard_normal(vec) * 0.1,
            rng.uniform(0.5, 2.0, vec)]
    w = rng.standard_normal(shape).astype(np.float32)
    return x, [v.astype(t_dtype) for v in vecs], w


def bn_run(case, device, training, relu, call):
    """Forward and backward of one batch normalization; the output, the running averages and
    the gradients of x, γ and β as NumPy arrays."""
    x, (g, b, rm, rv), w = case
    to = (lambda a: backend.to_device(a.copy(), device))
    xt = Tensor(to(x), requires_grad=True)
    gt, bt = Parameter(to(g)), Parameter(to(b))
    rmt, rvt = Tensor(to(rm)), Tensor(to(rv))
    out = call(xt, gt, bt, rmt, rvt, training, 0.9, 1e-5, relu)
    (out * Tensor(to(w).astype(x.dtype))).sum().backward()
    return [backend.to_numpy(a) for a in (out.data, rmt.data, rvt.data, xt.grad, gt.grad, bt.grad)]


def bn_public(x, g, b, rm, rv, training, momentum, eps, relu):
    return F.batch_norm(x, g, b, rm, rv, training, momentum, eps, activation="relu" if relu else None)


BN_NAMES = ("output", "running mean", "running variance", "dx", "dγ", "dβ")


@pytest.mark.parametrize("members", [False, True], ids=["model", "population"])
@pytest.mark.parametrize("relu", [False, True], ids=["bn", "bn-relu"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_batch_norm_matches_the_numpy_form(device, members, relu, training, dtype):
    case = bn_case(members, dtype, dtype)
    fused = bn_run(case, device, training, relu, bn_public)
    with numpy_forms():
        ref = bn_run(case, device, training, relu, bn_public)
    for got, want, what in zip(fused, ref, BN_NAMES):
        assert_close(got, want, dtype, what)


@pytest.mark.parametrize("members", [False, True], ids=["model", "population"])
@pytest.mark.parametrize("relu", [False, True], ids=["bn", "bn-relu"])
@pytest.mark.parametrize("half", ["float16", "bfloat16"])
def test_batch_norm_of_half_activations_matches_the_numpy_form(device, members, relu, half):
    if device == "cpu":
        pytest.skip("half activations have no CPU kernel: the NumPy form is all there is")
    case = bn_case(members, _dtype(half), np.float32)
    fused = bn_run(case, device, True, relu, bn_public)
    with numpy_forms():
        ref = bn_run(case, device, True, relu, bn_public)
    for got, want, what in zip(fused, ref, BN_NAMES):
        assert got.dtype == want.dtype, what
        assert_close(got, want, half if what in ("output", "dx") else "float32", what)


# ---------------------------------------------------------------------------- softmax cross-entropy
def xent_case(members, dtype, seed=0, m=300, c=10, P=3):
    rng = np.random.default_rng(seed)
    z = (rng.standard_normal((P, m, c) if members else (m, c)) * 3).astype(np.float32).astype(dtype)
    return z, rng.integers(0, c, m), rng.uniform(0.5, 2.0, P if members else ())


def xent_run(case, device, call):
    z, y, seed = case
    zt = Tensor(backend.to_device(z.copy(), device), requires_grad=True)
    loss = call(zt, backend.to_device(y, device))
    loss.backward(Tensor(backend.to_device(np.asarray(seed, dtype=loss.dtype), device)))
    return backend.to_numpy(loss.data), backend.to_numpy(zt.grad)


@pytest.mark.parametrize("members", [False, True], ids=["model", "population"])
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
def test_softmax_cross_entropy_matches_the_numpy_form(device, members, dtype):
    dt = _dtype(dtype)
    case = xent_case(members, dt)
    loss, grad = xent_run(case, device, F.softmax_cross_entropy)
    with numpy_forms():
        ref_loss, ref_grad = xent_run(case, device, F.softmax_cross_entropy)
    assert loss.shape == ref_loss.shape and loss.dtype == ref_loss.dtype and grad.dtype == dt
    assert_close(loss, ref_loss, "float32" if dt.itemsize < 4 else dt, "loss")
    assert_close(grad, ref_grad, dt, "dz")


def test_softmax_cross_entropy_label_out_of_range_gives_nan_on_cuda(device):
    if device == "cpu":
        pytest.skip("on the CPU a label out of range is refused with one line")
    z = Tensor(backend.to_device(np.zeros((4, 3), np.float32), device))
    loss = F.softmax_cross_entropy(z, backend.to_device(np.array([0, 1, 3, 2]), device))
    assert np.isnan(float(loss.item()))


# ---------------------------------------------------------------------------- optimizers
OPTIMIZERS = {
    "sgd": (optim.SGD, {"lr": 0.1}),
    "momentum": (optim.Momentum, {"lr": 0.05, "beta": 0.8}),
    "rmsprop": (optim.RMSprop, {"lr": 0.01, "beta": 0.9, "eps": 1e-6}),
    "adam": (optim.Adam, {"lr": 0.01, "beta1": 0.85, "eps": 1e-7}),
}


def per_member(kwargs, P):
    """The same hyperparameters, one value per member (each a little different)."""
    return {k: [v * (1 - 0.05 * i) for i in range(P)] for k, v in kwargs.items()}


def opt_run(name, device, members, steps=3, dtype="float32"):
    """``steps`` updates of an optimizer over a Linear layer (a population of 3 with
    hyperparameters per member); its parameters and state afterwards, as NumPy arrays."""
    cls, kwargs = OPTIMIZERS[name]
    P = 3 if members else None
    polydl.manual_seed(0)
    layer = polydl.nn.Linear(40, 7, population=P, dtype=dtype, device=device)
    opt = cls(layer.parameters(), **(per_member(kwargs, P) if members else kwargs))
    rng = np.random.default_rng(5)
    for _ in range(steps):
        for group in opt.groups:
            group.grad[...] = backend.to_device(rng.standard_normal(group.grad.shape).astype(dtype), device)
        opt.step()
    return [backend.to_numpy(g.data) for g in opt.groups] + [backend.to_numpy(v) for s in opt.state
                                                              for k, v in sorted(s.items()) if k != "tmp"]


@pytest.mark.parametrize("members", [False, True], ids=["model", "population"])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_optimizer_step_matches_the_numpy_form(device, name, members, dtype):
    fused = opt_run(name, device, members, dtype=dtype)
    with numpy_forms():
        ref = opt_run(name, device, members, dtype=dtype)
    assert len(fused) == len(ref)
    for got, want in zip(fused, ref):
        assert_close(got, want, dtype, f"{name} parameters and state")


def test_a_training_step_on_cuda_runs_the_fused_kernels(device, monkeypatch):
    """An mlp's step on CUDA (model and population) launches the fused kernels, not the NumPy forms."""
    if device == "cpu":
        pytest.skip("the CUDA kernels run on CUDA")
    used = []
    raw, fused = backend.raw_kernel, backend.fused_kernel
    monkeypatch.setattr(backend, "raw_kernel", lambda name, *dt: used.append(name) or raw(name, *dt))
    monkeypatch.setattr(backend, "fused_kernel", lambda name: used.append(name) or fused(name))
    for P in (None, 4):
        model = polydl.nn.mlp((16, 32, 5), population=P).to(device)
        opt = optim.Adam(model.parameters(), lr=1e-3)
        x = Tensor(backend.to_device(np.random.default_rng(0).standard_normal((8, 16)).astype(np.float32), device))
        y = backend.to_device(np.arange(8) % 5, device)
        F.softmax_cross_entropy(model(x), y).backward()
        opt.step()
    assert {"bn_forward_train", "bn_backward_train", "softmax_xent", "softmax_xent_backward", "adam"} <= set(used)


# ---------------------------------------------------------------------------- the sources on the CPU
@needs_cxx
def test_half_conversions_round_to_nearest_even():
    """The raw kernels' float16 and bfloat16 conversions: every 16-bit value to float, and floats
    (exact halves, midpoints between neighbours, their neighbours, random ones, edges) back."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    src = (cuda_emulator.HEADER + cuda_kernels.PRELUDE.split("#if POLYDL_X_KIND")[0] + """
extern "C" void to_float(const unsigned short* h, float* f, long long n, int bf) {
    for (long long i = 0; i < n; ++i) f[i] = bf ? polydl_bf16_to_float(h[i]) : polydl_half_to_float(h[i]);
}
extern "C" void from_float(const float* f, unsigned short* h, long long n, int bf) {
    for (long long i = 0; i < n; ++i) h[i] = bf ? polydl_float_to_bf16(f[i]) : polydl_float_to_half(f[i]);
}
""")
    lib = cuda_emulator._build(src, "conversions")
    import ctypes

    bits = np.arange(2 ** 16, dtype=np.uint16)
    rng = np.random.default_rng(0)
    for bf, dt in ((0, np.dtype(np.float16)), (1, np.dtype(ml_dtypes.bfloat16))):
        vals = np.empty(bits.size, np.float32)
        lib.to_float(ctypes.c_void_p(bits.ctypes.data), ctypes.c_void_p(vals.ctypes.data), ctypes.c_longlong(bits.size), bf)
        want = bits.view(dt).astype(np.float32)
        same = (vals.view(np.uint32) == want.view(np.uint32)) | (np.isnan(vals) & np.isnan(want))
        assert same.all(), f"{dt} → float differs at {bits[~same][:5]}"
        finite = want[np.isfinite(want)].astype(np.float64)
        finite.sort()
        mids = (finite[1:] + finite[:-1]) / 2
        probes = np.concatenate([finite, mids, np.nextafter(mids, np.inf), np.nextafter(mids, -np.inf),
                                 rng.standard_normal(20000) * 10.0 ** rng.integers(-9, 6, 20000),
                                 [np.inf, -np.inf, 65504.0, 65519.99, 65520.0, 1e38, 3.4e38, 1e-45, -0.0]])
        probes = probes.astype(np.float32)
        out = np.empty(probes.size, np.uint16)
        lib.from_float(ctypes.c_void_p(probes.ctypes.data), ctypes.c_void_p(out.ctypes.data),
                       ctypes.c_longlong(probes.size), bf)
        with np.errstate(over="ignore"):  # floats beyond the largest half become inf, as intended
            want_bits = probes.astype(dt).view(np.uint16)
        bad = out != want_bits
        assert not bad.any(), f"float → {dt} differs for {probes[bad][:5]}: {out[bad][:5]} against {want_bits[bad][:5]}"
        nan = np.array([np.nan], np.float32)
        lib.from_float(ctypes.c_void_p(nan.ctypes.data), ctypes.c_void_p(out.ctypes.data), ctypes.c_longlong(1), bf)
        assert np.isnan(out[:1].view(dt).astype(np.float32)[0])


def bn_cuda(x, g, b, rm, rv, training, momentum, eps, relu):
    return F._batch_norm_cuda(x, g, b, rm, rv, training, momentum, eps, relu)


@needs_cxx
@pytest.mark.parametrize("members", [False, True], ids=["model", "population"])
@pytest.mark.parametrize("relu", [False, True], ids=["bn", "bn-relu"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("x_dtype", ["float32", "float64", "float16", "bfloat16"])
def test_batch_norm_kernels_on_the_cpu_match_the_numpy_form(members, relu, training, x_dtype):
    if x_dtype == "bfloat16":
        pytest.importorskip("ml_dtypes")
    xd = _dtype(x_dtype)
    td = np.float64 if x_dtype == "float64" else np.float32
    case = bn_case(members, xd, td, m=21, f=40, P=2)
    with emulated():
        got = bn_run(case, "cpu", training, relu, bn_cuda)
    with numpy_forms():
        ref = bn_run(case, "cpu", training, relu, bn_public)
    for a, r, what in zip(got, ref, BN_NAMES):
        assert a.dtype == r.dtype, what
        assert_close(a, r, x_dtype if what in ("output", "dx") else td, what)


@needs_cxx
def test_batch_norm_kernel_reads_gamma_rows_of_a_population_buffer():
    """γ and β of a population live in the rows of its flat (P, N) parameter buffer: views whose
    rows are N apart, which the kernels read through their row stride."""
    x, (g, b, rm, rv), w = bn_case(True, np.float32, np.float32, m=9, f=40, P=2)
    buf = np.zeros((2, 3 * 40), np.float32)
    buf[:, 10:50], buf[:, 60:100] = g, b

    def run(call):
        xt, rmt, rvt = Tensor(x.copy(), requires_grad=True), Tensor(rm.copy()), Tensor(rv.copy())
        gt, bt = Parameter(buf[:, 10:50]), Parameter(buf[:, 60:100])
        out = call(xt, gt, bt, rmt, rvt, True, 0.9, 1e-5, True)
        (out * Tensor(w)).sum().backward()
        return out.data, rmt.data, xt.grad, gt.grad

    with emulated():
        got = run(bn_cuda)
    with numpy_forms():
        ref = run(bn_public)
    for a, r, what in zip(got, ref, ("output", "running mean", "dx", "dγ")):
        assert_close(a, r, "float32", what)


@needs_cxx
@pytest.mark.parametrize("members", [False, True], ids=["model", "population"])
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
def test_softmax_cross_entropy_kernels_on_the_cpu_match_the_numpy_form(members, dtype):
    if dtype == "bfloat16":
        pytest.importorskip("ml_dtypes")
    dt = _dtype(dtype)
    case = xent_case(members, dt, m=300, c=7)  # more rows than the block's 256 threads
    with emulated():
        loss, grad = xent_run(case, "cpu", lambda z, y: F._softmax_cross_entropy_cuda(z, z.data, y))
    with numpy_forms():
        ref_loss, ref_grad = xent_run(case, "cpu", F.softmax_cross_entropy)
    assert loss.dtype == ref_loss.dtype and grad.dtype == ref_grad.dtype == dt
    assert_close(loss, ref_loss, "float32" if dt.itemsize < 4 else dt, "loss")
    assert_close(grad, ref_grad, dt, "dz")


@needs_cxx
def test_softmax_cross_entropy_kernel_on_the_cpu_label_out_of_range_gives_nan():
    z = Tensor(np.zeros((4, 3), np.float32))
    with emulated():
        loss = F._softmax_cross_entropy_cuda(z, z.data, np.array([0, 1, 3, 2]))
    assert np.isnan(float(loss.item()))


@needs_cxx
@pytest.mark.parametrize("members", [False, True], ids=["model", "population"])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_optimizer_kernels_on_the_cpu_match_the_numpy_form(name, members):
    """``_update_cuda`` (scalar coefficients, or per-member columns (P, 1)) against
    ``_update_numpy`` over the same buffers, three steps."""
    cls, kwargs = OPTIMIZERS[name]
    P = 3 if members else None
    results = []
    for form in ("cuda", "numpy"):
        polydl.manual_seed(0)
        layer = polydl.nn.Linear(40, 7, population=P)
        opt = cls(layer.parameters(), **(per_member(kwargs, P) if members else kwargs))
        (group,), rng = opt.groups, np.random.default_rng(5)
        state = {k: np.zeros_like(group.data) for k in opt.state_names}
        state["tmp"] = np.empty_like(group.data)
        for t in range(1, 4):
            opt.step_count = t
            cast = {k: _cast_numpy(v, group.dtype) for k, v in opt._coefficients(opt.next_lr()).items()}
            grad = rng.standard_normal(group.data.shape).astype(np.float32)
            if form == "cuda":
                with emulated():
                    assert opt._update_cuda(group, grad, state, cast)
            else:
                opt._update_numpy(np, group.data, grad, state, cast)
        results.append([group.data.copy()] + [state[k] for k in opt.state_names])
    for got, want in zip(*results):
        assert_close(got, want, "float32", f"{name} parameters and state")


def test_a_subclass_that_changes_the_update_keeps_its_own_on_cuda():
    class Halved(optim.Adam):
        def _update_numpy(self, xp, p, g, state, coef):
            super()._update_numpy(xp, p, g * 0.5, state, coef)

    assert optim.Adam._cuda_matches() and optim.SGD._cuda_matches()
    assert not Halved._cuda_matches()


@needs_cxx
def test_the_emulator_refuses_arguments_the_gpu_would_misread():
    """A Python int where the kernel takes ``long long``, or an array of the wrong dtype."""
    kern = cuda_emulator.raw_kernel("softmax_xent", np.float32, np.float32)
    z, p, loss = np.zeros((2, 3), np.float32), np.empty((2, 3), np.float32), np.empty(1, np.float32)
    labels = np.zeros(2, np.int64)
    with pytest.raises(TypeError, match="long long"):
        kern((1, 1, 1), cuda_kernels.SOFTMAX_BLOCK, (z, labels, 2, np.int64(3), np.float64(0.5), p, loss))
    with pytest.raises(TypeError, match="labels"):
        kern((1, 1, 1), cuda_kernels.SOFTMAX_BLOCK, (z, labels.astype(np.int32), np.int64(2), np.int64(3),
                                                     np.float64(0.5), p, loss))
    kern((1, 1, 1), cuda_kernels.SOFTMAX_BLOCK, (z, labels, np.int64(2), np.int64(3), np.float64(0.5), p, loss))
    assert np.allclose(p, 1 / 3) and np.isclose(loss[0], np.log(3))


@needs_cxx
def test_the_emulator_finds_a_missing_barrier():
    """A reduction without its barrier gives a wrong sum under the emulator's thread order."""
    src = cuda_kernels.raw_source("softmax_xent", np.float32, np.float32)
    broken = src.replace("        if (t < k) red[t] += red[t + k];\n        __syncthreads();",
                         "        if (t < k) red[t] += red[t + k];")
    assert broken != src
    z = np.random.default_rng(0).standard_normal((1, 300, 4)).astype(np.float32)
    labels = np.zeros(300, np.int64)
    args = lambda p, loss: (z, labels, np.int64(300), np.int64(4), np.float64(1 / 300), p, loss)  # noqa: E731
    good, bad = np.empty(1, np.float32), np.empty(1, np.float32)
    cuda_emulator.RawKernel(src, "polydl_softmax_xent")((1, 1, 1), cuda_kernels.SOFTMAX_BLOCK,
                                                      args(np.empty_like(z), good))
    cuda_emulator.RawKernel(broken, "polydl_softmax_xent")((1, 1, 1), cuda_kernels.SOFTMAX_BLOCK,
                                                         args(np.empty_like(z), bad))
    assert not np.isclose(good[0], bad[0])


def test_raw_source_refuses_a_dtype_pair_without_a_kernel():
    with pytest.raises(ValueError, match="no CUDA kernel bn_forward_train for float16 activations with float64"):
        cuda_kernels.raw_source("bn_forward_train", np.float16, np.float64)
    with pytest.raises(ValueError, match="float32 activations with float64"):
        cuda_kernels.raw_source("bn_forward_train", np.float32, np.float64)
    assert "#define POLYDL_X_KIND 1" in cuda_kernels.raw_source("softmax_xent", np.float16, np.float32)
