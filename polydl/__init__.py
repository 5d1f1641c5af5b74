"""polydl: one model definition, two devices (NumPy on CPU, CuPy on CUDA).

A small define-by-run autodiff engine with the layers, losses, optimizers and learning-rate
schedules of practical deep-learning training.
"""
from __future__ import annotations

__version__ = "0.1.0"

import os as _os

from . import backend

if _os.environ.get("POLYDL_MALLOC_TUNING", "1") != "0":
    backend.tune_malloc()
from . import (
    amp,
    cpu_kernels,
    datasets,
    functional,
    losses,
    models,
    nn,
    normalizers,
    optim,
    plugins,  # the loader; importing it loads no plugin (that happens on first use)
    schedules,
    testing,
)
from . import functional as F
from .backend import Device, DeviceError, cuda_available, device
from .hookspecs import hookimpl
from .random import manual_seed
from .tensor import Parameter, Tensor, enable_grad, is_grad_enabled, no_grad, tensor

__all__ = [
    "__version__", "tensor", "Tensor", "Parameter", "no_grad", "enable_grad", "is_grad_enabled",
    "manual_seed", "device", "Device", "DeviceError", "cuda_available", "hookimpl", "backend",
    "functional", "F", "nn", "optim", "schedules", "losses", "normalizers", "datasets", "models", "testing", "amp",
    "cpu_kernels", "plugins",
]
