"""Captured training steps (polydl.capture.TrainStep): a replayed step is the eager step, bit for
bit, and anything that changes falls back to the eager path."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import polydl
from polydl import amp, backend, cpu_kernels, losses, models, nn, optim
from polydl import functional as F
from polydl.capture import TrainStep, enabled
from polydl.nn.module import Module
from polydl.tensor import Parameter

OPTIMIZERS = {"sgd": lambda ps: optim.SGD(ps, lr=0.05), "momentum": lambda ps: optim.Momentum(ps, lr=0.05),
              "rmsprop": lambda ps: optim.RMSprop(ps, lr=0.01), "adam": lambda ps: optim.Adam(ps, lr=0.01)}


def _data(device, n=160, width=12, classes=4, regression=False, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, width)).astype(np.float32)
    y = rng.standard_normal((n, classes)).astype(np.float32) if regression else rng.integers(0, classes, n)
    return backend.to_device(X, device), backend.to_device(y, device)


def _train(make_model, device, capture, loss="softmax_cross_entropy", opt="adam", steps=8, batches=(16, 16, 7),
           regression=False, between=None, **step_kw):
    """Losses of ``steps`` mini-batches (sizes cycling through ``batches``), the parameters,
    buffers and optimizer state after them, and the TrainStep."""
    polydl.manual_seed(0)
    model = make_model().to(device)
    o = OPTIMIZERS[opt](model.parameters())
    step = TrainStep(model, losses.get(loss), o, capture=capture, **step_kw)
    X, y = _data(device, regression=regression)
    out, start = [], 0
    for k in range(steps):
        b = batches[k % len(batches)]
        if between is not None:
            between(k, model, o)
        loss_t, scores = step(X[start:start + b], y[start:start + b])
        out.append((backend.to_numpy(loss_t.data).copy(), backend.to_numpy(scores.data).copy()))
        start = (start + b) % 120
    tensors = [backend.to_numpy(t.data).copy() for t in list(model.parameters()) + list(model.buffers())]
    tensors += [backend.to_numpy(p.grad).copy() for p in model.parameters()]  # the last step's gradients
    tensors += [np.array([p._gzero for p in model.parameters()])]  # and the slots' flags
    state = [backend.to_numpy(a).copy() for s in o.state for a in s.values()]
    return out, tensors, state, step


def _same(a, b):
    (la, ta, sa, _), (lb, tb, sb, _) = a, b
    assert len(la) == len(lb)
    for (l1, s1), (l2, s2) in zip(la, lb, strict=True):
        assert l1.tobytes() == l2.tobytes() and s1.tobytes() == s2.tobytes()
    for x, y in zip(ta + sa, tb + sb, strict=True):
        assert x.dtype == y.dtype and x.tobytes() == y.tobytes()


MODELS = {
    "bn-relu": lambda: nn.mlp((12, 16, 8, 4)),
    "tanh": lambda: nn.mlp((12, 16, 4), activation="tanh", normalizer="none"),
    "leaky-sigmoid": lambda: nn.Sequential(nn.Linear(12, 10), nn.LeakyReLU(0.1), nn.Linear(10, 8), nn.Sigmoid(),
                                           nn.Linear(8, 4)),
    "dropout": lambda: nn.mlp((12, 16, 4), dropout=0.3),
}


@pytest.mark.parametrize("kernels", ["auto", "off"])
@pytest.mark.parametrize("opt", sorted(OPTIMIZERS))
@pytest.mark.parametrize("model", sorted(MODELS))
def test_replayed_steps_are_the_eager_steps_bit_for_bit(device, model, opt, kernels):
    with cpu_kernels.use(kernels):
        captured = _train(MODELS[model], device, True, opt=opt)
        eager = _train(MODELS[model], device, False, opt=opt)
    _same(captured, eager)
    step = captured[3]
    assert step.why is None and len(step.plans) == 2
    assert step.replays == 6  # 8 steps: the first of each of the two shapes recorded, the rest replayed
    assert eager[3].replays == 0 and eager[3].why == "capture is off"


@pytest.mark.parametrize("loss", ["mse", "softmax_cross_entropy"])
def test_a_population_and_a_regression_replay_exactly(device, loss):
    regression = loss == "mse"
    make = (lambda: nn.mlp((12, 10, 4), population=3, dropout=[0.0, 0.2, 0.4])) if not regression else \
        (lambda: nn.mlp((12, 10, 4)))

    def run(capture):
        with polydl.random.members([polydl.random.Stream(s) for s in (5, 6, 7)]) if not regression else \
                _nothing():
            return _train(make, device, capture, loss=loss, regression=regression)

    captured, eager = run(True), run(False)
    _same(captured, eager)
    assert captured[3].replays == 6


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_shapes_beyond_the_plans_held_are_recorded_again(device):
    captured = _train(MODELS["bn-relu"], device, True, batches=(16, 9, 5), steps=9, max_plans=2)
    eager = _train(MODELS["bn-relu"], device, False, batches=(16, 9, 5), steps=9)
    _same(captured, eager)
    assert captured[3].replays == 0 and len(captured[3].plans) == 2  # each shape evicts the oldest plan


def _change_at(k_change, change, k_back=None, back=None):
    def between(k, model, opt):
        if k == k_change:
            change(model, opt)
        if k == k_back and back is not None:
            back(model, opt)
    return between


CHANGES = {
    "lr": (lambda m, o: setattr(o, "lr", 0.002), None),
    "beta1": (lambda m, o: setattr(o, "beta1", 0.5), None),
    "bn-momentum": (lambda m, o: setattr(m[1], "momentum", 0.5), None),
    "eval-mode": (lambda m, o: m.eval(), lambda m, o: m.train()),
    "running-mean-array": (lambda m, o: setattr(m[1].running_mean, "data", m[1].running_mean.data.copy()), None),
    "frozen-layer": (lambda m, o: setattr(m[0].weight, "requires_grad", False), None),
    "appended-layer": (lambda m, o: m.append(nn.ReLU()), None),
}


@pytest.mark.parametrize("what", sorted(CHANGES))
def test_a_change_between_steps_is_picked_up(device, what):
    change, back = CHANGES[what]
    between = _change_at(4, change, 6, back)
    captured = _train(MODELS["bn-relu"], device, True, batches=(16,), between=between)
    eager = _train(MODELS["bn-relu"], device, False, batches=(16,), between=between)
    _same(captured, eager)
    assert captured[3].replays >= 2  # replayed before the change (and after it, where it can be)


def test_the_loss_and_scores_of_a_replay_are_the_recorded_tensors(device):
    polydl.manual_seed(0)
    model = nn.mlp((12, 8, 4)).to(device)
    step = TrainStep(model, losses.get("softmax_cross_entropy"), optim.Adam(model.parameters()), capture=True)
    X, y = _data(device)
    first = step(X[:16], y[:16])
    second = step(X[16:32], y[16:32])
    third = step(X[32:48], y[32:48])
    assert second[0] is third[0] and second[1] is third[1]  # rewritten in place by every replay
    assert first[0] is second[0]  # the recording step's own outputs
    assert step.replays == 2


class _Plain(Module):
    """A module that does not say its forward is made of polydl's ops."""

    def __init__(self):
        self.inner = nn.Linear(12, 4)

    def forward(self, x):
        return self.inner(x)


