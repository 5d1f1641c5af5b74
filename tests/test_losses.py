"""Losses by name, checked against their formulas."""
from __future__ import annotations

import numpy as np
import pytest

import polydl
from polydl import backend, losses
from polydl import functional as F
from polydl.testing import gradcheck


def npy(x):
    return backend.to_numpy(x.data if isinstance(x, polydl.Tensor) else x)


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.fixture
def logits_labels():
    rng = np.random.default_rng(7)
    return rng.normal(0, 2, (6, 4)), np.array([0, 3, 1, 1, 2, 3])


def test_names_and_unknown_name():
    assert {"softmax_cross_entropy", "binary_cross_entropy", "mse"} <= set(losses.names())
    with pytest.raises(ValueError) as info:
        losses.get("cross_entropy_typo")
    for name in ("softmax_cross_entropy", "binary_cross_entropy", "mse"):
        assert name in str(info.value)
    with pytest.raises(ValueError):
        losses.get("mse", reduction="sum")


def test_softmax_cross_entropy_is_minus_mean_log_prob_of_the_label(device, logits_labels):
    z, y = logits_labels
    loss = losses.get("softmax_cross_entropy")(polydl.tensor(z, device=device), backend.to_device(y, device))
    expected = -np.mean(np.log(_softmax(z)[np.arange(6), y]))
    assert loss.shape == ()
    np.testing.assert_allclose(float(loss.item()), expected, rtol=1e-12)


def test_softmax_cross_entropy_with_one_hot_and_probability_targets(device, logits_labels):
    z, y = logits_labels
    fn = losses.get("softmax_cross_entropy")
    onehot = np.eye(4)[y]
    a = fn(polydl.tensor(z, device=device), backend.to_device(y, device)).item()
    b = fn(polydl.tensor(z, device=device), backend.to_device(onehot, device)).item()
    np.testing.assert_allclose(a, b, rtol=1e-12)
    probs = _softmax(np.random.default_rng(1).normal(size=(6, 4)))
    c = fn(polydl.tensor(z, device=device), polydl.tensor(probs, device=device)).item()
    np.testing.assert_allclose(c, -np.sum(probs * np.log(_softmax(z))) / 6, rtol=1e-12)


def test_softmax_cross_entropy_gradient_is_yhat_minus_y_over_m(device, logits_labels):
    z, y = logits_labels
    for targets in (y, np.eye(4)[y]):
        zt = polydl.tensor(z, device=device, requires_grad=True)
        F.softmax_cross_entropy(zt, backend.to_device(targets, device)).backward()
        np.testing.assert_allclose(npy(zt.grad), (_softmax(z) - np.eye(4)[y]) / 6, rtol=1e-10, atol=1e-15)


def test_two_class_softmax_on_0_z_is_the_logistic_loss(device):
    rng = np.random.default_rng(3)
    z = rng.normal(0, 3, 8)
    y = rng.integers(0, 2, 8)
    z2 = polydl.tensor(np.stack([np.zeros(8), z], 1), device=device, requires_grad=True)
    z1 = polydl.tensor(z, device=device, requires_grad=True)
    ce = losses.get("softmax_cross_entropy")(z2, backend.to_device(y, device))
    bce = losses.get("binary_cross_entropy")(z1, backend.to_device(y, device))
    logistic = np.mean(np.log1p(np.exp(-z)) * y + np.log1p(np.exp(z)) * (1 - y))
    np.testing.assert_allclose(ce.item(), logistic, rtol=1e-12)
    np.testing.assert_allclose(bce.item(), logistic, rtol=1e-12)
    ce.backward()
    bce.backward()
    np.testing.assert_allclose(npy(z2.grad)[:, 1], npy(z1.grad), rtol=1e-10)
    np.testing.assert_allclose(npy(z1.grad), (1 / (1 + np.exp(-z)) - y) / 8, rtol=1e-10)


def test_binary_cross_entropy_formula_and_shapes(device):
    z = np.array([-2.0, -0.5, 0.0, 0.5, 3.0])
    y = np.array([0.0, 1.0, 1.0, 0.0, 1.0])
    fn = losses.get("binary_cross_entropy")
    expected = np.mean(np.log(1 + np.exp(z)) - y * z)
    for zz in (z, z.reshape(5, 1)):
        loss = fn(polydl.tensor(zz, device=device), backend.to_device(y, device))
        np.testing.assert_allclose(loss.item(), expected, rtol=1e-12)
    np.testing.assert_array_equal(backend.to_numpy(fn.predict(polydl.tensor(z.reshape(5, 1), device=device))),
                                  [0, 0, 0, 1, 1])


