"""The convolutional workloads of ``benchmarks/run.py``: LeNet-5 with BatchNorm2d (C1).

C1 trains ``polydl.models.get("lenet5", (1, 28, 28), 10)`` — what ``polydl train --model lenet5``
builds for MNIST — on random 1×28×28 images with Adam and softmax cross-entropy, batch 128:

    Conv2d 1→6 5×5 (padding 2, no bias) → BatchNorm2d → ReLU → MaxPool2d 2      28×28 → 14×14
    Conv2d 6→16 5×5 (no bias) → BatchNorm2d → ReLU → MaxPool2d 2                14×14 → 5×5
    Flatten 400 → Linear 120 (no bias) → BatchNorm → ReLU → Linear 84 (no bias) → BatchNorm → ReLU
    → Linear 10

PyTorch's side is the same network (``torch.nn``, BatchNorm momentum 0.1 = polydl's 0.9 kept).
The GEMM floor is the time of the matrix products alone of the same step, the convolutions as
their im2col products (the unfolding itself not counted): forward cols·W per layer, backward
colsᵀ·g for every weight and g·Wᵀ for every layer but the first.
"""
from __future__ import annotations

import numpy as np

#: name: (input shape, classes, batch size, samples per epoch)
CONV_WORKLOADS = {"C1": ((1, 28, 28), 10, 128, 6144)}
#: the GPU batch of each workload
CONV_GPU_BATCH = {"C1": 512}

#: the products of one LeNet-5 step for a batch of B: (rows per sample, inner, outer) of each layer,
#: rows = output positions (a convolution's) or 1 (a dense layer's), inner = fan-in, outer = fan-out
LENET5_PRODUCTS = ((28 * 28, 1 * 5 * 5, 6), (10 * 10, 6 * 5 * 5, 16), (1, 400, 120), (1, 120, 84), (1, 84, 10))


