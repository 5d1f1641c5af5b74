"""Every op: values against NumPy formulas, gradients against float64 central differences."""
from __future__ import annotations

import numpy as np
import pytest

import polydl
from polydl import backend
from polydl import functional as F
from polydl.testing import gradcheck


def npy(x):
    return backend.to_numpy(x.data if isinstance(x, polydl.Tensor) else x)


def _away_from_zero(rng, shape, low=0.2, high=2.0):
    """Values with |v| in [low, high] and random signs (clear of kinks at 0)."""
    return rng.uniform(low, high, shape) * rng.choice([-1.0, 1.0], shape)


def _distinct(rng, shape):
    """Values whose pairwise gaps are ≥ 0.1 (no ties for max, maximum, minimum)."""
    n = int(np.prod(shape))
    return (rng.permutation(n) * 0.1 - 0.05 * n + rng.uniform(0, 0.01, n)).reshape(shape)


def _probs(rng, shape):
    p = rng.uniform(0.1, 1.0, shape)
    return p / p.sum(axis=-1, keepdims=True)


# ---------------------------------------------------------------------------- the gradcheck table
# name -> (fn, list of input specs); a spec is (kind, shape) for a float64 input that requires grad
# or ("const", value-maker) for a constant array argument passed through unchanged.
def _normal(shape):
    return ("normal", shape)


def _pos(shape):
    return ("positive", shape)


def _nz(shape):
    return ("nonzero", shape)


def _dist(shape):
    return ("distinct", shape)


