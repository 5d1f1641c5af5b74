"""The CuPy stand-in (``tests/cuda_standin``) refuses what CuPy refuses, so that ``--cuda-standin``
finds in polydl what a GPU would: implicit conversions to NumPy, host arrays in device ops,
NumPy scalars where CuPy gives 0-d arrays, kernels launched with arguments the GPU would misread."""
from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import cuda_standin
import numpy as np
import pytest
from cuda_standin import core, kernels, names
from cuda_standin import module as cp
from cuda_standin import random as cprandom

from polydl import cuda_kernels

ROOT = Path(__file__).resolve().parent.parent


def test_no_implicit_conversion_to_numpy():
    a = cp.asarray(np.arange(3.0))
    host = np.ones(3)
    for convert in (lambda: np.asarray(a), lambda: a.__array__(), lambda: a + host, lambda: host + a,
                    lambda: host * a, lambda: cp.maximum(a, host), lambda: np.concatenate([a, host]),
                    lambda: cp.ascontiguousarray(host)):
        with pytest.raises(TypeError):
            convert()
    with pytest.raises(ValueError, match="non-scalar numpy.ndarray cannot be used for fill"):
        a[:] = host
    a[np.array([0, 2])] = np.array([5.0, 6.0])  # host values with an integer-array index: copied over
    a[1] = np.float64(7.0)
    assert isinstance(a.get(), np.ndarray) and cp.asnumpy(a).tolist() == [5.0, 7.0, 6.0]
    assert type(np.exp(a)) is cp.ndarray and type(np.sum(a)) is cp.ndarray  # NumPy's functions dispatch


def test_reductions_and_elements_are_0d_arrays():
    a = cp.asarray(np.array([1.0, 2.0], np.float32))
    total, first = a.sum(), a[0]
    assert type(total) is cp.ndarray and total.shape == () and float(total) == 3.0
    first += 10  # a 0-d view, as on CuPy
    assert a.get().tolist() == [11.0, 2.0]
    with pytest.raises(TypeError):
        range(total.astype(np.int64))  # no __index__
    with pytest.raises(TypeError):
        f"{total:.2f}"  # no __format__ with a spec


def test_integer_array_indices_wrap_around_and_memory_is_garbage():
    a = cp.asarray(np.array([1.0, 2.0, 3.0]))
    assert a[np.array([3, -4])].get().tolist() == [1.0, 3.0]
    with pytest.raises(IndexError):
        a[3]
    assert np.isnan(cp.empty((2, 2), np.float32).get()).all() and np.isnan(cp.empty_like(a).get()).all()
    with pytest.raises(ValueError, match="Unsupported dtype"):
        cp.asarray(np.array(["x"]))


def test_only_cupys_names():
    a = cp.asarray(np.zeros(2))
    for missing in (lambda: cp.errstate, lambda: cp.seterr, lambda: a.tostring, lambda: a.flags.writeable,
                    lambda: a.__index__):
        with pytest.raises(AttributeError):
            missing()
    assert cp.float32 is np.float32 and "scatter_add" in names.CUPYX