def test_mse_formula(device):
    rng = np.random.default_rng(4)
    p, t = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    fn = losses.get("mse")
    pt = polydl.tensor(p, device=device, requires_grad=True)
    loss = fn(pt, polydl.tensor(t, device=device))
    np.testing.assert_allclose(loss.item(), np.mean((p - t) ** 2), rtol=1e-12)
    loss.backward()
    np.testing.assert_allclose(npy(pt.grad), 2 * (p - t) / p.size, rtol=1e-12)
    labels = np.array([0, 2, 1, 1, 0])
    np.testing.assert_allclose(fn(polydl.tensor(p, device=device), backend.to_device(labels, device)).item(),
                               np.mean((p - np.eye(3)[labels]) ** 2), rtol=1e-12)


def test_numerically_stable_for_large_logits(device):
    z = polydl.tensor(np.array([[1000.0, 0.0, -1000.0], [1000.0, 0.0, -1000.0]]), device=device, requires_grad=True)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        loss = F.softmax_cross_entropy(z, backend.to_device(np.array([0, 1]), device))
        loss.backward()
    np.testing.assert_allclose(loss.item(), (0.0 + 1000.0) / 2)
    np.testing.assert_allclose(npy(z.grad), [[0, 0, 0], [0.5, -0.5, 0]], atol=1e-12)
    z32 = polydl.tensor([[1000.0, -1000.0]], device=device, requires_grad=True)  # float32
    loss = F.softmax_cross_entropy(z32, backend.to_device(np.array([1]), device))
    np.testing.assert_allclose(loss.item(), 2000.0)
    b = polydl.tensor(np.array([1000.0, -1000.0, 1000.0, -1000.0]), device=device, requires_grad=True)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        bl = F.binary_cross_entropy_with_logits(b, backend.to_device(np.array([1.0, 0.0, 0.0, 1.0]), device))
        bl.backward()
    np.testing.assert_allclose(bl.item(), 2000.0 / 4)
    np.testing.assert_allclose(npy(b.grad), [0, 0, 0.25, -0.25], atol=1e-12)


def test_hardmax():
    np.testing.assert_array_equal(losses.hardmax(polydl.tensor([0.8, 0.1, 0.1])).numpy(), [1, 0, 0])
    np.testing.assert_array_equal(losses.hardmax(polydl.tensor([[0.2, 0.7, 0.1], [0.3, 0.3, 0.4]])).numpy(),
                                  [[0, 1, 0], [0, 0, 1]])


def test_predict_is_the_arg_max(device):
    scores = polydl.tensor([[0.1, 0.9, 0.0], [2.0, 1.0, 0.5]], device=device)
    for name in ("softmax_cross_entropy", "mse"):
        np.testing.assert_array_equal(backend.to_numpy(losses.predict(losses.get(name), scores)), [1, 0])


@pytest.mark.parametrize("name, z, t", [
    ("softmax_cross_entropy", (5, 3), np.array([0, 2, 1, 1, 0])),
    ("softmax_cross_entropy", (5, 3), np.eye(3)[[0, 2, 1, 1, 0]]),
    ("binary_cross_entropy", (5,), np.array([0.0, 1.0, 1.0, 0.0, 1.0])),
    ("binary_cross_entropy", (5, 1), np.array([0, 1, 1, 0, 1])),
    ("mse", (5, 3), np.arange(15.0).reshape(5, 3) / 10),
    ("mse", (5, 3), np.array([0, 2, 1, 1, 0])),
], ids=["ce-labels", "ce-onehot", "bce", "bce-column", "mse", "mse-labels"])
def test_gradcheck_every_loss(device, name, z, t):
    rng = np.random.default_rng(2)
    fn = losses.get(name)
    zt = polydl.tensor(rng.normal(0, 1.5, z), device=device, requires_grad=True)
    assert gradcheck(fn, zt, backend.to_device(t, device))


def test_probabilities_softmax_sigmoid_and_the_loss_own(device):
    z = np.array([[1.0, 2.0, 3.0], [0.0, -1.0, 5.0]])
    p = losses.probabilities(losses.get("softmax_cross_entropy"), polydl.tensor(z, device=device))
    np.testing.assert_allclose(npy(p), _softmax(z), rtol=1e-12)
    logits = np.array([[0.0], [2.0], [-800.0]])
    p = npy(losses.probabilities(losses.get("binary_cross_entropy"), polydl.tensor(logits, device=device).data))
    s = 1 / (1 + np.exp(-np.array([0.0, 2.0])))
    np.testing.assert_allclose(p, [[1 - s[0], s[0]], [1 - s[1], s[1]], [1.0, 0.0]], rtol=1e-12)
    assert p.dtype == np.float64 and np.isfinite(p).all()

    class Own:
        def probabilities(self, scores):
            return "own"

    assert losses.probabilities(Own(), z) == "own"


def test_predict_defaults_to_the_arg_max():
    z = np.array([[0.1, 0.9], [2.0, -1.0]])
    assert losses.predict(object(), z).tolist() == [1, 0]
    assert losses.predict(losses.get("binary_cross_entropy"), np.array([[0.3], [-0.2]])).tolist() == [1, 0]


def test_unknown_parameter_names_the_valid_ones():
    with pytest.raises(ValueError, match=r"^loss 'mse' has no parameter 'reduction' \(its parameters: none\)$"):
        losses.get("mse", reduction="sum")


