"""Tests of the focal-loss plugin: values, gradients (both devices), γ = 0 = cross-entropy."""
import ast
import pathlib

import numpy as np
import polydl_focal
import pytest
from polydl_focal import FocalLoss

import polydl
from polydl import functional as F
from polydl.testing import gradcheck, registered_plugin


def _reference(z, y, gamma, alpha=None):
    z = z - z.max(1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    lpt = logp[np.arange(len(y)), y]
    w = np.ones(len(y)) if alpha is None else np.asarray(alpha)[y]
    return -(w * (1 - np.exp(lpt)) ** gamma * lpt).mean()


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    return rng.normal(size=(6, 4)) * 2, np.array([0, 3, 1, 1, 2, 0])


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0, 5.0])
def test_value_matches_the_formula(device, batch, gamma):
    z, y = batch
    loss = FocalLoss(gamma)(polydl.tensor(z, dtype=np.float64, device=device), polydl.tensor(y, device=device))
    assert loss.shape == () and loss.device.type == polydl.device(device).type
    assert loss.item() == pytest.approx(_reference(z, y, gamma), rel=1e-10)


def test_alpha_weights_classes(batch):
    z, y = batch
    alpha = [0.25, 1.0, 2.0, 0.5]
    loss = FocalLoss(1.5, alpha=alpha)(polydl.tensor(z, dtype=np.float64), y)
    assert loss.item() == pytest.approx(_reference(z, y, 1.5, alpha), rel=1e-10)


@pytest.mark.parametrize("gamma", [0.0, 0.7, 2.0])
def test_gradcheck(device, batch, gamma):
    z, y = batch
    scores = polydl.tensor(z, dtype=np.float64, device=device, requires_grad=True)
    labels = polydl.tensor(y, device=device)
    assert gradcheck(lambda s: FocalLoss(gamma, alpha=[1.0, 0.5, 2.0, 1.0])(s, labels), scores)


def test_gradcheck_soft_targets(device, batch):
    z, y = batch
    soft = np.full((6, 4), 0.1)
    soft[np.arange(6), y] = 0.7
    scores = polydl.tensor(z, dtype=np.float64, device=device, requires_grad=True)
    targets = polydl.tensor(soft, dtype=np.float64, device=device)
    assert gradcheck(lambda s: FocalLoss(2.0)(s, targets), scores)


def test_gamma_zero_is_softmax_cross_entropy(device, batch):
    z, y = batch
    labels = polydl.tensor(y, device=device)
    onehot = polydl.tensor(np.eye(4)[y], dtype=np.float64, device=device)
    for targets in (labels, onehot):
        a = polydl.tensor(z, dtype=np.float64, device=device, requires_grad=True)
        b = polydl.tensor(z, dtype=np.float64, device=device, requires_grad=True)
        fa, fb = FocalLoss(gamma=0)(a, targets), F.softmax_cross_entropy(b, targets)
        fa.backward()
        fb.backward()
        assert fa.item() == pytest.approx(fb.item(), rel=1e-12)
        np.testing.assert_allclose(polydl.backend.to_numpy(a.grad), polydl.backend.to_numpy(b.grad), atol=1e-12)


def test_down_weights_easy_examples():
    easy = polydl.tensor([[4.0, 0.0, 0.0]], dtype=np.float64)
    hard = polydl.tensor([[0.0, 0.5, 0.0]], dtype=np.float64)
    ce_ratio = FocalLoss(0)(easy, [0]).item() / FocalLoss(0)(hard, [0]).item()
    focal_ratio = FocalLoss(2)(easy, [0]).item() / FocalLoss(2)(hard, [0]).item()
    assert focal_ratio < ce_ratio / 10


def test_confident_float32_scores_have_finite_gradients():
    s = polydl.tensor([[60.0, 0.0], [0.0, 60.0]], requires_grad=True)  # p of the class rounds to 1
    FocalLoss(0.5)(s, polydl.tensor([0, 1])).backward()
    assert np.all(np.isfinite(s.grad))


@pytest.mark.parametrize("kwargs, message", [
    ({"gamma": -1}, "gamma must be a finite number >= 0"),
    ({"gamma": float("nan")}, "gamma must be a finite number >= 0"),
    ({"gamma": "2"}, "gamma must be a finite number >= 0"),
    ({"alpha": 0.25}, "alpha must be None or a sequence"),
    ({"alpha": []}, "alpha must be None or a sequence"),
    ({"alpha": [1, -1]}, "alpha weights must be finite numbers >= 0"),
    ({"alpha": [0, 0]}, "not all 0"),
])
def test_bad_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FocalLoss(**kwargs)


@pytest.mark.parametrize("scores, targets, message", [
    (np.zeros((2, 3)), np.array([0, 3]), r"labels must be in \[0, 3\)"),
    (np.zeros((2, 3)), np.array([0, 1, 2]), "do not match scores"),
    (np.zeros((2, 3)), np.zeros((2, 2)), "do not match scores"),
    (np.zeros(3), np.array([0, 1, 0]), r"shape \(batch, classes\)"),
])
def test_bad_inputs(scores, targets, message):
    with pytest.raises(ValueError, match=message):
        FocalLoss()(polydl.tensor(scores), targets)


def test_alpha_must_match_classes():
    with pytest.raises(ValueError, match="alpha has 2 weights but the scores have 3 classes"):
        FocalLoss(alpha=[1, 1])(polydl.tensor(np.zeros((1, 3))), [0])


def test_registers_focal_through_the_hook():
    with registered_plugin(polydl_focal, name="focal") as info:
        assert info.registered == {"losses": ["focal"]}
        loss = polydl.losses.get("focal", gamma=1.0)
        assert isinstance(loss, FocalLoss) and loss.gamma == 1.0
        assert polydl.losses.predict(loss, polydl.tensor([[0.1, 0.9]])).tolist() == [1]
        with pytest.raises(ValueError, match=r"loss 'focal' has no parameter 'beta' \(its parameters: gamma, alpha\)"):
            polydl.losses.get("focal", beta=1)


def test_uses_polydl_ops_only():
    tree = ast.parse(pathlib.Path(polydl_focal.__file__).read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not imported & {"numpy", "cupy"}


def test_entry_point_is_declared():
    from importlib.metadata import PackageNotFoundError, distribution
    try:
        dist = distribution("polydl-focal")
    except PackageNotFoundError:
        pytest.skip("polydl-focal is not installed (scripts/test installs it)")
    assert [(ep.name, ep.value) for ep in dist.entry_points if ep.group == "polydl"] == [("focal", "polydl_focal")]
    assert polydl.losses.registry.entry("focal").distribution == "polydl-focal"
