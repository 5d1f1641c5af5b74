"""The CUDA form of a captured step: graphs of the replays between cuBLAS products (run on the
CuPy stand-in, whose captures record without running and refuse what CuPy refuses), launched
instead of the kernels, and the same values as the eager steps."""
from __future__ import annotations

import numpy as np
import pytest

import polydl
from polydl import backend, losses, nn, optim
from polydl.capture import TrainStep


def _step(device, make, capture=True):
    polydl.manual_seed(0)
    model = make().to(device)
    return TrainStep(model, losses.get("softmax_cross_entropy"), optim.Adam(model.parameters(), lr=0.01),
                     capture=capture)


def _batches(device, n=5, b=16):
    rng = np.random.default_rng(2)
    X = backend.to_device(rng.standard_normal((n * b, 12)).astype(np.float32), device)
    y = backend.to_device(rng.integers(0, 4, n * b), device)
    return [(X[k * b:(k + 1) * b], y[k * b:(k + 1) * b]) for k in range(n)]


@pytest.mark.cuda
def test_a_plan_becomes_cuda_graphs_between_its_products(device):
    if device != "cuda":
        pytest.skip("the CUDA form")
    captured, eager = _step(device, lambda: nn.mlp((12, 16, 8, 4))), _step(device, lambda: nn.mlp((12, 16, 8, 4)),
                                                                           capture=False)
    for xb, yb in _batches(device):
        a, b = captured(xb, yb), eager(xb, yb)
        assert backend.to_numpy(a[0].data).tobytes() == backend.to_numpy(b[0].data).tobytes()
        assert backend.to_numpy(a[1].data).tobytes() == backend.to_numpy(b[1].data).tobytes()
    for p, q in zip(captured.model.parameters(), eager.model.parameters(), strict=True):
        assert backend.to_numpy(p.data).tobytes() == backend.to_numpy(q.data).tobytes()
    plan = next(iter(captured.plans.values()))
    assert captured.replays == 4 and plan.host_why is None
    # batch norm, the loss and the gradients' sums are graphs; the products between them are not
    assert plan.graph is not None and plan.graph.graphs >= 3
    assert len(plan.graph.items) > plan.graph.graphs


@pytest.mark.cuda
def test_random_draws_keep_a_plan_off_cuda_graphs(device):
    if device != "cuda":
        pytest.skip("the CUDA form")
    step = _step(device, lambda: nn.mlp((12, 16, 4), dropout=0.3))
    for xb, yb in _batches(device, 3):
        step(xb, yb)
    plan = next(iter(step.plans.values()))
    assert step.replays == 2 and plan.graph is None
    assert plan.host_why == "dropout draws its masks on the host's random stream"


def test_numpy_plans_replay_without_graphs():
    step = _step("cpu", lambda: nn.mlp((12, 16, 4)))
    for xb, yb in _batches("cpu", 3):
        step(xb, yb)
    plan = next(iter(step.plans.values()))
    assert step.replays == 2 and plan.graph is None and plan.host_why == "NumPy arrays"
