"""End to end: a BatchNorm MLP built from polydl's parts learns the 8×8 digits."""
from __future__ import annotations

import time

import pytest

import polydl
from polydl import backend, datasets, losses, nn, optim, schedules
from polydl import random as prandom


@pytest.mark.slow
def test_batchnorm_mlp_reaches_97_percent_on_digits(device):
    t0 = time.perf_counter()
    polydl.manual_seed(0)
    data = datasets.digits()
    # pixels are already in [0, 1]; z-scoring would blow up the nearly constant border pixels
    X = {k: polydl.tensor(getattr(data, f"X_{k}"), device=device) for k in ("train", "val", "test")}
    y = {k: getattr(data, f"y_{k}") for k in ("train", "val", "test")}
    y_train = backend.to_device(y["train"], device)

    model = nn.mlp([64, 128, 64, 10], activation="relu", normalizer="batchnorm").to(device=device)
    assert any(isinstance(layer, nn.BatchNorm) for layer in model)
    opt = optim.Adam(model.parameters(), lr=0.01)
    loss_fn = losses.get("softmax_cross_entropy")
    lr = schedules.get("inverse_time", lr0=0.01, decay_rate=0.1)

    def accuracy(split):
        model.eval()
        with polydl.no_grad():
            pred = backend.to_numpy(loss_fn.predict(model(X[split])))
        return float((pred == y[split]).mean())

    best_val, best_state, first_loss, last_loss = -1.0, None, None, None
    for epoch in range(1, 31):
        opt.lr = lr(epoch)
        model.train()
        order = prandom.host_generator().permutation(len(y["train"]))
        for start in range(0, len(order), 32):
            idx = backend.to_device(order[start:start + 32], device)
            opt.zero_grad()
            loss = loss_fn(model(X["train"][idx]), y_train[idx])
            loss.backward()
            opt.step()
            first_loss = loss.item() if first_loss is None else first_loss
            last_loss = loss.item()
        val = accuracy("val")
        if val > best_val:  # early stopping on the validation split
            best_val, best_state = val, model.state_dict()
    model.load_state_dict(best_state)
    test = accuracy("test")
    elapsed = time.perf_counter() - t0

    assert last_loss < first_loss / 10
    assert test >= 0.97, f"test accuracy {test:.4f} (best validation accuracy {best_val:.4f})"
    if device == "cpu":
        assert elapsed < 30, f"30 epochs took {elapsed:.1f} s"
