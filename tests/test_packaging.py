"""The wheel holds the library, its data and the ``polydl_cli`` package (no bare ``cli``), and the
``polydl`` console script runs, from the editable install and from the wheel."""
from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _copy_source(dst: pathlib.Path):
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    for name in ("pyproject.toml", "README.md", "LICENSE", "setup.cfg", "MANIFEST.in"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, dst / name)
    for name in ("polydl", "cli"):
        shutil.copytree(ROOT / name, dst / name, ignore=ignore)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    src = tmp_path_factory.mktemp("src")
    out = tmp_path_factory.mktemp("wheel")
    _copy_source(src)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                           "--disable-pip-version-check", "-q", "-w", str(out), str(src)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    wheels = list(out.glob("polydl-*.whl"))
    assert len(wheels) == 1
    return wheels[0]


@pytest.fixture(scope="module")
def names(wheel):
    with zipfile.ZipFile(wheel) as z:
        return z.namelist()


def test_wheel_has_the_cli_package_and_no_bare_cli(names):
    assert "polydl_cli/__init__.py" in names and "polydl_cli/main.py" in names
    assert not [n for n in names if n.startswith("cli/")]
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert top == {"polydl", "polydl_cli"}


def test_wheel_has_every_module_of_the_source(names):
    for pkg, src in (("polydl", ROOT / "polydl"), ("polydl_cli", ROOT / "cli")):
        for path in src.rglob("*.py"):
            if "__pycache__" in path.parts:
                continue
            rel = f"{pkg}/{path.relative_to(src).as_posix()}"
            assert rel in names, f"{rel} is missing from the wheel"


def test_wheel_has_the_digits_data_and_its_licence_note(names):
    assert "polydl/datasets/data/digits.npz" in names
    assert "polydl/datasets/data/README.txt" in names


def test_wheel_metadata(wheel, names):
    with zipfile.ZipFile(wheel) as z:
        info = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        entry_points = z.read(info).decode()
        meta = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert re.search(r"^polydl\s*=\s*polydl_cli:run$", entry_points, re.M)
    assert "Requires-Python: <3.14,>=3.10" in meta or "Requires-Python: >=3.10,<3.14" in meta
    requires = [line for line in meta.splitlines() if line.startswith("Requires-Dist:")]
    core = [r for r in requires if "extra ==" not in r]
    assert {re.split(r"[ <>=;!~]", r.split(":", 1)[1].strip())[0] for r in core} >= {"numpy", "pluggy", "click"}
    assert any("cupy-cuda12x" in r and "extra == \"cuda\"" in r for r in requires)
    for extra, cupy in (("cuda", "cupy-cuda12x"), ("cuda13", "cupy-cuda13x")):  # with NVRTC and the CUDA headers
        assert any(f"{cupy}[ctk]" in r and f"extra == \"{extra}\"" in r for r in requires), extra
    assert any(r.startswith("Requires-Dist: ray>=2.9") and "extra == \"ray\"" in r for r in requires)
    assert not any(r.split(":", 1)[1].strip().startswith("ray") for r in core)   # Ray only with polydl[ray]
    for extra in ("watch", "test"):     # polydl watch: plotext 5's API
        assert any(re.search(r"plotext\s*(\(?)<6,>=5\.2", r) and f"extra == \"{extra}\"" in r for r in requires), requires
    for forbidden in ("torch", "jax", "tensorflow"):
        assert not any(forbidden in r.lower() for r in requires)


@pytest.mark.parametrize("system, machine, python, wanted", [
    ("linux", "x86_64", "3.10", True), ("linux", "aarch64", "3.13", True), ("darwin", "arm64", "3.12", True),
    ("win32", "AMD64", "3.11", True), ("win32", "ARM64", "3.12", True),
    # no Numba wheels there: Intel macs after Numba 0.62, Windows on ARM before Python 3.12, other CPUs
    ("darwin", "x86_64", "3.12", False), ("win32", "ARM64", "3.11", False), ("linux", "ppc64le", "3.12", False),
    ("linux", "i686", "3.10", False), ("freebsd14", "amd64", "3.12", False)])
def test_numba_is_a_dependency_where_it_has_wheels(wheel, names, system, machine, python, wanted):
    """Fast by default: the wheel requires Numba (the fused CPU kernels) on the platforms Numba
    publishes wheels for, and only there; the 'fast' extra still names it for old commands."""
    from packaging.requirements import Requirement

    with zipfile.ZipFile(wheel) as z:
        meta = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    requires = [Requirement(line.split(":", 1)[1].strip()) for line in meta.splitlines()
                if line.startswith("Requires-Dist:")]
    env = {"sys_platform": system, "platform_machine": machine, "python_version": python, "extra": ""}
    core = [r for r in requires if r.name == "numba" and "extra" not in str(r.marker)]
    assert len(core) == 1 and str(core[0].specifier) == ">=0.60"
    assert core[0].marker.evaluate(env) is wanted
    fast = [r for r in requires if r.name == "numba" and "extra" in str(r.marker)]
    assert any(r.marker.evaluate({**env, "extra": "fast"}) for r in fast)