# ---------------------------------------------------------------------------- bad targets
@pytest.mark.parametrize("targets, bad", [([0.0, 2.0, 1.0], "2.0"), ([0.0, -0.5, 1.0], "-0.5"),
                                          ([1.0, np.nan, 0.0], "nan")])
def test_binary_cross_entropy_rejects_targets_outside_0_1(targets, bad):
    """y outside [0, 1] makes log(1 + e^z) − y·z unbounded below (a negative loss); soft targets
    inside [0, 1] stay allowed."""
    z = polydl.tensor(np.array([0.5, -1.0, 2.0]))
    with pytest.raises(ValueError, match=rf"targets must lie in \[0, 1\] .*found {bad}; for more than two classes"):
        losses.get("binary_cross_entropy")(z, np.array(targets))
    soft = F.binary_cross_entropy_with_logits(z, np.array([0.0, 0.3, 1.0])).item()
    assert soft > 0
    assert F.binary_cross_entropy_with_logits(z, np.array([True, False, True])).item() > 0


def test_labels_as_a_list_are_converted(device):
    z = polydl.tensor(np.array([[1.0, 2.0, 0.5], [0.1, -1.0, 3.0]]), device=device)
    expected = F.softmax_cross_entropy(z, polydl.tensor(np.array([1, 2]), device=device)).item()
    assert F.softmax_cross_entropy(z, [1, 2]).item() == pytest.approx(expected)
    assert F.mse(z, [1, 2]).item() == pytest.approx(F.mse(z, polydl.tensor(np.array([1, 2]), device=device)).item())
    b = polydl.tensor(np.array([0.5, -1.0]), device=device)
    assert F.binary_cross_entropy_with_logits(b, [1, 0]).item() == pytest.approx(
        F.binary_cross_entropy_with_logits(b, polydl.tensor(np.array([1.0, 0.0]), device=device)).item())
    with pytest.raises(ValueError, match="softmax_cross_entropy targets must be numbers"):
        F.softmax_cross_entropy(z, ["cat", "dog"])


def test_boolean_labels_are_refused_for_class_scores():
    z = polydl.tensor(np.array([[1.0, 2.0], [0.1, -1.0]]))
    with pytest.raises(ValueError, match=r"softmax_cross_entropy got boolean labels; give integer class indices"):
        F.softmax_cross_entropy(z, np.array([True, False]))
    with pytest.raises(ValueError, match=r"mse got boolean labels"):
        F.mse(z, np.array([True, False]))


@pytest.mark.parametrize("name", ["softmax_cross_entropy", "binary_cross_entropy", "mse"])
def test_an_empty_batch_is_one_line(name):
    z = polydl.tensor(np.zeros((0, 3)) if name != "binary_cross_entropy" else np.zeros(0))
    t = np.zeros(0, dtype=np.int64) if name != "binary_cross_entropy" else np.zeros(0)
    with pytest.raises(ValueError, match=rf"{name} got an empty batch \(scores of shape \({0},"):
        losses.get(name)(z, t)


def test_out_of_range_label_names_the_sample_counted_from_1():
    z = polydl.tensor(np.zeros((3, 2)))
    for fn in (F.softmax_cross_entropy, F.mse):
        with pytest.raises(ValueError, match=r"label 7 \(sample 2 of the batch\) is not a class index"):
            fn(z, np.array([0, 7, 1]))


@pytest.mark.parametrize("name", ["softmax_cross_entropy", "mse"])
@pytest.mark.parametrize("targets, message", [
    (np.array([0.7, 1.2]), r"label 0\.7 \(sample 1\) is not an integer: labels are class numbers 0, 1, 2, \.\.\. "
                           r"\(an integer array\), or target rows of shape \(2, 3\)"),
    ([0.0, 1.5], r"label 1\.5 \(sample 2\) is not an integer"),
    (np.array([0.0, 1.0]), r"labels of dtype float64 where class numbers are due; give them as integers"),
    (np.array("ab"), r"labels must be a 1-D array of class numbers, one per sample, not a single value 'ab'"),
    (np.array(["a", "b"]), r"labels must be class numbers 0, 1, 2, \.\.\. \(an integer array\), not <U1"),
])
def test_labels_a_loss_cannot_use_name_the_problem(name, targets, message):
    scores = polydl.tensor(np.zeros((2, 3)), requires_grad=True)
    with pytest.raises(ValueError, match=f"^{name}: {message}"):
        losses.get(name)(scores, targets)


def test_binary_cross_entropy_names_text_labels_and_keeps_probability_targets():
    scores = polydl.tensor(np.zeros((2, 1)), requires_grad=True)
    with pytest.raises(ValueError, match=r"^binary_cross_entropy: labels must be class numbers .*not <U1"):
        losses.get("binary_cross_entropy")(scores, np.array(["a", "b"]))
    assert float(losses.get("binary_cross_entropy")(scores, np.array([0.7, 0.2])).data) == pytest.approx(np.log(2))
