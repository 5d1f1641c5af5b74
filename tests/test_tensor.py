"""The define-by-run graph: recording, backward, accumulation, broadcasting, release, dtypes."""
from __future__ import annotations

import time
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes

import polydl
from polydl import backend, nn, optim
from polydl import functional as F
from polydl.tensor import unbroadcast


def T(values, device, dtype=np.float64, requires_grad=True):
    return polydl.tensor(np.asarray(values, dtype=dtype), device=device, requires_grad=requires_grad)


def npy(x):
    return backend.to_numpy(x.data if isinstance(x, polydl.Tensor) else x)


# ---------------------------------------------------------------------------- construction
def test_tensor_api(device):
    x = polydl.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], device=device, requires_grad=True)
    assert x.shape == (2, 3) and x.ndim == 2 and x.size == 6 and len(x) == 2
    assert x.requires_grad and x.is_leaf and x.grad is None
    assert x.dtype == np.float32
    np.testing.assert_array_equal(x.numpy(), [[1, 2, 3], [4, 5, 6]])
    assert x.tolist() == [[1, 2, 3], [4, 5, 6]]
    assert float(x[1, 2]) == 6.0 and x.sum().item() == 21.0
    assert "requires_grad=True" in repr(x)
    assert polydl.Parameter(x.data).requires_grad


def test_detach_shares_data_and_drops_the_graph(device):
    x = T([1.0, 2.0], device)
    d = (x * 2).detach()
    assert not d.requires_grad and d.is_leaf
    np.testing.assert_array_equal(npy(d), [2.0, 4.0])


# ---------------------------------------------------------------------------- backward basics
def test_gradients_accumulate_across_backward_calls(device):
    x = T([1.0, -2.0, 3.0], device)
    (x * x).sum().backward()
    np.testing.assert_allclose(npy(x.grad), [2.0, -4.0, 6.0])
    (3.0 * x).sum().backward()
    np.testing.assert_allclose(npy(x.grad), [5.0, -1.0, 9.0])
    x.zero_grad()
    assert x.grad is None


def test_shared_subexpressions(device):
    x = T([0.5, -1.5, 2.0], device)
    # f = x·x + x  (x used twice by one op and again by another): f' = 2x + 1
    (x * x + x).sum().backward()
    np.testing.assert_allclose(npy(x.grad), 2 * np.array([0.5, -1.5, 2.0]) + 1)
    # a diamond: y = x², z = y + y·x = x² + x³ → z' = 2x + 3x²
    x.zero_grad()
    y = x * x
    (y + y * x).sum().backward()
    xv = np.array([0.5, -1.5, 2.0])
    np.testing.assert_allclose(npy(x.grad), 2 * xv + 3 * xv ** 2)


def test_deep_chain_gradient(device):
    x = T([0.3], device)
    y = x
    for _ in range(200):
        y = y * 1.01 + 0.0
    y.sum().backward()
    np.testing.assert_allclose(npy(x.grad), [1.01 ** 200], rtol=1e-10)


@pytest.mark.parametrize("sa, sb", [((3, 1), (1, 4)), ((4,), (3, 4)), ((), (2, 3)), ((2, 1, 3), (4, 1)), ((1, 1), (5,))])
def test_unbroadcasting(device, sa, sb):
    rng = np.random.default_rng(0)
    av, bv = rng.normal(size=sa), rng.normal(size=sb)
    a, b = T(av, device), T(bv, device)
    out = a * b + a
    assert out.shape == np.broadcast_shapes(sa, sb)
    out.sum().backward()
    assert a.grad.shape == sa and b.grad.shape == sb
    full = np.broadcast_shapes(sa, sb)
    # d/da Σ(a·b + a) = Σ over the broadcast axes of (b + 1); d/db = Σ of a
    ga = np.broadcast_to(bv + 1, full)
    gb = np.broadcast_to(av, full)
    ga = ga.sum(axis=tuple(range(len(full) - len(sa)))) if len(full) > len(sa) else ga
    gb = gb.sum(axis=tuple(range(len(full) - len(sb)))) if len(full) > len(sb) else gb
    ga = ga.sum(axis=tuple(i for i, n in enumerate(sa) if n == 1), keepdims=True).reshape(sa)
    gb = gb.sum(axis=tuple(i for i, n in enumerate(sb) if n == 1), keepdims=True).reshape(sb)
    np.testing.assert_allclose(npy(a.grad), ga)
    np.testing.assert_allclose(npy(b.grad), gb)


@settings(max_examples=25, deadline=None)
@given(shapes=mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3),
       seed=st.integers(0, 2**16))
