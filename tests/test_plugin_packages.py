"""The example plugin packages in plugins/ used through ``polydl train`` on the CPU, and a real
``pip install`` of a broken plugin next to a good one (isolation)."""
from __future__ import annotations

import importlib
import importlib.metadata
import json
import subprocess
import sys
import textwrap
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from polydl.testing import registered_plugin

sys.path.insert(0, str(Path(__file__).parent))
from plugin_fakes import child_env, run_cli  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = {"polydl-cosine": ("cosine", "polydl_cosine", "schedules"),
            "polydl-layernorm": ("layernorm", "polydl_layernorm", "normalizers"),
            "polydl-focal": ("focal", "polydl_focal", "losses"),
            "polydl-resnet": ("resnet", "polydl_resnet", "models")}
#: the names the examples register where they differ from the entry point's (polydl has a cosine)
REGISTERED = {"polydl-cosine": "warmup_cosine"}
TRAIN = ["train", "--dataset", "moons", "--dataset-param", "n_samples=300", "--hidden", "8", "--epochs", "4",
         "--device", "cpu", "--quiet", "--no-plot"]


def _installed(dist: str) -> bool:
    """Whether the example is installed from this checkout (scripts/test installs all three)."""
    try:
        distribution(dist)
    except PackageNotFoundError:
        return False
    module = EXAMPLES[dist][1]
    spec = importlib.util.find_spec(module)
    return spec is not None and Path(spec.origin).resolve().parent == REPO / "plugins" / dist


def _import_example(dist):
    path = str(REPO / "plugins" / dist)
    if path not in sys.path:
        sys.path.append(path)
    return importlib.import_module(EXAMPLES[dist][1])


@pytest.fixture(params=["entry point", "registered"])
def via(request):
    return request.param


