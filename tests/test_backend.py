"""Device strings, the array module, transfers, dtypes, and the errors for unusable devices."""
from __future__ import annotations

import types

import numpy as np
import pytest

import polydl
from polydl import backend, nn
from polydl import functional as F


# ---------------------------------------------------------------------------- device strings
@pytest.mark.parametrize("spec, type_, index, text", [
    ("cpu", "cpu", None, "cpu"),
    ("cuda", "cuda", None, "cuda"),
    ("cuda:0", "cuda", 0, "cuda:0"),
    ("cuda:3", "cuda", 3, "cuda:3"),
    ("cuda:12", "cuda", 12, "cuda:12"),
])
def test_device_strings_parse(spec, type_, index, text):
    dev = backend.device(spec)
    assert (dev.type, dev.index) == (type_, index)
    assert str(dev) == text
    assert dev == spec and dev == backend.device(text)
    assert hash(dev) == hash(backend.device(text))
    assert backend.device(dev) is dev


def test_device_none_is_cpu():
    assert backend.device(None) == "cpu"
    assert polydl.device("cpu").xp is np


def test_distinct_devices_differ():
    assert backend.device("cuda:0") != backend.device("cuda:1")
    assert backend.device("cuda") != backend.device("cpu")
    assert backend.device("cuda:0") != backend.device("cuda")


@pytest.mark.parametrize("spec", ["gpu", "cuda:", "cuda:x", "cuda:-1", "cpu:0", "", "cuda0", "cuda:1:2", 0, 1.5])
def test_bad_device_strings_raise_value_error(spec):
    with pytest.raises(ValueError, match="cpu"):
        backend.device(spec)


def test_bad_device_string_in_tensor_raises_value_error():
    with pytest.raises(ValueError):
        polydl.tensor([1.0], device="tpu")


# ---------------------------------------------------------------------------- unusable CUDA
def _fake_cupy(count, raises=False):
    def get_count():
        if raises:
            raise RuntimeError("cudaErrorInsufficientDriver")
        return count

    return types.SimpleNamespace(
        __version__="13.0.0", ndarray=type("ndarray", (), {}),
        cuda=types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=get_count)))


@pytest.fixture
def no_cupy(monkeypatch):
    monkeypatch.setattr(backend, "_CUPY", None)
    monkeypatch.setattr(backend, "_CUPY_ERROR", ImportError("No module named 'cupy'"))


@pytest.mark.parametrize("make", [
    lambda: backend.check_device("cuda"),
    lambda: backend.check_device("cuda:1"),
    lambda: backend.device("cuda").xp,
    lambda: polydl.tensor([1.0, 2.0], device="cuda"),
    lambda: polydl.tensor([1.0]).to("cuda"),
    lambda: nn.Linear(2, 3, device="cuda"),
    lambda: nn.BatchNorm(3, device="cuda"),
    lambda: nn.Linear(2, 3).to(device="cuda"),
], ids=["check_device", "check_device_index", "xp", "tensor", "Tensor.to", "Linear", "BatchNorm", "Module.to"])
def test_cuda_without_cupy_says_what_is_missing(no_cupy, make):
    with pytest.raises(polydl.DeviceError) as info:
        make()
    msg = str(info.value)
    assert "CuPy" in msg and "not installed" in msg
    assert "pip install 'polydl[cuda]'" in msg
    assert not backend.cuda_available()
    assert backend.cuda_device_count() == 0


@pytest.mark.parametrize("raises", [False, True], ids=["zero-gpus", "runtime-error"])
def test_cuda_without_gpu_says_what_is_missing(monkeypatch, raises):
    monkeypatch.setattr(backend, "_CUPY", _fake_cupy(0, raises))
    monkeypatch.setattr(backend, "_CUPY_ERROR", None)
    assert not backend.cuda_available()
    for spec in ("cuda", "cuda:0"):
        with pytest.raises(polydl.DeviceError) as info:
            backend.check_device(spec)
        msg = str(info.value)
        assert "GPU" in msg and "not installed" not in msg
        assert "pip install 'polydl[cuda]'" in msg
        assert "cpu" in msg  # the way out without a GPU


def test_cuda_index_beyond_visible_gpus(monkeypatch):
    monkeypatch.setattr(backend, "_CUPY", _fake_cupy(2))
    monkeypatch.setattr(backend, "_CUPY_ERROR", None)
    with pytest.raises(polydl.DeviceError, match="cuda:3.*2 GPU"):
        backend.check_device("cuda:3")


def test_device_error_is_a_runtime_error():
    assert issubclass(polydl.DeviceError, RuntimeError)


# ---------------------------------------------------------------------------- two devices
class _FakeGPUArray(np.ndarray):
    """Stands in for a CuPy array on GPU ``_gpu`` so that device checks can run without a GPU."""

    _gpu = 0

    def __array_finalize__(self, obj):
        self._gpu = getattr(obj, "_gpu", 0)

    @property
    def device(self):
        return types.SimpleNamespace(id=self._gpu)


def _on_fake_gpu(values, gpu):
    arr = np.asarray(values, dtype=np.float32).view(_FakeGPUArray)
    arr._gpu = gpu
    return arr


@pytest.fixture
def fake_gpus(monkeypatch):
    fake = _fake_cupy(2)
    fake.ndarray = _FakeGPUArray
    monkeypatch.setattr(backend, "_CUPY", fake)
    monkeypatch.setattr(backend, "_CUPY_ERROR", None)