class _Patched(nn.Linear):
    def forward(self, x):  # a subclass's own forward, not declared capturable
        return F.linear(x, self.weight, self.bias) * 1.0


class _Tied(Module):
    """One weight used twice, and two paths that meet: both gradients are added."""

    capturable = True

    def __init__(self):
        self.first = nn.Linear(12, 12, bias=False)
        self.out = nn.Linear(12, 4)

    def forward(self, x):
        h = F.relu(F.linear(x, self.first.weight))
        h = h + F.tanh(F.linear(h, self.first.weight))
        return self.out(h)


def test_models_it_cannot_capture_train_eagerly_and_say_why(device):
    for make, why in ((_Plain, "_Plain's forward has no captured form"),
                      (_Patched.__new__ and (lambda: _Patched(12, 4)), "_Patched's forward has no captured form"),
                      (lambda: nn.Sequential(nn.Linear(12, 8), nn.Softmax(), nn.Linear(8, 4)), "softmax")):
        captured = _train(make, device, True, batches=(16,))
        eager = _train(make, device, False, batches=(16,))
        _same(captured, eager)
        assert captured[3].replays == 0 and why in captured[3].why


class _CountingLoss:
    """A loss whose Python must run at every step (it counts them): not declared capturable."""

    def __init__(self):
        self.calls = 0

    def __call__(self, scores, targets):
        self.calls += 1
        return F.softmax_cross_entropy(scores, targets)