def make_images(shape, classes, samples, seed=0):
    """Random images as polydl keeps them, rows (samples, prod(shape)) float32, and labels."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((samples, int(np.prod(shape))), dtype=np.float32)
    return X, rng.integers(0, classes, samples).astype(np.int64)


class PolydlConvSide:
    """polydl's training loop over the registered ``lenet5``, each mini-batch one captured
    ``TrainStep`` (``capture=False``: eager); ``kernels=False`` with the fused CPU kernels off
    (the NumPy forms)."""

    def __init__(self, shape, classes, batch, X, y, device, kernels=True, capture=True):
        import polydl
        from polydl import backend, losses, models, optim
        from polydl.capture import TrainStep

        self.name = ("polydl" if kernels else "polydl NumPy only") + ("" if capture else " eager")
        self.kernels = "auto" if kernels else "off"
        self.polydl = polydl
        polydl.manual_seed(0)
        self.model = models.get("lenet5", shape, classes).to(device)
        self.opt = optim.Adam(self.model.parameters(), lr=1e-3)
        self.loss = losses.get("softmax_cross_entropy")
        self.X, self.y = backend.to_device(X, device), backend.to_device(y, device)
        self.batch = batch
        self.xp = backend.get_array_module(self.X)
        self.step = TrainStep(self.model, self.loss, self.opt, capture=capture)

    def epoch(self):
        step, X, y, b = self.step, self.X, self.y, self.batch
        last = None
        with self.polydl.cpu_kernels.use(self.kernels):
            for i in range(0, len(y) - b + 1, b):
                last, _ = step(X[i:i + b], y[i:i + b])
        if self.xp is not np:
            self.xp.cuda.get_current_stream().synchronize()
        return float(last.item())


class TorchConvSide:
    """The same LeNet-5 in PyTorch (``fused``: Adam's fused step)."""

    def __init__(self, shape, classes, batch, X, y, device, fused=False):
        import torch
        from torch import nn

        self.torch = torch
        torch.manual_seed(0)
        self.dev = "cuda" if device.startswith("cuda") else "cpu"
        c, h, w = shape
        flat = 16 * ((h // 2 - 4) // 2) * ((w // 2 - 4) // 2)
        self.model = nn.Sequential(
            nn.Conv2d(c, 6, 5, padding=2, bias=False), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5, bias=False), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(flat, 120, bias=False), nn.BatchNorm1d(120), nn.ReLU(),
            nn.Linear(120, 84, bias=False), nn.BatchNorm1d(84), nn.ReLU(), nn.Linear(84, classes)).to(self.dev)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3, **({"fused": True} if fused else {}))
        self.loss = nn.CrossEntropyLoss()
        self.X = torch.from_numpy(X).reshape(len(X), *shape).to(self.dev)
        self.y = torch.from_numpy(y).to(self.dev)
        self.batch = batch
        self.name = "torch fused" if fused else "torch"

    def epoch(self):
        model, opt, loss_fn, X, y, b = self.model, self.opt, self.loss, self.X, self.y, self.batch
        last = None
        for i in range(0, len(y) - b + 1, b):
            opt.zero_grad(set_to_none=True)
            last = loss_fn(model(X[i:i + b]), y[i:i + b])
            last.backward()
            opt.step()
        if self.dev == "cuda":
            self.torch.cuda.synchronize()
        return float(last.item())


class ConvGemmFloor:
    """Only the matrix products of a LeNet-5 step (:data:`LENET5_PRODUCTS`) on preallocated
    arrays: the time no im2col implementation can go below."""

    name = "GEMM floor"

    def __init__(self, shape, classes, batch, X, y, device):
        from polydl import backend

        xp = self.xp = backend.device(device).xp
        rng = np.random.default_rng(0)
        self.n, self.batch = len(y), batch
        self.layers = []
        for rows, inner, outer in LENET5_PRODUCTS:
            m = batch * rows
            arrays = [rng.standard_normal(s, dtype=np.float32) * 0.05 for s in ((m, inner), (inner, outer))]
            cols, w = (backend.to_device(a, device) for a in arrays)
            self.layers.append((cols, w, xp.empty((m, outer), np.float32), xp.empty_like(w),
                                xp.empty((m, inner), np.float32)))

    def epoch(self):
        xp = self.xp
        for _ in range(0, self.n - self.batch + 1, self.batch):
            for cols, w, out, _, _ in self.layers:
                xp.matmul(cols, w, out=out)
            for k in range(len(self.layers) - 1, -1, -1):
                cols, w, out, dw, dcols = self.layers[k]
                xp.matmul(cols.T, out, out=dw)
                if k > 0:
                    xp.matmul(out, w.T, out=dcols)
        if xp is not np:
            xp.cuda.get_current_stream().synchronize()
        return 0.0


def conv_sides(name, device, sides_wanted):
    """(the sides of workload ``name`` that ``sides_wanted`` names, its sizes, batch, samples)."""
    shape, classes, batch, samples = CONV_WORKLOADS[name]
    if device.startswith("cuda"):
        batch = CONV_GPU_BATCH[name]
        samples = max(samples, batch * 40)
    X, y = make_images(shape, classes, samples)
    args = (shape, classes, batch, X, y, device)
    sides = []
    if "polydl" in sides_wanted:
        sides.append(PolydlConvSide(*args))
    if "eager" in sides_wanted:
        sides.append(PolydlConvSide(*args, capture=False))
    if "numpy" in sides_wanted and not device.startswith("cuda"):
        sides.append(PolydlConvSide(*args, kernels=False))
    if "torch" in sides_wanted:
        sides.append(TorchConvSide(*args))
    if "fused" in sides_wanted:
        sides.append(TorchConvSide(*args, fused=True))
    if "gemm" in sides_wanted:
        sides.append(ConvGemmFloor(*args))
    sizes = ("lenet5", "×".join(map(str, shape)), classes)
    return sides, sizes, batch, samples
