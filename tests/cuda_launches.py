"""Every launch of polydl's CUDA kernels: what ``test_nvrtc`` compiles with NVRTC, and what the
CuPy stand-in (``cuda_standin``) lets polydl launch.

``RAW``: the raw kernels for each pair of activation and parameter dtypes polydl launches them
with (``ops/batch_norm.py``, ``ops/losses.py``). ``ELEMENTWISE``: each ElementwiseKernel with
the kind (array ``a`` or scalar ``s``) and dtype of each argument as polydl passes them
(``optim/optimizers.py``: scalar coefficients, or a population's (P, 1) columns; the batch
norm's evaluation forward; the softmax cross-entropy backward; im2col, col2im and pooling), and
the layout CuPy gives the loop (for each array its ndim and C-contiguity, then the loop's ndim),
from which CuPy writes the kernel's source. A launch missing here fails under the stand-in,
naming the entry to add; ``POLYDL_RECORD_LAUNCHES=FILE`` writes the launches to FILE instead.
"""
from __future__ import annotations

import itertools
import json
import os

import numpy as np

from polydl import cuda_kernels

#: (activations, parameters) dtypes of the raw kernels
RAW_DTYPES = (("float64", "float64"), ("float32", "float32"), ("float16", "float32"), ("bfloat16", "float32"))
RAW = tuple((name, x, t) for name in cuda_kernels.RAW for x, t in RAW_DTYPES)


def _flat(kinds):
    """A launch over 1-D (or all C-contiguous) arrays: CuPy runs it as one flat loop."""
    return kinds, tuple(None if k == "s" else (1, True) for k, _ in kinds), 1


def _optimizer(name, n_coef, n_state, dtype):
    """An optimizer step: the gradient, the coefficients, the parameters and the state buffers
    updated in place. Coefficients are scalars, except over a population's (P, N) buffers, where
    each hyperparameter that differs between members makes its coefficients (P, 1) columns: any
    of them may be a column."""
    out = [(name,) + _flat((("a", dtype),) + (("s", dtype),) * n_coef + (("a", dtype),) * (1 + n_state))]
    for columns in itertools.product((False, True), repeat=n_coef):
        if any(columns):
            kinds = (("a", dtype),) + tuple(("a" if c else "s", dtype) for c in columns) + (("a", dtype),) * (1 + n_state)
            layout = ((2, True),) + tuple((2, False) if c else None for c in columns) + ((2, True),) * (1 + n_state)
            out.append((name, kinds, layout, 2))
    return out


def _elementwise():
    out = []
    for dt in ("float32", "float64"):
        out += (_optimizer("sgd", 1, 0, dt) + _optimizer("momentum", 2, 1, dt) + _optimizer("rmsprop", 3, 1, dt)
                + _optimizer("adam", 4, 2, dt))
    # batch norm, evaluation: x (m, F) with the (F,) running averages, γ, β; a population's
    # x (P, m, F) with (P, 1, F) views
    for x, t in RAW_DTYPES:
        kinds = (("a", x),) + (("a", t),) * 4 + (("s", t), ("s", "int32"), ("a", x))
        out.append(("bn_eval", kinds, ((2, True),) + ((2, False),) * 4 + (None, None, (2, True)), 2))
        out.append(("bn_eval", kinds, ((3, True),) + ((3, False),) * 4 + (None, None, (3, True)), 3))
    # softmax cross-entropy backward: ŷ (float32, or float64 for float64 scores), the labels and
    # each member's loss gradient (raw), the gradient in the scores' dtype
    for x, t in RAW_DTYPES:
        kinds = (("a", t), ("a", "int64"), ("a", t), ("s", "int64"), ("s", "int64"), ("s", t), ("a", x))
        out.append(("softmax_xent_backward", kinds, ((1, True), (1, True), (1, True), None, None, None, (1, True)),
                    1))
    return tuple(out) + _windows()


def _windows():
    """The convolution's im2col and col2im and the pooling kernels (``ops/_windows.py``,
    ``ops/pooling.py``): float32 or float64 arrays passed flat, int32 arg-max indices, the window's
    geometry as int64 scalars (and the average's window size in the arrays' dtype)."""
    out = []
    flat, i64 = (1, True), ("s", "int64")
    for dt in ("float32", "float64"):
        a = ("a", dt)
        for name in ("im2col", "col2im"):
            out.append((name, (a,) + (i64,) * 14 + (a,), (flat,) + (None,) * 14 + (flat,), 1))
        out.append(("max_pool2d_forward", (a,) + (i64,) * 10 + (a, ("a", "int32")),
                    (flat,) + (None,) * 10 + (flat, flat), 1))
        out.append(("max_pool2d_backward", (a, ("a", "int32")) + (i64,) * 10 + (a,),
                    (flat, flat) + (None,) * 10 + (flat,), 1))
        for name in ("avg_pool2d_forward", "avg_pool2d_backward"):
            out.append((name, (a,) + (i64,) * 10 + (("s", dt), a), (flat,) + (None,) * 11 + (flat,), 1))
    return tuple(out)


ELEMENTWISE = _elementwise()
_KINDS = {(name, kinds) for name, kinds, _, _ in ELEMENTWISE}
_SOURCES: dict = {}


def _record(entry) -> bool:
    path = os.environ.get("POLYDL_RECORD_LAUNCHES")
    if not path:
        return False
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry) + "\n")
    return True


def check_elementwise(cupy_name, kinds, layout, loop_ndim):
    name = cupy_name.removeprefix("polydl_")
    if _record(["elementwise", name, kinds, layout, loop_ndim]) or (name, kinds) in _KINDS:
        return
    raise AssertionError(f"ElementwiseKernel {name} launched with {kinds}, which test_nvrtc does not compile: add "
                         "it to ELEMENTWISE in tests/cuda_launches.py")


def check_raw(source):
    if not _SOURCES:
        from polydl import amp

        for name, x, t in RAW:
            xd = amp.resolve(x) if x == "bfloat16" else np.dtype(x)
            _SOURCES[cuda_kernels.raw_source(name, xd, t)] = (name, x, t)
    if _record(["raw", _SOURCES.get(source, "unknown")]) or source in _SOURCES:
        return
    raise AssertionError("a RawKernel source that test_nvrtc does not compile: add its dtypes to RAW in "
                         "tests/cuda_launches.py")