def test_broadcasting_arithmetic_gradients(shapes, seed):
    from polydl.testing import gradcheck

    rng = np.random.default_rng(seed)
    sa, sb = shapes.input_shapes
    a = polydl.tensor(rng.normal(size=sa), requires_grad=True)
    b = polydl.tensor(rng.uniform(0.5, 2.0, sb) * rng.choice([-1.0, 1.0], sb), requires_grad=True)
    assert gradcheck(lambda x, y: x * y - x / y + (y - x), a, b)


def test_unbroadcast_function():
    g = np.ones((2, 3, 4))
    np.testing.assert_array_equal(unbroadcast(g, (3, 1)), np.full((3, 1), 8.0))
    np.testing.assert_array_equal(unbroadcast(g, (4,)), np.full((4,), 6.0))
    np.testing.assert_array_equal(unbroadcast(g, ()), np.array(24.0))
    assert unbroadcast(g, (2, 3, 4)) is g


def test_no_grad_records_nothing(device):
    x = T([1.0, 2.0], device)
    with polydl.no_grad():
        assert not polydl.is_grad_enabled()
        y = (x * x).sum()
        with polydl.enable_grad():
            z = (x * x).sum()
        assert not polydl.is_grad_enabled()
    assert polydl.is_grad_enabled()
    assert not y.requires_grad and y.is_leaf and not y._parents
    with pytest.raises(RuntimeError, match="require"):
        y.backward()
    assert z.requires_grad
    z.backward()
    np.testing.assert_allclose(npy(x.grad), [2.0, 4.0])


def test_no_grad_restores_mode_after_an_exception():
    with pytest.raises(ZeroDivisionError):
        with polydl.no_grad():
            _ = 1 / 0
    assert polydl.is_grad_enabled()


def test_grad_only_on_leaves_that_require_it(device):
    x = T([1.0, 2.0], device)
    c = T([3.0, 4.0], device, requires_grad=False)
    h = x * c
    loss = (h * h).sum()
    loss.backward()
    assert h.grad is None and loss.grad is None
    assert c.grad is None
    # d/dx Σ (x c)² = 2 x c²
    np.testing.assert_allclose(npy(x.grad), 2 * np.array([1.0, 2.0]) * np.array([9.0, 16.0]))


def test_graph_released_after_backward(device):
    x = T([1.0, 2.0], device)
    h = x * x
    loss = (h * 3.0).sum()
    assert h._parents and loss._parents
    loss.backward()
    assert not h._parents and not loss._parents
    assert h._backward is None and loss._backward is None
    with pytest.raises(RuntimeError):
        loss.backward()  # the graph is gone: an error, not a silent no-op


def test_second_backward_through_released_shared_graph_is_an_error(device):
    x = T([1.0, 2.0], device)
    h = x * x
    l1, l2 = h.sum(), (h * 3.0).sum()
    l1.backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        l2.backward()


def test_retain_graph_keeps_the_graph(device):
    x = T([1.0, 2.0], device)
    h = x * x
    l1, l2 = h.sum(), (h * 3.0).sum()
    l1.backward(retain_graph=True)
    assert h._parents
    l2.backward()
    np.testing.assert_allclose(npy(x.grad), 8 * np.array([1.0, 2.0]))  # 2x + 6x
    loss = (x * x).sum()
    loss.backward(retain_graph=True)
    loss.backward()
    np.testing.assert_allclose(npy(x.grad), 8 * np.array([1.0, 2.0]) + 4 * np.array([1.0, 2.0]))


def test_backward_on_non_scalar_needs_a_gradient(device):
    x = T([1.0, 2.0, 3.0], device)
    y = x * x
    with pytest.raises(RuntimeError, match="scalar"):
        y.backward()
    y = x * x
    with pytest.raises(ValueError, match="shape"):
        y.backward(np.ones(2))
    y = x * x
    y.backward(np.array([1.0, 0.5, -1.0]))
    np.testing.assert_allclose(npy(x.grad), [2.0, 2.0, -6.0])


def test_backward_without_requires_grad_raises(device):
    with pytest.raises(RuntimeError):
        T([1.0], device, requires_grad=False).sum().backward()


def test_backward_on_a_leaf(device):
    x = T(2.0, device)
    x.backward()
    assert float(npy(x.grad)) == 1.0