def test_console_script_from_the_wheel(wheel, tmp_path):
    target = tmp_path / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q",
                           "--disable-pip-version-check", "--target", str(target), str(wheel)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    env = dict(os.environ, PYTHONPATH=str(target))
    code = ("import polydl, polydl_cli.main, sys; from polydl import datasets; "
            "print(polydl.__file__); print(datasets.digits().sizes()['test'])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    where, test_size = proc.stdout.split()
    assert pathlib.Path(where).is_relative_to(target) and test_size == "359"
    script = target / "bin" / "polydl"
    proc = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Usage" in proc.stdout


def test_console_script_of_the_installed_project(tmp_path):
    exe = pathlib.Path(sys.executable).parent / ("polydl.exe" if os.name == "nt" else "polydl")
    if not exe.exists():
        pytest.skip("polydl is not installed in this environment (pip install -e .)")
    proc = subprocess.run([str(exe), "--help"], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Usage" in proc.stdout and "polydl" in proc.stdout
    version = subprocess.run([str(exe), "--version"], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert version.returncode == 0 and "0." in version.stdout


def test_import_does_not_load_cupy_or_other_frameworks():
    code = ("import sys, numpy as np, polydl; from polydl import nn, optim; "
            "m = nn.mlp([3, 4, 2]); opt = optim.Adam(m.parameters()); "
            "polydl.F.softmax_cross_entropy(m(polydl.tensor(np.ones((2, 3), np.float32))), np.array([0, 1])).backward(); "
            "opt.step(); print(sorted(k for k in ('cupy', 'torch', 'jax', 'tensorflow') if k in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_no_other_framework_in_the_library_or_tests():
    pattern = re.compile(r"^\s*(import|from)\s+(torch|jax|tensorflow)\b", re.M)
    offenders = [str(p.relative_to(ROOT)) for d in ("polydl", "cli", "tests") for p in (ROOT / d).rglob("*.py")
                 if pattern.search(p.read_text(encoding="utf-8"))]
    assert offenders == []


def test_public_api_contract():
    import inspect

    import polydl

    assert list(inspect.signature(polydl.tensor).parameters) == ["data", "dtype", "device", "requires_grad"]
    for name in ("tensor", "Tensor", "Parameter", "no_grad", "manual_seed", "DeviceError", "nn", "optim",
                 "losses", "normalizers", "schedules", "testing", "datasets"):
        assert hasattr(polydl, name), name
    for name in ("backward", "grad", "data", "numpy", "to"):
        assert hasattr(polydl.tensor([1.0]), name), name
    for name in ("Module", "Sequential", "Linear", "BatchNorm", "ReLU", "LeakyReLU", "Tanh", "Sigmoid",
                 "Softmax", "Dropout", "mlp"):
        assert hasattr(polydl.nn, name), name
    for name in ("SGD", "Momentum", "RMSprop", "Adam"):
        cls = getattr(polydl.optim, name)
        assert callable(cls.step) and callable(cls.zero_grad) and isinstance(cls.lr, property)
    for mod in (polydl.losses, polydl.normalizers, polydl.schedules):
        assert callable(mod.get) and callable(mod.names)
    assert callable(polydl.testing.gradcheck)


def test_readme_example_trains_a_model(tmp_path):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert blocks, "the README has no Python example"
    example = blocks[0]
    assert len(example.strip().splitlines()) <= 15  # the 15-line example the README promises
    proc = subprocess.run([sys.executable, "-c", example], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    numbers = re.findall(r"accuracy\D*([0-9.]+)", proc.stdout)
    assert numbers and float(numbers[-1]) > 0.9, proc.stdout
    # the optimizer evaluated its schedule itself: the last epoch's α is the formula's at epoch 20
    assert float(proc.stdout.split("last α")[1]) == pytest.approx(0.01 / (1 + 0.1 * 20), rel=1e-12)


def test_the_linter_runs_in_ci_before_the_tests():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "ruff check ." in ci and ci.index("ruff check .") < ci.index("bash scripts/test")
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert "[tool.ruff]" in pyproject and "ruff" in pyproject.split("test = [")[1].split("]")[0]