def test_a_loss_that_does_not_declare_itself_capturable_runs_every_step():
    model = nn.mlp((12, 8, 4))
    loss = _CountingLoss()
    step = TrainStep(model, loss, optim.SGD(model.parameters(), lr=0.1), capture=True)
    X, y = _data("cpu")
    for k in range(4):
        step(X[16 * k:16 * k + 16], y[16 * k:16 * k + 16])
    assert loss.calls == 4 and step.replays == 0
    assert step.why == "the loss _CountingLoss has no captured form (its class does not declare capturable = True)"
    _CountingLoss.capturable = True  # declared, but it changes its own attribute at every call:
    try:                               # each step finds the loss changed and runs eagerly again
        step = TrainStep(model, loss, optim.SGD(model.parameters(), lr=0.1), capture=True)
        for k in range(4):
            step(X[16 * k:16 * k + 16], y[16 * k:16 * k + 16])
        assert loss.calls == 8 and step.replays == 0
    finally:
        del _CountingLoss.capturable


class _PluginLoss:
    capturable = True  # its author says: it computes through polydl's ops only

    def __call__(self, scores, targets):
        return F.softmax_cross_entropy(scores, targets) * 0.5


def test_a_plugin_loss_that_declares_itself_capturable_is_captured(device):
    def train(capture):
        polydl.manual_seed(0)
        model = nn.mlp((12, 8, 4)).to(device)
        step = TrainStep(model, _PluginLoss(), optim.Adam(model.parameters(), lr=0.01), capture=capture)
        X, y = _data(device)
        out = [backend.to_numpy(step(X[16 * k:16 * k + 16], y[16 * k:16 * k + 16])[0].data).copy() for k in range(4)]
        return out, step

    (a, sa), (b, _) = train(True), train(False)
    assert [x.tobytes() for x in a] == [x.tobytes() for x in b] and sa.replays == 3


def test_a_tied_weight_and_paths_that_meet_replay_exactly(device):
    captured = _train(_Tied, device, True, batches=(16,))
    _same(captured, _train(_Tied, device, False, batches=(16,)))
    assert captured[3].replays == 7 and captured[3].why is None


def test_no_capture_under_autocast_or_without_gradients(device):
    polydl.manual_seed(0)
    model = nn.mlp((12, 8, 4)).to(device)
    step = TrainStep(model, losses.get("softmax_cross_entropy"), optim.SGD(model.parameters(), lr=0.1), capture=True)
    X, y = _data(device)
    with amp.autocast("bfloat16" if device == "cpu" else "float16"):
        for k in range(3):
            step(X[16 * k:16 * k + 16], y[16 * k:16 * k + 16])
    assert step.replays == 0 and step.why == "autocast is on" and not step.plans
    for k in range(3):
        step(X[16 * k:16 * k + 16], y[16 * k:16 * k + 16])
    assert step.replays == 2


def test_polydl_capture_off_keeps_every_step_eager(monkeypatch):
    monkeypatch.setenv("POLYDL_CAPTURE", "off")
    assert enabled() is False
    model = nn.mlp((12, 8, 4))
    step = TrainStep(model, losses.get("softmax_cross_entropy"), optim.SGD(model.parameters(), lr=0.1))
    X, y = _data("cpu")
    for k in range(3):
        step(X[16 * k:16 * k + 16], y[16 * k:16 * k + 16])
    assert step.replays == 0 and step.why == "capture is off"
    for value, on in (("on", True), ("1", True), ("", True), ("0", False), ("no", False)):
        monkeypatch.setenv("POLYDL_CAPTURE", value)
        assert enabled() is on
    monkeypatch.setenv("POLYDL_CAPTURE", "sometimes")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert enabled() is True
    assert "POLYDL_CAPTURE must be on or off, not 'sometimes'" in str(caught[0].message)


