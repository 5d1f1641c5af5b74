"""Two installed plugins that register the same name: the docs' example plugin ``tricks`` and a
second one, ``rms``, that also registers ``rmsnorm``. Only the clashing name is skipped; the
warning says who won and how to choose the other (``tricks:rmsnorm``, POLYDL_PREFER_PLUGINS)."""
from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pytest

import polydl
from polydl import plugins
from polydl.plugins import PluginError, PluginWarning

sys.path.insert(0, str(Path(__file__).parent))
from plugin_fakes import doc_files, make_dist, run_cli  # noqa: E402

RMS = """
import polydl
from polydl import functional as F


class RMS(polydl.nn.Module):
    def __init__(self, num_features, scale=1.0):
        self.scale = scale

    def forward(self, x):
        return x / F.sqrt(F.mean(x * x, axis=-1, keepdims=True) + 1e-8) * self.scale


@polydl.hookimpl
def polydl_register_normalizers(register):
    register("rmsnorm", RMS)
"""


def _two_plugins(root):
    """polydl-tricks 0.1.0 (entry point ``tricks``) from docs/plugins.md, and polydl-rms 1.0 (``rms``),
    which sorts first and so loads first."""
    tricks = doc_files()["polydl-tricks/polydl_tricks.py"]
    make_dist(root, "polydl-tricks", "0.1.0", {"tricks": "polydl_tricks"}, {"polydl_tricks.py": tricks})
    make_dist(root, "polydl-rms", "1.0", {"rms": "fake_rms"}, {"fake_rms.py": RMS})
    return root


def _load():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plugins.load()
    return [str(w.message) for w in caught if issubclass(w.category, PluginWarning)]


def test_only_the_clashing_name_is_skipped_and_the_warning_says_what_to_do(site):
    _two_plugins(site)
    (message,) = _load()
    assert message == (
        "normalizer 'rmsnorm' of plugin 'tricks' (distribution polydl-tricks 0.1.0) is not used: plugin 'rms' "
        "(distribution polydl-rms 1.0) registers it too and keeps it (it loads first); the other names of plugin "
        "'tricks' are loaded. To use the normalizer of plugin 'tricks', name it tricks:rmsnorm (--normalizer "
        "tricks:rmsnorm), or set POLYDL_PREFER_PLUGINS=tricks to decide its clashes in its favour")
    assert plugins.problems() == [message] and plugins.failed() == []
    assert {"smooth_ce"} <= set(polydl.losses.names()) and "linear_decay" in polydl.schedules.names()
    tricks = sys.modules["polydl_tricks"]
    assert polydl.normalizers.registry.entry("rmsnorm").plugin == "rms"
    assert isinstance(polydl.normalizers.get("tricks:rmsnorm", 4), tricks.RMSNorm)
    assert isinstance(polydl.normalizers.get("polydl-tricks:rmsnorm", 4, eps=1e-5), tricks.RMSNorm)
    assert not isinstance(polydl.normalizers.get("rmsnorm", 4), tricks.RMSNorm)
    model = polydl.nn.mlp([2, 4, 2], normalizer="tricks:rmsnorm")
    assert isinstance(model[1], tricks.RMSNorm)
    info = {p.name: p for p in plugins.plugins()}
    assert info["tricks"].registered["normalizers"] == ["rmsnorm"]
    assert info["tricks"].shadowed == {"normalizers": {"rmsnorm": "rms"}} and info["rms"].shadowed == {}
    assert info["tricks"].parameters["normalizers"] == {"rmsnorm": ["eps"]}
    report = plugins.report()
    assert {p["name"]: p for p in report["plugins"]}["tricks"]["shadowed"] == {"normalizers": {"rmsnorm": "rms"}}


def test_prefer_plugins_decides_the_clash_without_a_warning(site, monkeypatch):
    _two_plugins(site)
    monkeypatch.setenv("POLYDL_PREFER_PLUGINS", "polydl-tricks")  # a distribution name works too
    assert _load() == []
    assert polydl.normalizers.registry.entry("rmsnorm").plugin == "tricks"
    assert polydl.normalizers.registry.entry("rmsnorm").shadows == ["rms"]
    assert polydl.normalizers.registry.entry("rms:rmsnorm").plugin == "rms"
    assert plugins.report()["settings"]["prefer"] == ["polydl-tricks"]
    assert {p.name: p for p in plugins.plugins()}["rms"].shadowed == {"normalizers": {"rmsnorm": "tricks"}}