def _train(dist, args, out, via, base=TRAIN):
    """``polydl train ARGS`` with the example plugin: through its installed entry point in a fresh
    process (skipped when it is not installed), or in this process with the plugin registered by
    ``polydl.testing.registered_plugin`` (works in a fresh clone)."""
    args = [*base, *args, "--out", str(out)]
    if via == "entry point":
        if not _installed(dist):
            pytest.skip(f"{dist} is not installed (scripts/test installs plugins/*)")
        res = run_cli(*args, timeout=180)
        assert res.returncode == 0, res.stderr
        assert "Warning" not in res.stderr, res.stderr
        return res.stdout
    from polydl_cli.main import main
    name, _, _ = EXAMPLES[dist]
    with registered_plugin(_import_example(dist), name, distribution=dist, version="0.1.0"):
        res = CliRunner().invoke(main, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.output


def _metrics(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_example_packages_are_complete():
    for dist, (ep, module, _) in EXAMPLES.items():
        root = REPO / "plugins" / dist
        text = (root / "pyproject.toml").read_text()
        assert f'name = "{dist}"' in text and "[project.entry-points.polydl]" in text
        assert f'{ep} = "{module}"' in text and f'py-modules = ["{module}"]' in text
        assert (root / "README.md").is_file() and (root / f"{module}.py").is_file()
        assert list((root / "tests").glob("test_*.py"))


def test_cosine_through_polydl_train(tmp_path, via):
    out = tmp_path / "run"
    args = ["--schedule", "warmup_cosine", "--lr", "0.02", "--schedule-param", "epochs=4",
            "--schedule-param", "warmup_epochs=2", "--schedule-param", "min_lr=0.002"]
    summary = _train("polydl-cosine", args, out, via)
    assert "test accuracy" in summary
    lrs = [m["lr"] for m in _metrics(out)]
    assert lrs == pytest.approx([0.01, 0.02, 0.02, 0.002 + 0.018 * 0.5])  # warm-up, then half a cosine
    assert 'schedule = "warmup_cosine"' in (out / "config.toml").read_text()


def test_layernorm_through_polydl_train(tmp_path, via):
    out = tmp_path / "run"
    _train("polydl-layernorm", ["--normalizer", "layernorm", "--normalizer-param", "eps=0.001"], out, via)
    with np.load(out / "checkpoint.npz") as ck:
        gamma = ck["a/model/1.gamma"]
        assert gamma.shape == (8,) and not np.allclose(gamma, 1)  # trained
        assert "a/model/0.bias" in ck.files  # LayerNorm keeps the Linear's bias
    metrics = _metrics(out)
    assert metrics[-1]["train_loss"] < metrics[0]["train_loss"]


def test_focal_through_polydl_train(tmp_path, via):
    out = tmp_path / "run"
    _train("polydl-focal", ["--loss", "focal", "--loss-param", "gamma=2"], out, via)
    metrics = _metrics(out)
    assert all(np.isfinite(m["train_loss"]) for m in metrics)
    assert metrics[-1]["train_loss"] < metrics[0]["train_loss"]
    assert json.loads((out / "summary.json").read_text())["test_accuracy"] > 0.6


def test_resnet_through_polydl_train(tmp_path, via):
    out = tmp_path / "run"
    base = ["train", "--dataset", "digits", "--epochs", "3", "--device", "cpu", "--quiet", "--no-plot"]
    _train("polydl-resnet", ["--model", "resnet", "--model-param", "width=4"], out, via, base)
    metrics = _metrics(out)
    assert metrics[-1]["train_loss"] < metrics[0]["train_loss"]
    assert json.loads((out / "summary.json").read_text())["test_accuracy"] > 0.5
    assert 'model = "resnet"' in (out / "config.toml").read_text()


def test_installed_examples_are_listed_by_polydl_plugins():
    missing = [d for d in EXAMPLES if not _installed(d)]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (scripts/test installs plugins/*)")
    res = run_cli("plugins", "--json")
    assert res.returncode == 0, res.stderr
    found = {p["name"]: p for p in json.loads(res.stdout)["plugins"]}
    for dist, (ep, module, kind) in EXAMPLES.items():
        p = found[ep]
        version = importlib.metadata.version(dist)
        assert (p["distribution"], p["version"], p["target"]) == (dist, version, module)
        assert p["registered"] == {kind: [REGISTERED.get(dist, ep)]} and p["source"] == "entry point"


# ---------------------------------------------------------------------- a real install, isolated
GOOD_PYPROJECT = """
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "polydl-stepdown"
version = "3.1.4"
dependencies = ["polydl"]

[project.entry-points.polydl]
stepdown = "polydl_stepdown"

[tool.setuptools]
py-modules = ["polydl_stepdown"]
"""
GOOD_MODULE = """
import polydl
from polydl.schedules import Schedule


def stepdown(lr0=0.01, at=2):
    if isinstance(lr0, bool) or not isinstance(lr0, (int, float)) or not lr0 >= 0:
        raise ValueError(f"stepdown: lr0 must be a number >= 0, not {lr0!r}")
    return Schedule("stepdown", {"lr0": lr0, "at": at}, lambda pos: lr0 if pos.epoch < at else lr0 / 10)


@polydl.hookimpl
def polydl_register_schedules(register):
    register("stepdown", stepdown)
"""
BROKEN_PYPROJECT = GOOD_PYPROJECT.replace("stepdown", "broken").replace("3.1.4", "0.0.1")
BROKEN_MODULE = "import polydl\nraise RuntimeError('this plugin is broken on purpose')\n"


def _pip_target(packages, target):
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-input", "--target", str(target)]
    try:
        import setuptools  # noqa: F401
        from packaging.version import Version
        if Version(setuptools.__version__) >= Version("61"):
            cmd.append("--no-build-isolation")  # faster, and works offline
    except ImportError:
        pass
    res = subprocess.run(cmd + [str(p) for p in packages], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr


@pytest.mark.slow
def test_pip_installed_broken_plugin_is_isolated(tmp_path):
    pkgs = []
    for name, pyproject, module in (("stepdown", GOOD_PYPROJECT, GOOD_MODULE),
                                    ("broken", BROKEN_PYPROJECT, BROKEN_MODULE)):
        root = tmp_path / "src" / f"polydl-{name}"
        root.mkdir(parents=True)
        (root / "pyproject.toml").write_text(textwrap.dedent(pyproject))
        (root / f"polydl_{name}.py").write_text(textwrap.dedent(module))
        pkgs.append(root)
    target = tmp_path / "site"
    _pip_target(pkgs, target)  # a real install, into a folder of its own (nothing else sees it)
    assert (target / "polydl_broken-0.0.1.dist-info").is_dir()

    res = run_cli("plugins", "--json", paths=[target])
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    loaded = {p["name"]: p for p in data["plugins"]}
    assert loaded["stepdown"]["distribution"] == "polydl-stepdown" and loaded["stepdown"]["version"] == "3.1.4"
    (failed,) = [f for f in data["failed"] if f["name"] == "broken"]
    assert failed["distribution"] == "polydl-broken" and failed["version"] == "0.0.1"
    assert "RuntimeError: this plugin is broken on purpose" in failed["error"]

    out = tmp_path / "run"  # the good plugin works through polydl train; the broken one is one warning line
    res = run_cli(*TRAIN[:-2], "--no-plot", "--epochs", "3", "--schedule", "stepdown", "--schedule-param", "at=3",
                  "--out", str(out), paths=[target])
    assert res.returncode == 0, res.stderr
    warning_lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(warning_lines) == 1 and warning_lines[0].startswith("Warning: plugin 'broken' (distribution "
                                                                   "polydl-broken 0.0.1) failed to load")
    assert [m["lr"] for m in _metrics(out)] == pytest.approx([0.01, 0.01, 0.001])

    res = run_cli(*TRAIN, "--schedule", "stepdown", "--out", str(tmp_path / "strict"), paths=[target],
                  env={"POLYDL_STRICT_PLUGINS": "1"})
    assert res.returncode == 2 and res.stderr.startswith("Error: plugin 'broken'")

    res = run_cli(*TRAIN, "--schedule", "stepdown", "--out", str(tmp_path / "only"), paths=[target],
                  env={"POLYDL_LOAD_PLUGINS": "stepdown"})
    assert res.returncode == 0 and res.stderr == "", res.stderr

    res = run_cli(*TRAIN, "--schedule", "stepdown", "--out", str(tmp_path / "off"), paths=[target],
                  env={"POLYDL_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert res.returncode == 2 and "unknown schedule 'stepdown'" in res.stderr
    assert child_env(target)["PYTHONPATH"].startswith(str(target))
