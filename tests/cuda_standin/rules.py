"""What CuPy 14 refuses to do while the current stream captures, by the op's name.

- A result whose size is read on the host (``nonzero``, ``where(c)``, ``unique``, ``compress``,
  ``bincount``, boolean-mask indexing, ...) synchronises: ``.get()`` raises
  ``RuntimeError("the current stream is capturing, so D2H transfers are disallowed")``.
- cuSOLVER (``cupy.linalg`` factorisations and solvers) and cuBLAS refuse the capturing stream in
  their ``setStream`` (``cupy_backends/cuda/libs/cublas.pyx``): ``NotImplementedError("calling
  cuBLAS API during stream capture is currently unsupported")``. CuPy calls cuBLAS for a float
  product (dtype ``e f d F D``) of non-empty operands: ``matmul`` of more than two dimensions, and
  ``matmul``/``dot``/``inner``/``tensordot`` with more than one element in the result (one element
  is a reduction kernel, ``_routines_linalg.pyx``'s ``tensordot_core``); ``einsum`` where an index
  is summed over two operands (``reduced_binary_einsum`` calls ``matmul``); ``matrix_power``,
  ``cov`` and ``corrcoef`` through ``dot``. Integer and boolean products run CuPy's own kernel.
"""
from __future__ import annotations

import numpy as np

D2H = "the current stream is capturing, so D2H transfers are disallowed"
SYNC = frozenset("""
    nonzero flatnonzero argwhere compress extract unique unique_all unique_counts unique_inverse
    unique_values trim_zeros intersect1d setdiff1d setxor1d union1d bincount histogram histogram2d
    histogramdd delete array_repr array_str array2string save savez savez_compressed savetxt
""".split())
CUSOLVER = frozenset("""
    cholesky det eig eigh eigvals eigvalsh inv lstsq matrix_rank pinv qr slogdet solve svd tensorinv
    tensorsolve cond
""".split())
BLAS = frozenset({"matmul", "dot", "inner", "tensordot", "einsum", "matrix_power", "cov", "corrcoef"})
_CUBLAS = "calling cuBLAS API during stream capture is currently unsupported"


def before(name: str, args: tuple) -> None:
    """Refuse what CuPy refuses before launching anything."""
    if name in SYNC or (name == "where" and len(args) == 1):
        raise RuntimeError(D2H)
    if name in CUSOLVER or (name == "matrix_power" and len(args) > 1 and args[1] < 0):
        raise NotImplementedError("calling cuSOLVER API during stream capture is currently unsupported")


def _einsum_contracts(subscripts) -> bool:
    """Whether an index of an ``einsum`` is summed over two operands."""
    if not isinstance(subscripts, str):
        return True
    spec = subscripts.replace("...", "").replace(" ", "")
    ins, arrow, out = spec.partition("->")
    terms = ins.split(",")
    if not arrow:
        out = "".join(c for c in set(ins) if ins.count(c) == 1)
    counts: dict = {}
    for term in terms:
        for c in set(term):
            counts[c] = counts.get(c, 0) + 1
    return len(terms) > 1 and any(n > 1 and c not in out for c, n in counts.items())


def after(name: str, args: tuple, result) -> None:
    """Refuse a product CuPy hands to cuBLAS (``result``: the op's result on zeros)."""
    if name not in BLAS:
        return
    arrays = [a for a in args if isinstance(a, np.ndarray)]
    if not arrays or any(a.size == 0 for a in arrays) or np.result_type(*arrays).char not in "efdFD":
        return
    size = np.size(result[0] if isinstance(result, (tuple, list)) else result)
    if name == "einsum":
        blas = _einsum_contracts(args[0])
    elif name == "matmul":
        blas = max(a.ndim for a in arrays[:2]) > 2 or size > 1
    elif name in ("dot", "inner", "tensordot"):
        blas = len(arrays) > 1 and min(a.ndim for a in arrays[:2]) > 0 and size > 1
    else:
        blas = size > 1 and not (name == "matrix_power" and args[1] < 2)
    if blas:
        raise NotImplementedError(_CUBLAS)
