"""Every CUDA kernel polydl launches, compiled by NVRTC exactly as CuPy compiles it on a GPU, for
compute capabilities 7.0, 8.0 and 9.0; no GPU or driver needed.

The raw kernels (``cuda_kernels.RAW``) for each pair of dtypes polydl launches them with, and
each ElementwiseKernel in the full source CuPy writes for the argument types and layout of each
launch (``cuda_launches``: CuPy's own code generator, its headers ``carray.cuh``,
``float16.cuh``, ``bfloat16.cuh``, and its compiler options, ``-arch=sm_XX`` as CuPy compiles
to a cubin). A source that does not compile, or compiles with a warning, fails with NVRTC's log.

Needs ``cupy-cuda12x``, ``nvidia-cuda-nvrtc-cu12`` and (for the CUDA headers of the half types)
``nvidia-cuda-runtime-cu12``, which the test extras install; skipped where CuPy or NVRTC cannot
be imported, or where the CuPy stand-in replaces CuPy in this run.
"""
from __future__ import annotations

import re
import sys

import cuda_launches
import numpy as np
import pytest

from polydl import amp, cuda_kernels

ARCHS = ("70", "80", "90")
_DEPRECATED = re.compile(r"^nvrtc: warning: Architectures prior to .* are deprecated.*$", re.M)


def _import():
    if getattr(sys.modules.get("cupy"), "__polydl_standin__", False):
        return None, "the CuPy stand-in replaces CuPy in this run (--cuda-standin)"
    try:
        import cupy
        from cupy._core import _carray, _kernel, _scalar, core
        from cupy_backends.cuda.libs import nvrtc

        nvrtc.getVersion()  # loads libnvrtc
    except Exception as exc:  # not installed, or no NVRTC library for this CuPy
        return None, f"CuPy with NVRTC cannot be imported ({type(exc).__name__}: {exc})"
    return (cupy, _carray, _kernel, _scalar, core, nvrtc), None


_CUPY, _WHY = _import()
pytestmark = pytest.mark.skipif(_CUPY is None, reason=_WHY or "")


class CompileError(AssertionError):
    pass


def _options(arch):
    """CuPy's options: its include paths (CCCL, its headers, the CUDA headers), C++17, then
    flush-to-zero, the architecture and device code by default (``cupy.cuda.compiler``)."""
    cupy, _, _, _, core, _ = _CUPY
    try:
        base = core.assemble_cupy_compiler_options(())
    except RuntimeError as exc:  # no CUDA headers: CuPy could not compile these kernels on a GPU either
        raise CompileError(f"{exc} (the test extras install nvidia-cuda-runtime-cu12)") from None
    return list(base) + ["-ftz=true", f"-arch=sm_{arch}", "--device-as-default-execution-space"]


def nvrtc_compile(source, name, arch):
    """Compile ``source`` for compute capability ``arch`` to a cubin holding kernel ``name``;
    CompileError with NVRTC's log if it fails or warns."""
    nvrtc = _CUPY[5]
    prog = nvrtc.createProgram(source, f"{name}.cu", [], [])
    try:
        try:
            nvrtc.compileProgram(prog, _options(arch))
        except nvrtc.NVRTCError as exc:
            raise CompileError(f"{name} does not compile for sm_{arch} ({exc}):\n{nvrtc.getProgramLog(prog)}") from None
        log = _DEPRECATED.sub("", nvrtc.getProgramLog(prog)).strip()
        if log:
            raise CompileError(f"{name} compiles for sm_{arch} with warnings:\n{log}")
        cubin = nvrtc.getCUBIN(prog)
    finally:
        nvrtc.destroyProgram(prog)
    if name.encode() not in cubin:
        raise CompileError(f"the cubin for sm_{arch} has no kernel {name}")
    return cubin


def _dtype(name):
    return amp.resolve(name) if name == "bfloat16" else np.dtype(name)


