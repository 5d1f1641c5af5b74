"""Streams, stream capture and CUDA graphs in the CuPy stand-in (``tests/cuda_standin/graph.py``),
as CuPy 14 has them: work issued to a capturing stream is recorded, not run; a graph's launch
redoes it on the same memory; what CuPy refuses during a capture the stand-in refuses with CuPy's
exception and message; a graph that uses memory its arrays gave back to the pool is caught."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cuda_standin
import numpy as np
import pytest
from cuda_standin import cuda, graph, kernels, memory
from cuda_standin import module as cp
from cuda_standin import random as cprandom

from polydl import cuda_kernels

ROOT = Path(__file__).resolve().parent.parent
Stream = graph.Stream
D2H_H2D = "the current stream is capturing, so (D2H|H2D) transfers are disallowed"
INVALIDATED = "cudaErrorStreamCaptureInvalidated: operation failed due to a previous error during capture"
SGD = kernels.ElementwiseKernel(*cuda_kernels.ELEMENTWISE["sgd"], "polydl_sgd")


@pytest.fixture(autouse=True)
def _clean_streams():
    yield
    left = dict(graph._CAPTURES)
    graph._CAPTURES.clear()
    graph._tls.__dict__.clear()
    memory._local.allocator = None
    memory.set_allocator(memory.MEMORY_POOL.malloc)
    assert not left, "a test left a stream capturing"


def _inputs(seed):
    rng = np.random.default_rng(seed)
    return {"x": rng.standard_normal((4, 3)).astype(np.float32), "b": rng.standard_normal(3).astype(np.float32),
            "g": rng.standard_normal(4).astype(np.float32), "i": rng.integers(-3, 4, (4, 3)),
            "j": rng.integers(-3, 4, (3, 2))}


def _state():
    return {"o": cp.zeros((4, 3), np.float32), "s": cp.zeros(5, np.float32),
            "p": cp.asarray(np.linspace(0, 1, 4, dtype=np.float32))}


def _step(d, state):
    """Elementwise, in place, ``out=``, a reduction written into a slice, an integer matmul, a
    float vector product, an ElementwiseKernel launch."""
    h = d["x"] * 2.0 + d["b"]
    h += 1.0
    cp.multiply(h, 0.5, out=state["o"])
    state["s"][1:4] = h.sum(axis=0)
    k = d["i"] @ d["j"]
    v = d["x"][0] @ d["x"][1]
    SGD(d["g"], 0.5, state["p"])
    return {"h": h, "k": k, "v": v}


def test_a_captured_graph_replays_the_ops_on_new_inputs():
    host = _inputs(0)
    d = {k: cp.asarray(v) for k, v in host.items()}
    eager_d = {k: cp.asarray(v) for k, v in host.items()}
    state, eager_state = _state(), _state()
    s = Stream(non_blocking=True)
    with s:
        s.begin_capture()
        outs = _step(d, state)
        g = s.end_capture()
    assert np.isnan(outs["h"].get()).all() and np.isnan(outs["v"].get())
    assert (outs["k"].get() == np.array(0xA5A5A5A5A5A5A5A5).astype(np.int64)).all()  # garbage until launched
    assert not state["o"].get().any() and not state["s"].get().any()
    np.testing.assert_array_equal(state["p"].get(), np.linspace(0, 1, 4, dtype=np.float32))
    for seed in (0, 1, 2):
        if seed:
            for key, value in _inputs(seed).items():
                d[key].set(value)
                eager_d[key].set(value)
        g.launch(stream=s)
        ref = _step(eager_d, eager_state)
        for key in ref:
            np.testing.assert_array_equal(outs[key].get(), ref[key].get())
        for key in state:
            np.testing.assert_array_equal(state[key].get(), eager_state[key].get())


def test_nothing_runs_while_capturing_and_views_are_made_at_once():
    a = cp.asarray(np.arange(6.0).reshape(2, 3))

    def work(t, idx):
        t.fill(1.0)
        t[1:3] = 2.0
        t[idx] = 3.0
        c = cp.asarray(5.0)
        cp.copyto(t[4:], c)
        cp.add.at(t, idx, 10.0)
        return {"z": cp.zeros(3), "o": cp.ones(2), "r": cp.arange(4.0), "f": cp.full(2, 9.0), "c": c,
                "cast": a.astype(np.int32), "ht": (a * 2).T, "sum": a.sum()}

    t, idx = cp.zeros(5), cp.asarray(np.array([2, 0]))
    s = Stream(non_blocking=True)
    with s:
        s.begin_capture()
        new = work(t, idx)
        row, flat = a[1], a.reshape(3, 2)  # views: no device work, made now
        assert row.data.ptr == a.data.ptr + 3 * 8 and flat.data.ptr == a.data.ptr
        g = s.end_capture()
    assert not t.get().any()
    for key, arr in new.items():
        host = arr.get()
        assert (host == -1515870811).all() if key == "cast" else np.isnan(host).all(), key
    assert row.get().tolist() == [3.0, 4.0, 5.0] and flat.get().ravel().tolist() == list(range(6))
    g.launch()
    ref_t = cp.zeros(5)
    ref = work(ref_t, idx)
    np.testing.assert_array_equal(t.get(), ref_t.get())
    for key in ref:
        np.testing.assert_array_equal(new[key].get(), ref[key].get())


HOST = {"get": lambda a: a.get(), "asnumpy": lambda a: cp.asnumpy(a), "item": lambda a: a[0].item(),
        "float": lambda a: float(a[0]), "int": lambda a: int(a[0]), "bool": lambda a: bool(a[0]),
        "tolist": lambda a: a.tolist(), "repr": repr, "str": str, "set": lambda a: a.set(np.zeros(3)),
        "asarray of host data": lambda a: cp.asarray(np.ones(3)), "host index": lambda a: a[np.array([0, 1])],
        "host index assignment": lambda a: a.__setitem__([0, 2], 1.0), "mask": lambda a: a[a > 1],
        "nonzero": lambda a: cp.nonzero(a), "where(c)": lambda a: cp.where(a > 1), "unique": lambda a: cp.unique(a)}


@pytest.mark.parametrize("name", sorted(HOST))
def test_host_transfers_raise_and_the_capture_goes_on(name):
    a = cp.asarray(np.array([1.0, 2.0, 3.0]))
    s = Stream(non_blocking=True)
    with s:
        s.begin_capture()
        b = a + 1
        with pytest.raises(RuntimeError, match=D2H_H2D):
            HOST[name](a)
        assert s.is_capturing()  # CuPy raises before CUDA sees the transfer
        g = s.end_capture()
    g.launch()
    assert b.get().tolist() == [2.0, 3.0, 4.0]


def test_the_null_stream_is_not_the_capturing_one():
    a = cp.asarray(np.array([1.0, 2.0]))
    s = Stream(non_blocking=True)
    s.begin_capture()  # s is not current: work goes to the null stream and runs at once
    assert (a + 1).get().tolist() == [2.0, 3.0]
    assert graph.get_current_stream() is Stream.null and not Stream.null.is_capturing()
    assert cuda.runtime.streamIsCapturing(s.ptr) and not cuda.runtime.streamIsCapturing(0)
    g = s.end_capture()
    g.launch()


def _launch_other(s):
    other = Stream(non_blocking=True)
    with other:
        other.begin_capture()
        graph_ = other.end_capture()
    graph_.launch()  # launched into the capturing stream s


INVALIDATE = {"stream.synchronize": (lambda s: s.synchronize(), "cudaErrorStreamCaptureUnsupported"),
              "Device.synchronize": (lambda s: cuda.Device().synchronize(), "cudaErrorStreamCaptureUnsupported"),
              "runtime.deviceSynchronize": (lambda s: cuda.runtime.deviceSynchronize(),
                                            "cudaErrorStreamCaptureUnsupported"),
              "Graph.launch into the capturing stream": (_launch_other, "cudaErrorStreamCaptureUnsupported"),
              "stream.done": (lambda s: s.done, None)}


@pytest.mark.parametrize("name", sorted(INVALIDATE))
def test_what_cuda_refuses_invalidates_the_capture(name):
    call, error = INVALIDATE[name]
    a = cp.asarray(np.ones(2))
    s = Stream(non_blocking=True)
    with s:
        s.begin_capture()
        if error is None:
            assert call(s) is False  # CuPy reads the query's error as "not done"
        else:
            with pytest.raises(cuda.CUDARuntimeError, match=error):
                call(s)
        with pytest.raises(cuda.CUDADriverError, match="CUDA_ERROR_STREAM_CAPTURE_INVALIDATED"):
            a + 1
        with pytest.raises(RuntimeError, match="an error has invalidated the capture sequence"):
            s.is_capturing()
        with pytest.raises(cuda.CUDARuntimeError, match=INVALIDATED):
            s.end_capture()
        assert not s.is_capturing()
        s.synchronize()
        assert (a + 1).get().tolist() == [2.0, 2.0]


def test_capture_refusals_of_the_stream_state():
    with pytest.raises(RuntimeError, match=r"cannot capture on the default \(legacy\) stream"):
        Stream.null.begin_capture()
    with pytest.raises(RuntimeError, match="cannot capture on the default"):
        Stream(null=True).begin_capture()
    s = Stream(non_blocking=True)
    with pytest.raises(cuda.CUDARuntimeError, match="cudaErrorIllegalState"):
        s.end_capture()
    with pytest.raises(NotImplementedError, match="must be created via stream capture"):
        graph.Graph()
    a = cp.asarray(np.ones(2))
    with s:
        s.begin_capture()
        b = a * 3
        with pytest.raises(cuda.CUDARuntimeError, match="cudaErrorIllegalState"):
            s.begin_capture()  # nested: refused, the capture goes on
        g = s.end_capture()
    g.launch()
    assert b.get().tolist() == [3.0, 3.0]


def test_a_blocking_capture_forbids_the_legacy_stream():
    a = cp.asarray(np.ones(2))
    s = Stream()  # blocking: the legacy stream would wait on it
    with s:
        s.begin_capture()
        with pytest.raises(cuda.CUDARuntimeError, match="cudaErrorStreamCaptureImplicit"):
            Stream.null.is_capturing()  # a query: the capture goes on
        assert s.is_capturing()
        with Stream.null:
            with pytest.raises(cuda.CUDADriverError, match="CUDA_ERROR_STREAM_CAPTURE_IMPLICIT"):
                a + 1
        with pytest.raises(cuda.CUDARuntimeError, match=INVALIDATED):
            s.end_capture()


def test_the_current_stream_and_kernels_on_a_stream():
    s1, s2 = Stream(), Stream(non_blocking=True)
    assert graph.get_current_stream() is Stream.null and Stream(null=True) == Stream.null
    with s1:
        assert graph.get_current_stream() is s1
        with s2:
            assert graph.get_current_stream() is s2
        assert graph.get_current_stream() is s1
        s2.use()
        assert graph.get_current_stream() is s2
    assert graph.get_current_stream() is Stream.null  # the with block rewinds its stack
    a = cp.asarray(np.ones(4, np.float32))
    p = cp.asarray(np.full(4, 2.0, np.float32))
    with s1:
        assert (a + 1).get().tolist() == [2.0] * 4  # a stream that is not capturing runs work at once
    s2.begin_capture()
    SGD(a, 0.5, p, stream=s2)  # issued to the capturing stream although the null stream is current
    assert p.get().tolist() == [2.0] * 4
    g = s2.end_capture()
    g.launch()
    g.launch(stream=s1)
    assert p.get().tolist() == [1.0] * 4
    with pytest.raises(AttributeError, match="not modelled"):
        s1.record()


def test_libraries_refuse_the_capturing_stream():
    f, i = cp.ones((2, 3)), cp.asarray(np.ones((2, 3), np.int64))
    linalg = cuda_standin._linalg()
    rs = cprandom.RandomState(0)
    cublas = "calling cuBLAS API during stream capture is currently unsupported"
    s = Stream(non_blocking=True)
    with s:
        s.begin_capture()
        for refused, message in ((lambda: f @ f.T, cublas), (lambda: cp.dot(f, f.T), cublas),
                                 (lambda: cp.matmul(f, f.T, out=cp.empty((2, 2))), cublas),
                                 (lambda: cp.einsum("ij,ij->j", f, f), cublas),
                                 (lambda: linalg.inv(cp.ones((2, 2))), "cuSOLVER"),
                                 (lambda: rs.random_sample((2,)), "cuRAND")):
            with pytest.raises(NotImplementedError, match=message):
                refused()
        products = (i @ i.T, f[0] @ f[1], cp.einsum("ij,ij->ij", f, f))  # CuPy's own kernels
        g = s.end_capture()
    g.launch()
    assert products[0].get().tolist() == [[3, 3], [3, 3]] and float(products[1]) == 3.0
    assert products[2].get().tolist() == [[1.0] * 3] * 2


def test_memory_a_graph_uses_must_stay_with_it():
    x, out = cp.asarray(np.arange(1000.0)), cp.zeros(1000)

    def capture(stream):
        with stream:
            stream.begin_capture()
            tmp = x * 2  # allocated during the capture, then dropped
            cp.add(tmp, 1, out=out)
            del tmp
            return stream.end_capture()

    s = Stream(non_blocking=True)
    g = capture(s)  # the default pool serves the capture (CuPy's relaxed mode allows cudaMalloc)
    y = x + 1  # the null stream's arena: the freed temporary stays free
    g.launch()
    assert out.get()[:3].tolist() == [1.0, 3.0, 5.0] and y.size == 1000
    with s:
        z = x + 5  # the capture stream's arena: the pool may hand the temporary's block over
    with pytest.raises(memory.FreedMemoryUse, match="handed by the memory pool"):
        g.launch()

    pool = cuda.MemoryPool()  # a pool of the graph's own: nothing else allocates from it
    with cuda.using_allocator(pool.malloc):
        g = capture(s)
    with s:
        z = x + 5
    g.launch()
    pool.free_all_blocks()
    with pytest.raises(memory.FreedMemoryUse, match="free_all_blocks"):
        g.launch()
    with cuda.using_allocator(None):  # no pool: the temporary went back to the device
        g = capture(s)
    with pytest.raises(memory.FreedMemoryUse, match="cudaFree"):
        g.launch()

    inp = cp.asarray(np.ones(1000))
    with s:
        s.begin_capture()
        cp.multiply(inp, 2, out=out)
        kept = (x * 3)[10:]  # a view keeps its allocation
        g = s.end_capture()
    del inp  # an input allocated before the capture, dropped
    g.launch()
    z = cp.ones(1000)
    with pytest.raises(memory.FreedMemoryUse, match="handed by the memory pool"):
        g.launch()
    assert kept.size == 990 and z.size == 1000
    with cuda.using_allocator(pool.malloc):
        with pytest.raises(ValueError, match="inside `using_allocator`"):
            cuda.set_allocator(None)


def test_the_installed_cupy_offers_streams_graphs_and_allocators():
    code = """if True:
        import sys
        sys.path.insert(0, "tests")
        import cuda_standin
        cuda_standin.install()
        import cupy
        s = cupy.cuda.Stream(non_blocking=True)
        x = cupy.arange(4, dtype=cupy.float32)
        pool = cupy.cuda.MemoryPool()
        with cupy.cuda.using_allocator(pool.malloc), s:
            s.begin_capture()
            y = x * 2
            assert cupy.cuda.get_current_stream() == s and s.is_capturing()
            try:
                cupy.ones((2, 2)) @ cupy.ones((2, 2))
            except NotImplementedError as exc:
                print("refused:", exc)
            g = s.end_capture()
        assert isinstance(g, cupy.cuda.Graph)
        g.launch(stream=s)
        s.synchronize()
        print(y.get().tolist(), cupy.cuda.runtime.streamCaptureModeRelaxed, cupy.cuda.driver.CUDADriverError.__name__)
        try:
            cupy.cuda.Event
        except AttributeError as exc:
            print(exc)
    """
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "refused: calling cuBLAS API during stream capture is currently unsupported" in proc.stdout
    assert "[0.0, 2.0, 4.0, 6.0] 2 CUDADriverError" in proc.stdout
    assert "cupy.cuda.Event is not modelled" in proc.stdout


def test_a_copy_of_a_broadcast_view_is_device_work_in_a_capture():
    """``ascontiguousarray`` of a view that repeats its elements (a stride of 0) copies them: in a
    capture it is a step of the graph, not a view, so a launch copies the base's new values."""
    base = cp.asarray(np.arange(4, dtype=np.float32).reshape(4, 1))
    view = cp.broadcast_to(base, (4, 3))
    out = cp.zeros((4, 3), np.float32)
    s = Stream(non_blocking=True)
    with s:
        s.begin_capture()
        copy = cp.ascontiguousarray(view)
        cp.multiply(copy, 2.0, out=out)
        g = s.end_capture()
    for k in range(3):
        base[...] = cp.asarray(np.arange(4, dtype=np.float32).reshape(4, 1) + k)
        g.launch()
        np.testing.assert_array_equal(out.get(), np.broadcast_to((np.arange(4.0) + k)[:, None] * 2.0, (4, 3)))