CASES = {
    "add": (lambda a, b: a + b, [_normal((3, 4)), _normal((3, 4))]),
    "add_broadcast_left": (lambda a, b: a + b, [_normal((4,)), _normal((3, 4))]),
    "add_broadcast_right": (lambda a, b: a + b, [_normal((2, 3, 4)), _normal((3, 1))]),
    "add_scalar": (lambda a: 2.5 + a + 1.0, [_normal((3,))]),
    "sub": (lambda a, b: a - b, [_normal((3, 4)), _normal((3, 4))]),
    "sub_broadcast_both_ways": (lambda a, b: a - b, [_normal((3, 1)), _normal((1, 4))]),
    "rsub_scalar": (lambda a: 1.0 - a, [_normal((3,))]),
    "mul": (lambda a, b: a * b, [_normal((3, 4)), _normal((3, 4))]),
    "mul_broadcast_left": (lambda a, b: a * b, [_normal((1, 4)), _normal((3, 4))]),
    "mul_broadcast_right": (lambda a, b: a * b, [_normal((3, 4)), _normal((4,))]),
    "mul_scalar_tensor": (lambda a, b: a * b, [_normal(()), _normal((2, 3))]),
    "div": (lambda a, b: a / b, [_normal((3, 4)), _nz((3, 4))]),
    "div_broadcast_left": (lambda a, b: a / b, [_normal((4,)), _nz((3, 4))]),
    "div_broadcast_right": (lambda a, b: a / b, [_normal((3, 4)), _nz((3, 1))]),
    "rdiv_scalar": (lambda a: 2.0 / a, [_nz((3,))]),
    "neg": (lambda a: -a, [_normal((3, 2))]),
    "pow_scalar_2": (lambda a: a ** 2, [_normal((3, 2))]),
    "pow_scalar_3": (lambda a: a ** 3, [_normal((3, 2))]),
    "pow_scalar_fraction": (lambda a: a ** 1.7, [_pos((3, 2))]),
    "pow_scalar_negative": (lambda a: a ** -1.5, [_pos((3, 2))]),
    "pow_tensor": (lambda a, e: a ** e, [_pos((3, 2)), _normal((3, 2))]),
    "pow_tensor_broadcast": (lambda a, e: F.pow(a, e), [_pos((3, 2)), _normal((2,))]),
    "matmul_2d": (lambda a, b: a @ b, [_normal((3, 4)), _normal((4, 2))]),
    "matmul_1d_2d": (lambda a, b: a @ b, [_normal((4,)), _normal((4, 2))]),
    "matmul_2d_1d": (lambda a, b: a @ b, [_normal((3, 4)), _normal((4,))]),
    "matmul_1d_1d": (lambda a, b: a @ b, [_normal((4,)), _normal((4,))]),
    "matmul_batched": (lambda a, b: a @ b, [_normal((2, 3, 4)), _normal((2, 4, 2))]),
    "matmul_batched_broadcast_weight": (lambda a, b: a @ b, [_normal((2, 3, 4)), _normal((4, 2))]),
    "matmul_batched_broadcast_input": (lambda a, b: a @ b, [_normal((3, 4)), _normal((2, 4, 2))]),
    "matmul_batched_broadcast_both": (lambda a, b: F.matmul(a, b), [_normal((2, 1, 3, 2)), _normal((3, 2, 2))]),
    "matmul_batched_1d": (lambda a, b: a @ b, [_normal((2, 3, 4)), _normal((4,))]),
    "matmul_1d_batched": (lambda a, b: a @ b, [_normal((4,)), _normal((2, 4, 3))]),
    "sum_all": (lambda a: a.sum(), [_normal((3, 4))]),
    "sum_axis0": (lambda a: a.sum(axis=0), [_normal((3, 4))]),
    "sum_axis_neg_keepdims": (lambda a: a.sum(axis=-1, keepdims=True), [_normal((2, 3, 4))]),
    "sum_axes_tuple": (lambda a: F.sum(a, axis=(0, 2)), [_normal((2, 3, 4))]),
    "sum_axes_tuple_keepdims": (lambda a: F.sum(a, axis=(0, 2), keepdims=True), [_normal((2, 3, 4))]),
    "mean_all": (lambda a: a.mean(), [_normal((3, 4))]),
    "mean_axis1": (lambda a: a.mean(axis=1), [_normal((3, 4))]),
    "mean_axes_keepdims": (lambda a: a.mean(axis=(0, 1), keepdims=True), [_normal((2, 3, 4))]),
    "max_all": (lambda a: a.max(), [_dist((3, 4))]),
    "max_axis0": (lambda a: a.max(axis=0), [_dist((3, 4))]),
    "max_axis_neg_keepdims": (lambda a: a.max(axis=-1, keepdims=True), [_dist((2, 3, 4))]),
    "max_axes_tuple": (lambda a: F.max(a, axis=(0, 2)), [_dist((2, 3, 4))]),
    "exp": (F.exp, [_normal((3, 4))]),
    "log": (F.log, [_pos((3, 4))]),
    "sqrt": (F.sqrt, [_pos((3, 4))]),
    "abs": (F.abs, [_nz((3, 4))]),
    "where": (lambda c, a, b: F.where(c, a, b), [("const", lambda rng: rng.uniform(size=(3, 4)) > 0.5),
                                               _normal((3, 4)), _normal((3, 4))]),
    "where_broadcast": (lambda c, a, b: F.where(c, a, b), [("const", lambda rng: rng.uniform(size=(3, 4)) > 0.5),
                                                         _normal((4,)), _normal((3, 1))]),
    "maximum": (F.maximum, [_dist((3, 4)), _dist((3, 4))]),
    "minimum": (F.minimum, [_dist((3, 4)), _dist((3, 4))]),
    "maximum_scalar": (lambda a: F.maximum(a, 0.0), [_nz((3, 4))]),
    "clip": (lambda a: F.clip(a, -1.0, 1.0), [("clip", (3, 4))]),
    "reshape": (lambda a: a.reshape(4, 3), [_normal((3, 4))]),
    "reshape_infer": (lambda a: F.reshape(a, (-1,)), [_normal((2, 3, 2))]),
    "transpose_2d": (lambda a: a.T, [_normal((3, 4))]),
    "transpose_axes": (lambda a: a.transpose(2, 0, 1), [_normal((2, 3, 4))]),
    "transpose_negative_axes": (lambda a: a.transpose(0, -1, -2), [_normal((2, 3, 4))]),
    "getitem_int": (lambda a: a[1], [_normal((3, 4))]),
    "getitem_slices": (lambda a: a[1:, ::2], [_normal((3, 4))]),
    "getitem_negative_step": (lambda a: a[::-1, 1:3], [_normal((3, 4))]),
    "getitem_ellipsis_newaxis": (lambda a: a[..., None, 0], [_normal((2, 3, 4))]),
    "getitem_repeated_int_array": (lambda a, i: a[i], [_normal((3, 4)), ("const", lambda rng: np.array([0, 2, 0, 0]))]),
    "getitem_repeated_pairs": (lambda a, i, j: a[i, j], [_normal((3, 4)), ("const", lambda rng: np.array([0, 1, 1, 2])),
                                                         ("const", lambda rng: np.array([3, 0, 0, 3]))]),
    "getitem_list": (lambda a: a[:, [1, 1, 3]], [_normal((3, 4))]),
    "getitem_bool_mask": (lambda a, m: a[m], [_normal((3, 4)), ("const", lambda rng: np.array([True, False, True]))]),
    "concatenate_axis0": (lambda a, b: F.concatenate([a, b, a], axis=0), [_normal((2, 3)), _normal((1, 3))]),
    "concatenate_axis_neg": (lambda a, b: F.concatenate([a, b], axis=-1), [_normal((2, 3)), _normal((2, 2))]),
    "stack_axis0": (lambda a, b: F.stack([a, b], axis=0), [_normal((2, 3)), _normal((2, 3))]),
    "stack_axis_last": (lambda a, b: F.stack([a, b, a], axis=-1), [_normal((2, 3)), _normal((2, 3))]),
    "relu": (F.relu, [_nz((3, 4))]),
    "leaky_relu": (lambda a: F.leaky_relu(a, 0.1), [_nz((3, 4))]),
    "leaky_relu_default": (F.leaky_relu, [_nz((3, 4))]),
    "sigmoid": (F.sigmoid, [("wide", (3, 4))]),
    "tanh": (F.tanh, [_normal((3, 4))]),
    "softmax": (F.softmax, [_normal((3, 4))]),
    "softmax_axis0": (lambda a: F.softmax(a, axis=0), [_normal((3, 4))]),
    "log_softmax": (F.log_softmax, [_normal((3, 4))]),
    "log_softmax_axis0": (lambda a: F.log_softmax(a, axis=0), [_normal((3, 4))]),
    "logsumexp": (F.logsumexp, [_normal((3, 4))]),
    "logsumexp_keepdims": (lambda a: F.logsumexp(a, axis=0, keepdims=True), [_normal((3, 4))]),
    "logsumexp_all": (lambda a: F.logsumexp(a, axis=None), [_normal((3, 4))]),
    "linear": (F.linear, [_normal((5, 3)), _normal((3, 2)), _normal((2,))]),
    "linear_no_bias": (F.linear, [_normal((5, 3)), _normal((3, 2))]),
    "linear_leading_batch_dims": (F.linear, [_normal((2, 3, 3)), _normal((3, 2)), _normal((2,))]),
    "linear_population": (F.linear, [_normal((2, 4, 3)), _normal((2, 3, 2)), _normal((2, 1, 2))]),
    "linear_single_sample": (F.linear, [_normal((3,)), _normal((3, 2)), _normal((2,))]),
    "batch_norm_train": (lambda x, g, b: F.batch_norm(x, g, b, training=True),
                         [_normal((6, 3)), _nz((3,)), _normal((3,))]),
    "batch_norm_train_running": (lambda x, g, b: F.batch_norm(x, g, b, polydl.tensor(np.zeros(3), device=x.device),
                                                              polydl.tensor(np.ones(3), device=x.device), training=True),
                                 [_normal((6, 3)), _nz((3,)), _normal((3,))]),
    "batch_norm_train_population": (lambda x, g, b: F.batch_norm(x, g, b, training=True),
                                    [_normal((2, 5, 3)), _nz((3,)), _normal((3,))]),
    "batch_norm_eval": (lambda x, g, b: F.batch_norm(x, g, b, polydl.tensor(np.array([0.1, -0.2, 0.3]), device=x.device),
                                                     polydl.tensor(np.array([0.5, 1.5, 2.0]), device=x.device),
                                                     training=False),
                        [_normal((6, 3)), _nz((3,)), _normal((3,))]),
    "batch_norm2d_train": (lambda x, g, b: F.batch_norm2d(x, g, b, training=True),
                           [_normal((2, 3, 2, 3)), _nz((3,)), _normal((3,))]),
    "layer_norm": (F.layer_norm, [_normal((4, 5)), _nz((5,)), _normal((5,))]),
    # the image ops (tests/ops/ checks them on many more shapes)
    "conv2d": (lambda x, w, b: F.conv2d(x, w, b, stride=(2, 1), padding=1, dilation=(1, 2), groups=2),
               [_normal((2, 4, 5, 6)), _normal((4, 2, 3, 2)), _normal((4,))]),
    "max_pool2d": (lambda a: F.max_pool2d(a, 2, 1, 1), [_dist((2, 2, 4, 5))]),
    "avg_pool2d": (lambda a: F.avg_pool2d(a, (3, 2), (2, 1), 1), [_normal((2, 2, 5, 4))]),
    "global_avg_pool2d": (F.global_avg_pool2d, [_normal((2, 3, 3, 4))]),
    "flatten": (F.flatten, [_normal((2, 3, 2, 2))]),
    "dropout": (lambda a: (polydl.manual_seed(3), F.dropout(a, 0.4))[1], [_normal((4, 5))]),
    "dropout_eval": (lambda a: F.dropout(a, 0.4, training=False), [_normal((4, 5))]),
    "softmax_cross_entropy_labels": (F.softmax_cross_entropy,
                                     [_normal((5, 4)), ("const", lambda rng: np.array([0, 3, 1, 3, 2]))]),
    "softmax_cross_entropy_onehot": (F.softmax_cross_entropy,
                                     [_normal((5, 4)), ("const", lambda rng: np.eye(4)[[0, 3, 1, 3, 2]])]),
    "softmax_cross_entropy_probs": (F.softmax_cross_entropy,
                                    [_normal((5, 4)), ("const", lambda rng: _probs(rng, (5, 4)))]),
    "softmax_cross_entropy_batched_labels": (F.softmax_cross_entropy,
                                             [_normal((2, 3, 4)), ("const", lambda rng: np.array([[0, 1, 3], [2, 2, 0]]))]),
    "bce_with_logits": (F.binary_cross_entropy_with_logits,
                        [("wide", (6,)), ("const", lambda rng: np.array([0.0, 1.0, 1.0, 0.0, 1.0, 0.0]))]),
    "bce_with_logits_column": (F.binary_cross_entropy_with_logits,
                               [("wide", (4, 1)), ("const", lambda rng: np.array([0, 1, 1, 0]))]),
    "bce_with_logits_soft_targets": (F.binary_cross_entropy_with_logits,
                                     [("wide", (5,)), ("const", lambda rng: rng.uniform(0, 1, 5))]),
    "mse": (F.mse, [_normal((4, 3)), ("const", lambda rng: rng.normal(size=(4, 3)))]),
    "mse_labels": (F.mse, [_normal((4, 3)), ("const", lambda rng: np.array([0, 2, 1, 2]))]),
    # residuals kept away from the kinks (|d| = 0 for mae, |d| = δ for huber) where the difference quotient jumps
    "mae": (F.mae, [_normal((4, 3)), ("const", lambda rng: rng.normal(size=(4, 3)) + 5.0)]),
    "huber": (lambda p, t: F.huber(p, t, delta=1.0),
              [_normal((4, 3)), ("const", lambda rng: rng.normal(size=(4, 3)) * 0.1 + np.array([0.0, 3.0, -3.0]))]),
    "composite": (lambda x, w: F.sigmoid(F.tanh(x @ w) * 2.0 - 0.5).sum(axis=0) / 3.0,
                  [_normal((4, 3)), _normal((3, 2))]),
}