def elementwise_source(name, kinds, layout, loop_ndim):
    """The source CuPy writes for ElementwiseKernel ``name`` launched with arguments of
    ``kinds`` (array or scalar, dtype) and ``layout`` (each array's ndim and C-contiguity over
    the loop of ``loop_ndim`` dimensions), its headers included as ``compile_with_cache`` does."""
    cupy, _carray, _kernel, _scalar, core, _ = _CUPY
    in_params, out_params, body = cuda_kernels.ELEMENTWISE[name]
    kern = cupy.ElementwiseKernel(in_params, out_params, body, f"polydl_{name}")
    dtypes = [_dtype(d) for _, d in kinds]
    arrays = [dt if k == "a" else None for (k, _), dt in zip(kinds, dtypes)]
    _, _, type_map = kern._decide_params_type(tuple(arrays[:kern.nin]), tuple(arrays[kern.nin:]))
    arginfos = []
    for (k, _), dt, lay in zip(kinds, dtypes, layout):
        if k == "a":
            arginfos.append(_kernel._ArgInfo(1, cupy.ndarray, dt, lay[0], lay[1], True))
        else:
            arginfos.append(_kernel._ArgInfo(3, _scalar.CScalar, dt, 0, True, True))
    arginfos.append(_kernel._ArgInfo(2, _carray.Indexer, None, loop_ndim, True, True))
    code = _kernel._get_elementwise_kernel_code(tuple(arginfos), type_map, kern.params, kern.operation,
                                                kern.name, kern.preamble)
    return "".join(f"#include <{h}>\n" for h in core._cupy_header_list) + code


def _raw_id(case):
    return "-".join(case)


def _elementwise_id(case):
    name, kinds, _, _ = case
    return name + "-" + "-".join(("" if k == "a" else "s:") + d for k, d in kinds)


@pytest.mark.parametrize("case", cuda_launches.RAW, ids=_raw_id)
def test_raw_kernel_compiles(case):
    name, x, t = case
    source = cuda_kernels.raw_source(name, _dtype(x), t)
    for arch in ARCHS:
        nvrtc_compile(source, f"polydl_{name}", arch)


def _archs(case):
    """Every architecture, except for an optimizer step that mixes scalar coefficients with
    columns: float32/float64 arithmetic only, like its all-scalar and all-column forms compiled
    for every architecture, so 9.0 alone (it saves 120 compilations)."""
    name, kinds, _, _ = case
    nin = len(cuda_kernels.ELEMENTWISE[name][0].split(","))
    coefficients = {k for k, _ in kinds[1:nin]} if name in ("sgd", "momentum", "rmsprop", "adam") else set()
    return ARCHS[-1:] if len(coefficients) == 2 else ARCHS


@pytest.mark.parametrize("case", cuda_launches.ELEMENTWISE, ids=_elementwise_id)
def test_elementwise_kernel_compiles(case):
    source = elementwise_source(*case)
    for arch in _archs(case):
        nvrtc_compile(source, f"polydl_{case[0]}", arch)


def test_every_kernel_has_its_launches():
    assert {name for name, _, _ in cuda_launches.RAW} == set(cuda_kernels.RAW)
    assert {case[0] for case in cuda_launches.ELEMENTWISE} == set(cuda_kernels.ELEMENTWISE)


def test_the_generated_source_is_cupys():
    """The source of a flat float32 SGD step, as CuPy writes it: the body on references into
    CArrays, the scalar by value, one CUPY_FOR loop."""
    kinds = (("a", "float32"), ("s", "float32"), ("a", "float32"))
    source = elementwise_source("sgd", kinds, ((1, True), None, (1, True)), 1)
    assert "#include <cupy/carray.cuh>" in source
    assert ('extern "C" __global__ void polydl_sgd(const CArray<float, 1, 1, 1> _raw_g, const float lr, '
            "CArray<float, 1, 1, 1> _raw_p, CIndexer<1, 1> _ind)") in source
    assert "CUPY_FOR(i, _ind.size())" in source and "p -= g * lr;" in source


def test_a_kernel_that_does_not_compile_fails_with_the_line():
    source = cuda_kernels.raw_source("softmax_xent", np.float32, np.float32).replace("zmax = v;", "zmax = w;")
    line = source[:source.index("zmax = w;")].count("\n") + 1
    with pytest.raises(CompileError, match=rf'(?s)polydl_softmax_xent does not compile.*\({line}\): error: identifier "w" is undefined'):
        nvrtc_compile(source, "polydl_softmax_xent", "90")
    body = cuda_kernels.ELEMENTWISE["sgd"]
    try:
        cuda_kernels.ELEMENTWISE["sgd"] = (body[0], body[1], "p -= g * lr * undefined_name;")
        with pytest.raises(CompileError, match='identifier "undefined_name" is undefined'):
            nvrtc_compile(elementwise_source("sgd", (("a", "float32"), ("s", "float32"), ("a", "float32")),
                                             ((1, True), None, (1, True)), 1), "polydl_sgd", "70")
    finally:
        cuda_kernels.ELEMENTWISE["sgd"] = body