@pytest.mark.parametrize("op", [
    lambda a, b: a + b, lambda a, b: a - b, lambda a, b: a * b, lambda a, b: a / b,
    lambda a, b: a @ b.reshape(3, 1), lambda a, b: F.concatenate([a, b]),
    lambda a, b: F.maximum(a, b), lambda a, b: F.where(a > 0, a, b),
    lambda a, b: F.linear(a.reshape(1, 3), b.reshape(3, 1)),
], ids=["add", "sub", "mul", "div", "matmul", "concatenate", "maximum", "where", "linear"])
def test_op_on_two_devices_names_both(fake_gpus, op):
    cpu = polydl.Tensor(np.array([1.0, 2.0, 3.0], dtype=np.float32))
    gpu = polydl.Tensor(_on_fake_gpu([1.0, 2.0, 3.0], 1))
    assert str(gpu.device) == "cuda:1"
    for a, b in ((cpu, gpu), (gpu, cpu)):
        with pytest.raises(polydl.DeviceError) as info:
            op(a, b)
        assert "'cpu'" in str(info.value) and "'cuda:1'" in str(info.value)


def test_op_on_two_gpus_names_both(fake_gpus):
    a = polydl.Tensor(_on_fake_gpu([1.0, 2.0], 0))
    b = polydl.Tensor(_on_fake_gpu([3.0, 4.0], 1))
    with pytest.raises(polydl.DeviceError) as info:
        a + b
    assert "'cuda:0'" in str(info.value) and "'cuda:1'" in str(info.value)


def test_loss_with_targets_on_another_device(fake_gpus):
    logits = polydl.Tensor(_on_fake_gpu([[1.0, 2.0]], 0))
    with pytest.raises(polydl.DeviceError, match="cpu"):
        F.softmax_cross_entropy(logits, np.array([1]))
    with pytest.raises(polydl.DeviceError, match="cuda:0"):
        F.mse(logits, np.array([[0.0, 1.0]], dtype=np.float32))


def test_op_on_two_real_devices(device):
    if device == "cpu":
        pytest.skip("needs a GPU beside the CPU")
    a = polydl.tensor([1.0, 2.0], device=device)
    b = polydl.tensor([1.0, 2.0])
    with pytest.raises(polydl.DeviceError) as info:
        a + b
    assert "'cpu'" in str(info.value) and "cuda" in str(info.value)


# ---------------------------------------------------------------------------- arrays and transfers
def test_array_module_follows_the_data(device, xp):
    t = polydl.tensor([1.0, 2.0], device=device)
    assert backend.get_array_module(t.data) is xp
    assert t.xp is xp
    assert t.device == backend.device(device) or (device == "cuda" and t.device.type == "cuda")
    assert backend.get_array_module(np.ones(2)) is np
    assert isinstance(backend.to_numpy(t.data), np.ndarray)
    assert isinstance(t.numpy(), np.ndarray)


def test_transfer_round_trip_is_differentiable(device):
    x = polydl.tensor([1.0, -2.0, 3.0], dtype=np.float64, requires_grad=True)
    y = x.to(device)
    assert y.device.type == backend.device(device).type
    np.testing.assert_array_equal(y.numpy(), [1.0, -2.0, 3.0])
    back = (y * y).to("cpu")
    back.sum().backward()
    assert isinstance(x.grad, np.ndarray)
    np.testing.assert_allclose(x.grad, [2.0, -4.0, 6.0])


def test_to_same_device_and_dtype_is_identity(device):
    x = polydl.tensor([1.0, 2.0], device=device)
    assert x.to(device) is x
    assert x.to(dtype=np.float32) is x


def test_to_dtype_casts_and_casts_gradient_back(device):
    x = polydl.tensor([1.5, 2.5], device=device, requires_grad=True)
    y = x.to(dtype=np.float64)
    assert y.dtype == np.float64 and x.dtype == np.float32
    (y * y).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_allclose(backend.to_numpy(x.grad), [3.0, 5.0])


# ---------------------------------------------------------------------------- dtypes
def test_python_numbers_become_float32_and_arrays_keep_dtype(device):
    assert polydl.tensor(1.5, device=device).dtype == np.float32
    assert polydl.tensor([1.0, 2.0], device=device).dtype == np.float32
    assert polydl.tensor([[1, 2.5]], device=device).dtype == np.float32
    assert polydl.tensor(np.zeros(2), device=device).dtype == np.float64
    assert polydl.tensor(np.zeros(2, np.float32), device=device).dtype == np.float32
    assert polydl.tensor([1.0], dtype=np.float64, device=device).dtype == np.float64
    assert polydl.tensor([1, 2], device=device).dtype.kind == "i"
    assert polydl.tensor([True, False], device=device).dtype == np.bool_


def test_only_floating_tensors_require_grad():
    with pytest.raises(ValueError, match="floating"):
        polydl.tensor([1, 2], requires_grad=True)


def test_default_dtype_can_be_changed_and_must_be_floating():
    assert backend.default_dtype() == np.float32
    try:
        backend.set_default_dtype(np.float64)
        assert polydl.tensor([1.0]).dtype == np.float64
        assert nn.Linear(2, 2).weight.dtype == np.float64
    finally:
        backend.set_default_dtype(np.float32)
    assert polydl.tensor([1.0]).dtype == np.float32
    with pytest.raises(ValueError):
        backend.set_default_dtype(np.int32)


def test_cupy_is_imported_only_by_the_backend():
    import pathlib
    import re

    root = pathlib.Path(polydl.__file__).parent
    offenders = [str(p.relative_to(root)) for p in root.rglob("*.py")
                 if p.name != "backend.py" and re.search(r"^\s*(import|from)\s+cupy", p.read_text(), re.M)]
    assert offenders == []