def _make(spec, rng, device):
    kind, arg = spec
    if kind == "const":
        return backend.to_device(np.asarray(arg(rng)), device)
    values = {
        "normal": lambda s: rng.normal(size=s),
        "positive": lambda s: rng.uniform(0.5, 2.0, s),
        "nonzero": lambda s: _away_from_zero(rng, s),
        "distinct": lambda s: _distinct(rng, s),
        "wide": lambda s: rng.normal(0, 3, s),
        "clip": lambda s: rng.choice([-1.6, -0.6, -0.2, 0.3, 0.7, 1.4], s) + rng.uniform(-0.05, 0.05, s),
    }[kind](arg)
    return polydl.tensor(np.asarray(values, dtype=np.float64), device=device, requires_grad=True)


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradcheck(device, name):
    fn, specs = CASES[name]
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    inputs = [_make(s, rng, device) for s in specs]
    out = fn(*inputs)
    assert out.device.type == polydl.device(device).type
    assert gradcheck(fn, *inputs)


def test_every_public_op_has_a_gradcheck():
    covered = " ".join(CASES)
    skip = {"one_hot", "hardmax"}  # not differentiable: they return constants
    missing = [op for op in F.__all__ if op not in skip
               and op.replace("binary_cross_entropy_with_logits", "bce_with_logits") not in covered]
    assert missing == []