def test_prefer_plugins_may_choose_a_builtin_over_an_override(site, monkeypatch):
    make_dist(site, "polydl-fastbn", "1.0", {"fastbn": "fake_fastbn"}, {"fake_fastbn.py": """
        import polydl

        @polydl.hookimpl
        def polydl_register_normalizers(register):
            register("batchnorm", lambda num_features: polydl.nn.Identity(), override=True)
    """})
    assert _load() == []  # an override is deliberate: no warning
    assert polydl.normalizers.registry.entry("batchnorm").plugin == "fastbn"
    plugins.reset()
    monkeypatch.setenv("POLYDL_PREFER_PLUGINS", "polydl")
    assert _load() == []
    assert isinstance(polydl.normalizers.get("batchnorm", 3), polydl.nn.BatchNorm)
    assert isinstance(polydl.normalizers.get("fastbn:batchnorm", 3), polydl.nn.Identity)


def test_strict_mode_makes_a_clash_an_error_unless_a_preference_decides_it(site, monkeypatch):
    _two_plugins(site)
    monkeypatch.setenv("POLYDL_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="normalizer 'rmsnorm' of plugin 'tricks' .* is not used"):
        plugins.load()
    plugins.reset()
    monkeypatch.setenv("POLYDL_PREFER_PLUGINS", "rms")
    plugins.load()
    assert polydl.normalizers.registry.entry("rmsnorm").plugin == "rms"


def test_a_preferred_name_that_matches_no_plugin_is_a_warning(site, monkeypatch):
    monkeypatch.setenv("POLYDL_PREFER_PLUGINS", "polydl, tricsk")
    (message,) = _load()
    assert message.startswith("POLYDL_PREFER_PLUGINS names 'tricsk', but no loaded polydl plugin has that "
                              "entry-point or distribution name (loaded: ")


def test_uninstalling_the_winner_gives_the_name_to_the_other(site):
    _two_plugins(site)
    _load()
    plugins.unregister_plugin("rms")
    assert polydl.normalizers.registry.entry("rmsnorm").plugin == "tricks"
    assert {p.name: p for p in plugins.plugins()}["tricks"].shadowed == {}


@pytest.mark.slow
def test_the_command_line_lists_the_clash_and_trains_with_either(tmp_path):
    site = _two_plugins(tmp_path / "site")
    listing = run_cli("plugins", paths=[site])
    assert listing.returncode == 0, listing.stderr
    assert "  normalizers: rmsnorm (eps; shadowed by rms: use tricks:rmsnorm)" in listing.stdout
    assert "  losses: smooth_ce (smoothing)" in listing.stdout
    assert "normalizer 'rmsnorm' of plugin 'tricks'" in listing.stdout.split("\nwarnings")[1]
    (tmp_path / "run.toml").write_text('normalizer = "tricks:rmsnorm"\nloss = "smooth_ce"\n')
    tiny = ["--dataset", "moons", "--dataset-param", "n_samples=100", "--hidden", "4", "--epochs", "1",
            "--no-plot", "-q"]
    res = run_cli("train", "--config", str(tmp_path / "run.toml"), *tiny, "--out", str(tmp_path / "a"), paths=[site])
    assert res.returncode == 0, res.stderr
    warning = [line for line in res.stderr.splitlines() if line.startswith("Warning: ")]
    assert len(warning) == 1 and "name it tricks:rmsnorm (--normalizer tricks:rmsnorm)" in warning[0]
    config = (tmp_path / "a" / "config.toml").read_text()
    assert 'normalizer = "tricks:rmsnorm"' in config
    assert "#   normalizer tricks:rmsnorm" in config and "plugin tricks (polydl-tricks 0.1.0)" in config
    res = run_cli("train", "--normalizer", "rmsnorm", *tiny, "--out", str(tmp_path / "b"), paths=[site],
                  env={"POLYDL_PREFER_PLUGINS": "tricks"})
    assert res.returncode == 0 and "Warning" not in res.stderr, res.stderr
    assert "plugin tricks (polydl-tricks 0.1.0)" in (tmp_path / "b" / "config.toml").read_text()