# ---------------------------------------------------------------------------- dtype is kept
_W = np.array([[0.5, -1.0], [0.25, 2.0], [1.5, 0.75]])
_OPS = {
    "add_scalar": lambda x: x + 1, "radd_scalar": lambda x: 1.5 + x, "sub_scalar": lambda x: x - 0.5,
    "rsub_scalar": lambda x: 0.5 - x, "mul_scalar": lambda x: x * 2.5, "rmul_scalar": lambda x: 2.5 * x,
    "div_scalar": lambda x: x / 3, "rdiv_scalar": lambda x: 3.0 / x, "neg": lambda x: -x,
    "numpy_scalar": lambda x: np.float64(2.0) * x, "pow2": lambda x: x ** 2, "pow_half": lambda x: x ** 0.5,
    "pow3": lambda x: x ** 3.0, "pow_tensor": lambda x: x ** (x * 0 + 1.5),
    "matmul": lambda x: x @ polydl.tensor(_W.astype(x.dtype), device=x.device),
    "sum": lambda x: x.sum(), "mean": lambda x: x.mean(axis=0), "max": lambda x: x.max(axis=1),
    "exp": F.exp, "log": F.log, "sqrt": F.sqrt, "abs": F.abs, "relu": F.relu,
    "leaky_relu": lambda x: F.leaky_relu(x, 0.2), "sigmoid": F.sigmoid, "tanh": F.tanh,
    "softmax": F.softmax, "log_softmax": F.log_softmax, "logsumexp": F.logsumexp,
    "clip": lambda x: F.clip(x, 0.5, 2.0), "maximum": lambda x: F.maximum(x, 1.0),
    "minimum": lambda x: F.minimum(x, 1.0), "where": lambda x: F.where(x > 1, x, 0.0),
    "reshape": lambda x: x.reshape(3, 2), "transpose": lambda x: x.T, "getitem": lambda x: x[:, [0, 0, 2]],
    "concatenate": lambda x: F.concatenate([x, x], axis=1), "stack": lambda x: F.stack([x, x], axis=0),
    "linear": lambda x: F.linear(x, polydl.tensor(_W.astype(x.dtype), device=x.device),
                                 polydl.tensor(np.ones(2, x.dtype), device=x.device)),
    "batch_norm": lambda x: F.batch_norm(x, polydl.tensor(np.ones(3, x.dtype), device=x.device),
                                         polydl.tensor(np.zeros(3, x.dtype), device=x.device)),
    "layer_norm": lambda x: F.layer_norm(x, polydl.tensor(np.ones(3, x.dtype), device=x.device),
                                         polydl.tensor(np.zeros(3, x.dtype), device=x.device)),
    "dropout": lambda x: F.dropout(x, 0.5),
    "softmax_ce": lambda x: F.softmax_cross_entropy(x, polydl.tensor([0, 2], device=x.device).data),
    "bce": lambda x: F.binary_cross_entropy_with_logits(x, polydl.tensor(np.ones((2, 3), x.dtype), device=x.device)),
    "mse": lambda x: F.mse(x, polydl.tensor(np.ones((2, 3), x.dtype), device=x.device)),
    "scalar_loss_times_python_float": lambda x: (x.sum() * 0.5 + 1.0) / 2.0,
    "to_same": lambda x: x.to(x.device),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", sorted(_OPS))
def test_every_op_keeps_the_dtype(device, dtype, name):
    x = polydl.tensor(np.array([[0.5, 1.5, 2.5], [1.25, 0.75, 3.0]], dtype=dtype), device=device, requires_grad=True)
    out = _OPS[name](x)
    assert out.dtype == dtype, f"{name}: {out.dtype}"
    out.sum().backward()
    assert x.grad is not None and x.grad.dtype == dtype and x.grad.shape == x.shape


def test_python_float_does_not_promote_a_float32_scalar(device):
    s = polydl.tensor(3.0, device=device)
    assert s.shape == () and s.dtype == np.float32
    for out in (s * 2.5, s + 1, 2.0 - s, s / 3, 1 / s, s ** 2, s ** 0.5, -s, s * np.float64(2)):
        assert out.dtype == np.float32


# ---------------------------------------------------------------------------- memory
def test_memory_stays_flat_over_10000_training_steps():
    polydl.manual_seed(0)
    rng = np.random.default_rng(0)
    model = nn.mlp([4, 8, 3])
    opt = optim.Adam(model.parameters(), lr=1e-3)
    batches = [(polydl.tensor(rng.normal(size=(8, 4)).astype(np.float32)), rng.integers(0, 3, 8))
               for _ in range(4)]

    def step(i):
        x, y = batches[i % 4]
        opt.zero_grad()
        loss = F.softmax_cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    t0 = time.perf_counter()
    tracemalloc.start()
    try:
        for i in range(1000):
            step(i)
        after_1000 = tracemalloc.get_traced_memory()[0]
        for i in range(1000, 10000):
            step(i)
        after_10000 = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    growth = after_10000 - after_1000
    # a graph kept alive per step would be ≥ 9,000 × (several arrays of 8×8 floats) ≫ 64 KiB
    assert growth < 64 * 1024, f"memory grew by {growth} bytes between step 1,000 and step 10,000"
    assert time.perf_counter() - t0 < 60