# ---------------------------------------------------------------------------- values
def _softmax_np(z, axis=-1):
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


VALUES = {
    "exp": (F.exp, np.exp), "log": (lambda a: F.log(F.abs(a)), lambda a: np.log(np.abs(a))),
    "sqrt": (lambda a: F.sqrt(F.abs(a)), lambda a: np.sqrt(np.abs(a))), "abs": (F.abs, np.abs),
    "relu": (F.relu, lambda a: np.maximum(a, 0)),
    "leaky_relu": (lambda a: F.leaky_relu(a, 0.1), lambda a: np.where(a > 0, a, 0.1 * a)),
    "sigmoid": (F.sigmoid, lambda a: 1 / (1 + np.exp(-a))), "tanh": (F.tanh, np.tanh),
    "softmax": (F.softmax, _softmax_np),
    "softmax_axis0": (lambda a: F.softmax(a, axis=0), lambda a: _softmax_np(a, 0)),
    "log_softmax": (F.log_softmax, lambda a: np.log(_softmax_np(a))),
    "logsumexp": (F.logsumexp, lambda a: np.log(np.exp(a).sum(-1))),
    "logsumexp_all": (lambda a: F.logsumexp(a, axis=None), lambda a: np.log(np.exp(a).sum())),
    "sum": (lambda a: a.sum(axis=(0, 1)), lambda a: a.sum(axis=(0, 1))),
    "mean": (lambda a: a.mean(axis=1, keepdims=True), lambda a: a.mean(axis=1, keepdims=True)),
    "max": (lambda a: a.max(axis=-1), lambda a: a.max(axis=-1)),
    "clip": (lambda a: F.clip(a, -0.5, 0.5), lambda a: np.clip(a, -0.5, 0.5)),
    "maximum": (lambda a: F.maximum(a, 0.3), lambda a: np.maximum(a, 0.3)),
    "minimum": (lambda a: F.minimum(a, 0.3), lambda a: np.minimum(a, 0.3)),
    "pow": (lambda a: F.abs(a) ** 1.5, lambda a: np.abs(a) ** 1.5),
    "transpose": (lambda a: a.transpose(0, -1, -2), lambda a: a.transpose(0, 2, 1)),
    "layer_norm": (lambda a: F.layer_norm(a, polydl.tensor(np.full(4, 2.0), device=a.device),
                                          polydl.tensor(np.full(4, 0.5), device=a.device)),
                   lambda a: 2.0 * (a - a.mean(-1, keepdims=True)) / np.sqrt(a.var(-1, keepdims=True) + 1e-5) + 0.5),
}