def test_a_bad_label_in_a_replayed_step_is_refused_as_in_an_eager_step():
    model = nn.mlp((12, 8, 4))
    step = TrainStep(model, losses.get("softmax_cross_entropy"), optim.SGD(model.parameters(), lr=0.1), capture=True)
    X, y = _data("cpu")
    step(X[:16], y[:16])
    bad = y[16:32].copy()
    bad[3] = 9
    with pytest.raises(ValueError, match="label 9 .* is not a class index"):
        step(X[16:32], bad)


def test_a_parameter_outside_the_optimizer_is_not_captured():
    model = nn.mlp((12, 8, 4))
    model.extra = Parameter(np.ones(3, np.float32))
    step = TrainStep(model, losses.get("softmax_cross_entropy"), optim.SGD(model[0].parameters(), lr=0.1),
                     capture=True)
    X, y = _data("cpu")
    for k in range(2):
        step(X[16 * k:16 * k + 16], y[16 * k:16 * k + 16])
    assert step.replays == 0 and step.why == "a parameter is outside the optimizer's flat buffers"


def test_another_threads_ops_are_not_recorded():
    """A step recorded in one thread while another thread runs ops: the recording holds only its
    own thread's ops, and the replays stay exact."""
    import threading

    stop = threading.Event()

    def busy():
        a = polydl.tensor(np.ones((8, 8), np.float32), requires_grad=True)
        while not stop.is_set():
            (F.relu(a) * 2.0).sum()

    worker = threading.Thread(target=busy)
    worker.start()
    try:
        captured = _train(MODELS["bn-relu"], "cpu", True, batches=(16,))
    finally:
        stop.set()
        worker.join()
    _same(captured, _train(MODELS["bn-relu"], "cpu", False, batches=(16,)))
    assert captured[3].replays == 7 and captured[3].why is None


CNNS = {
    "cnn": lambda: models.get("cnn", (1, 8, 8), 4, channels=[4, 6], hidden=[8]),
    "lenet5-avg": lambda: nn.Sequential(nn.Unflatten((1, 8, 8)), nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3),
                                        nn.Tanh(), nn.AvgPool2d(2), nn.Conv2d(3, 5, 3, padding=1, bias=False),
                                        nn.BatchNorm2d(5), nn.ReLU(), nn.MaxPool2d(2, padding=1),
                                        nn.GlobalAvgPool2d(), nn.Linear(5, 4)),
}


@pytest.mark.parametrize("kernels", ["auto", "off"])
@pytest.mark.parametrize("model", sorted(CNNS))
def test_convolutional_networks_replay_exactly(device, model, kernels):
    def data(n=160, seed=1):
        rng = np.random.default_rng(seed)
        return (backend.to_device(rng.standard_normal((n, 64)).astype(np.float32), device),
                backend.to_device(rng.integers(0, 4, n), device))

    def train(capture):
        polydl.manual_seed(0)
        model_ = CNNS[model]().to(device)
        o = optim.Adam(model_.parameters(), lr=0.01)
        step = TrainStep(model_, losses.get("softmax_cross_entropy"), o, capture=capture)
        X, y = data()
        out = [backend.to_numpy(step(X[16 * k:16 * k + 16], y[16 * k:16 * k + 16])[0].data).copy()
               for k in range(5)]
        return out, [backend.to_numpy(t.data).copy() for t in list(model_.parameters()) + list(model_.buffers())], step

    with cpu_kernels.use(kernels):
        (la, ta, sa), (lb, tb, _) = train(True), train(False)
    assert [x.tobytes() for x in la] == [x.tobytes() for x in lb]
    assert all(x.tobytes() == y.tobytes() for x, y in zip(ta, tb, strict=True))
    assert sa.why is None and sa.replays == 4