def test_the_names_are_those_of_the_installed_cupy():
    code = ("import json, cupy, cupyx\npub = lambda o: sorted(n for n in dir(o) if not n.startswith('_') and "
            "n != 'annotations')\nprint(json.dumps({'version': cupy.__version__, 'MODULE': pub(cupy), "
            "'NDARRAY': pub(cupy.ndarray), 'RANDOM': pub(cupy.random), 'CUPYX': pub(cupyx)}))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        pytest.skip("CuPy is not installed here")
    real = json.loads(proc.stdout)
    if real["version"].split(".")[:2] != names.VERSION.split(".")[:2]:
        pytest.skip(f"CuPy {real['version']} is installed; the names are those of CuPy {names.VERSION}")
    for key in ("MODULE", "NDARRAY", "RANDOM", "CUPYX"):
        assert set(real[key]) == getattr(names, key), key


def test_elementwise_kernel_checks_its_arguments_as_cupy():
    kern = kernels.ElementwiseKernel(*cuda_kernels.ELEMENTWISE["sgd"], "polydl_sgd")
    g = cp.asarray(np.ones(4, np.float32))
    p = cp.asarray(np.full(4, 2.0, np.float32))
    with pytest.raises(TypeError, match="Unsupported type"):
        kern(np.ones(4, np.float32), 0.5, p)
    with pytest.raises(TypeError, match="Type is mismatched"):
        kern(g, 0.5, cp.asarray(np.zeros(4)))
    with pytest.raises(ValueError, match="Out shape is mismatched"):
        kern(cp.asarray(np.ones((2, 4), np.float32)), 0.5, p)
    assert kern(g, 0.5, p) is p and p.get().tolist() == [1.5] * 4
    with pytest.raises(AssertionError, match="test_nvrtc does not compile"):  # a launch NVRTC is not given
        kern(g.astype(np.float16), 0.5, p.astype(np.float16))


def test_raw_kernel_checks_its_arguments_as_cupy():
    src = cuda_kernels.raw_source("softmax_xent", np.float32, np.float32)
    kern = kernels.RawKernel(src, "polydl_softmax_xent")
    z, p = cp.asarray(np.zeros((2, 3), np.float32)), cp.empty((2, 3), np.float32)
    labels, loss = cp.asarray(np.array([0, 2])), cp.empty((1,), np.float32)
    with pytest.raises(TypeError, match="numpy.ndarray of shape"):
        kern((1,), (256,), (np.zeros((2, 3), np.float32), labels, 2, 3, np.float64(0.5), p, loss))
    with pytest.raises(RuntimeError, match="exceeds the GPU's limits"):
        kern((1,), (2048,), (z, labels, 2, 3, np.float64(0.5), p, loss))
    with pytest.raises(TypeError, match="inv_m is double"):  # a float32 where the kernel reads a double
        kern((1,), (256,), (z, labels, 2, 3, np.float32(0.5), p, loss))
    kern((1,), (256,), (z, labels, 2, 3, 0.5, p, loss))  # Python ints and floats: int64 and float64, as CuPy
    assert np.allclose(loss.get(), np.log(3.0)) and np.allclose(p.get(), 1 / 3)


def test_random_and_scatter_add_follow_cupy():
    rs = cprandom.RandomState(0)
    assert rs.random_sample((2,), np.float32).dtype == np.float32
    with pytest.raises(TypeError, match="float32 and float64"):
        rs.random_sample((2,), np.float16)
    assert not hasattr(rs, "get_state")  # as CuPy: device draws are not checkpointed
    a = cp.zeros(3, np.float32)
    core.scatter(a, cp.asarray(np.array([0, 0, 2])), cp.asarray(np.ones(3, np.float32)), "add")
    assert a.get().tolist() == [2.0, 0.0, 1.0]
    with pytest.raises(TypeError, match="only supports"):
        core.scatter(cp.zeros(3, np.int16), cp.asarray(np.array([0])), 1, "add")
    with pytest.raises(TypeError, match="Unsupported type"):
        core.scatter(a, slice(0, 2), np.ones(2, np.float32), "add")


def test_install_is_refused_after_cupy(monkeypatch):
    if cuda_standin.installed():
        pytest.skip("the stand-in is installed in this run")
    monkeypatch.setitem(sys.modules, "cupy", types.ModuleType("cupy"))
    with pytest.raises(RuntimeError, match="before CuPy is imported"):
        cuda_standin.install()


def test_cuda_standin_runs_the_cuda_cases_without_a_gpu():
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--cuda-standin", "-m",
                           "cuda", "tests/test_backend.py", "-k", "array_module_follows_the_data"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "1 passed" in proc.stdout and "skipped" not in proc.stdout