@pytest.mark.parametrize("name", sorted(VALUES))
def test_values_match_numpy(device, name):
    ours, ref = VALUES[name]
    a = np.random.default_rng(5).normal(size=(2, 3, 4))
    out = ours(polydl.tensor(a, device=device))
    np.testing.assert_allclose(out.numpy(), ref(a), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("sa, sb", [((3, 4), (4, 2)), ((4,), (4, 2)), ((3, 4), (4,)), ((4,), (4,)),
                                    ((2, 3, 4), (4, 5)), ((2, 3, 4), (2, 4, 5)), ((1, 3, 4), (2, 4, 5)),
                                    ((3, 4), (2, 4, 5))])
def test_matmul_values(device, sa, sb):
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=sa), rng.normal(size=sb)
    out = polydl.tensor(a, device=device) @ polydl.tensor(b, device=device)
    np.testing.assert_allclose(out.numpy(), a @ b, rtol=1e-12)
    # numpy arrays on either side
    np.testing.assert_allclose((polydl.tensor(a, device=device) @ backend.to_device(b, device)).numpy(), a @ b)


def test_matmul_of_scalars_is_an_error():
    with pytest.raises(ValueError):
        F.matmul(polydl.tensor(2.0), polydl.tensor(3.0))


def test_linear_values(device):
    rng = np.random.default_rng(1)
    x, w, b = rng.normal(size=(2, 5, 3)), rng.normal(size=(3, 4)), rng.normal(size=4)
    out = F.linear(polydl.tensor(x, device=device), polydl.tensor(w, device=device), polydl.tensor(b, device=device))
    np.testing.assert_allclose(out.numpy(), x @ w + b, rtol=1e-12)
    out = F.linear(polydl.tensor(x, device=device), polydl.tensor(w, device=device))
    np.testing.assert_allclose(out.numpy(), x @ w, rtol=1e-12)


def test_softmax_family_is_stable_for_large_logits(device):
    z = polydl.tensor(np.array([[1000.0, 1000.0, -1000.0], [0.0, -1000.0, 1000.0]]), device=device, requires_grad=True)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        p = F.softmax(z)
        lp = F.log_softmax(z)
        lse = F.logsumexp(z)
        (p.sum() + lp[:, :2].sum() + lse.sum()).backward()
    np.testing.assert_allclose(p.numpy(), [[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]], atol=1e-300)
    np.testing.assert_allclose(lp.numpy()[0, :2], [-np.log(2), -np.log(2)])
    np.testing.assert_allclose(lp.numpy()[1], [-1000.0, -2000.0, 0.0])
    np.testing.assert_allclose(lse.numpy(), [1000 + np.log(2), 1000.0])
    assert np.isfinite(npy(z.grad)).all()
    z32 = polydl.tensor([[88.0, 89.0, -100.0]], device=device)  # exp(89) overflows float32
    assert np.isfinite(F.softmax(z32).numpy()).all() and np.isfinite(F.log_softmax(z32).numpy()).all()


def test_sigmoid_is_stable_for_large_inputs(device):
    z = polydl.tensor([-1000.0, -30.0, 0.0, 30.0, 1000.0], dtype=np.float64, device=device)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        s = F.sigmoid(z).numpy()
    # 1/(1 + e^−z) written with exp of non-positive numbers only
    v = np.array([-1000.0, -30.0, 0.0, 30.0, 1000.0])
    ref = np.where(v >= 0, 1 / (1 + np.exp(-np.abs(v))), np.exp(-np.abs(v)) / (1 + np.exp(-np.abs(v))))
    np.testing.assert_allclose(s, ref, rtol=1e-12)
    assert s[0] == 0.0 and s[-1] == 1.0 and s[2] == 0.5


def test_max_shares_the_gradient_between_ties(device):
    x = polydl.tensor([1.0, 3.0, 3.0, 2.0], device=device, requires_grad=True)
    x.max().backward()
    np.testing.assert_allclose(npy(x.grad), [0.0, 0.5, 0.5, 0.0])


def test_getitem_repeated_indices_accumulate(device):
    x = polydl.tensor([10.0, 20.0, 30.0, 40.0], device=device, requires_grad=True)
    idx = backend.to_device(np.array([0, 0, 2, 0, 3]), device)
    y = x[idx]
    np.testing.assert_array_equal(y.numpy(), [10, 10, 30, 10, 40])
    y.backward(np.array([1.0, 2.0, 3.0, 4.0, 5.0], dtype=np.float32))
    np.testing.assert_allclose(npy(x.grad), [7.0, 0.0, 3.0, 5.0])


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_getitem_repeated_indices_accumulate_in_every_dtype(device, dtype):
    """CuPy's scatter-add has no bfloat16: such gradients are summed in float32 on CUDA."""
    if dtype == "bfloat16":
        pytest.importorskip("ml_dtypes")
    dt = polydl.amp.resolve(dtype)
    x = polydl.tensor(np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], np.float32), device=device, requires_grad=True)
    y = x.to(dtype=dt)[backend.to_device(np.array([0, 2, 0]), device)]  # the backward scatter-adds in dt
    y.backward(backend.to_device(np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], dt), device))
    np.testing.assert_array_equal(npy(x.grad), [[6.0, 8.0], [0.0, 0.0], [3.0, 4.0]])


def test_getitem_with_tensor_index(device):
    x = polydl.tensor(np.arange(6.0).reshape(3, 2), device=device, requires_grad=True)
    idx = polydl.tensor([2, 2], device=device)
    x[idx].sum().backward()
    np.testing.assert_allclose(npy(x.grad), [[0, 0], [0, 0], [2, 2]])


def test_where_with_tensor_condition_and_no_gradient_to_the_condition(device):
    a = polydl.tensor([1.0, -2.0, 3.0], device=device, requires_grad=True)
    out = F.where(a > 0, a, a * 10.0)
    np.testing.assert_array_equal(out.numpy(), [1.0, -20.0, 3.0])
    out.sum().backward()
    np.testing.assert_allclose(npy(a.grad), [1.0, 10.0, 1.0])


def test_clip_gradient_is_zero_outside(device):
    a = polydl.tensor([-2.0, -0.5, 0.5, 2.0], device=device, requires_grad=True)
    F.clip(a, -1.0, 1.0).sum().backward()
    np.testing.assert_allclose(npy(a.grad), [0, 1, 1, 0])


def test_relu_gradient_is_a_step(device):
    a = polydl.tensor([-2.0, -0.1, 0.1, 2.0], device=device, requires_grad=True)
    F.relu(a).sum().backward()
    np.testing.assert_allclose(npy(a.grad), [0, 0, 1, 1])


# ---------------------------------------------------------------------------- dropout
def test_dropout_is_inverted_dropout(device):
    x = polydl.tensor(np.ones((200, 100)), device=device, requires_grad=True)
    y = F.dropout(x, 0.3).numpy()
    kept = y != 0
    np.testing.assert_allclose(y[kept], 1 / 0.7)
    assert abs(kept.mean() - 0.7) < 0.01  # 20,000 Bernoulli draws: 4.5 standard deviations
    assert abs(y.mean() - 1.0) < 0.02
    F.dropout(x, 0.3).sum().backward()
    g = npy(x.grad)
    assert set(np.unique(g)).issubset({0.0, 1 / 0.7}) or np.allclose(np.unique(g), [0.0, 1 / 0.7])


def test_dropout_identity_in_eval_and_for_p_zero(device):
    x = polydl.tensor(np.ones((3, 4)), device=device)
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x
    for p in (-0.1, 1.0, 1.5):
        with pytest.raises(ValueError, match="p"):
            F.dropout(x, p)


def test_dropout_mask_fixed_by_the_seed(device):
    x = polydl.tensor(np.ones((8, 8)), device=device)
    polydl.manual_seed(11)
    a = F.dropout(x, 0.5).numpy()
    polydl.manual_seed(11)
    b = F.dropout(x, 0.5).numpy()
    c = F.dropout(x, 0.5).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(b, c)


# ---------------------------------------------------------------------------- helpers
def test_one_hot_and_hardmax(device):
    labels = backend.to_device(np.array([2, 0, 1]), device)
    np.testing.assert_array_equal(backend.to_numpy(F.one_hot(labels, 4)), np.eye(4, dtype=np.float32)[[2, 0, 1]])
    assert F.one_hot(labels, 4).dtype == np.float32
    h = F.hardmax(polydl.tensor([0.8, 0.1, 0.1], device=device))
    np.testing.assert_array_equal(h.numpy(), [1.0, 0.0, 0.0])
    h = F.hardmax(polydl.tensor([[0.1, 0.5, 0.4], [2.0, -1.0, 3.0]], device=device))
    np.testing.assert_array_equal(h.numpy(), [[0, 1, 0], [0, 0, 1]])


def test_label_shape_mismatch_is_an_error(device):
    z = polydl.tensor(np.zeros((3, 4)), device=device)
    with pytest.raises(ValueError, match="labels"):
        F.softmax_cross_entropy(z, backend.to_device(np.array([0, 1]), device))
    with pytest.raises(ValueError, match="targets"):
        F.softmax_cross_entropy(z, backend.to_device(np.zeros((3, 3)), device))
    with pytest.raises(ValueError, match="targets"):
        F.mse(z, backend.to_device(np.zeros((4, 3)), device))
