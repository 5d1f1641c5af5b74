"""A run records which plugin, distribution and version supplied each component, and says so when
it is loaded again and a component now comes from elsewhere."""
import json
import sys
import warnings
from pathlib import Path

import pytest
from run_helpers import meta, metrics, tiny

import polydl
from polydl import hookimpl, plugins
from polydl.testing import registered_plugin
from polydl.training import checkpoint as ck
from polydl.training import evaluate, from_dict, load_toml, predict, resume, run
from polydl.training.provenance import ProvenanceError, ProvenanceWarning, comments, record

sys.path.insert(0, str(Path(__file__).parents[1]))
sys.path.insert(0, str(Path(__file__).parents[1] / "cli"))
from cli_helpers import assert_one_line_error, invoke  # noqa: E402
from plugin_fakes import make_dist  # noqa: E402


class Scale(polydl.nn.Module):
    """y = x · s."""

    def __init__(self, num_features, s=1.0):
        self.s = s

    def forward(self, x):
        return x * self.s


class Mine:
    @hookimpl
    def polydl_register_normalizers(self, register):
        register("scale", Scale)


def _mine(version="1.0", name="mine", dist="polydl-mine"):
    return registered_plugin(Mine(), name, distribution=dist, version=version)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run of one epoch whose normalizer came from plugin 'mine' (polydl-mine 1.0)."""
    out = tmp_path_factory.mktemp("prov") / "r"
    with _mine():
        run(tiny(normalizer="scale", epochs=1), out)
    return out


def test_the_checkpoint_and_config_toml_record_each_component(run_dir):
    components = meta(run_dir)["components"]
    assert components["normalizer"] == {"name": "scale", "plugin": "mine", "distribution": "polydl-mine",
                                        "version": "1.0"}
    assert components["schedule"] == {"name": "inverse_time", "plugin": "polydl.schedules", "distribution": "polydl",
                                      "version": polydl.__version__}
    assert set(components) == {"schedule", "normalizer", "loss", "optimizer", "dataset", "model"}
    text = (run_dir / ck.CONFIG).read_text()
    assert text.endswith(comments(components))
    assert "#   normalizer scale                  plugin mine (polydl-mine 1.0)\n" in text
    assert f"#   dataset    moons                  built-in (polydl {polydl.__version__})\n" in text
    assert f"#   model      mlp                    built-in (polydl {polydl.__version__})\n" in text
    config = from_dict(load_toml(run_dir / ck.CONFIG))  # the comments are skipped: polydl train --config works
    assert config.normalizer == "scale" and config.out == str(run_dir)


def test_a_data_file_is_not_a_component(tmp_path):
    import numpy as np
    np.savez(tmp_path / "d.npz", X=np.zeros((4, 2)), y=np.array([0, 1, 0, 1]))
    assert "dataset" not in record(tiny(dataset=str(tmp_path / "d.npz")))


def test_a_component_no_plugin_supplies_now_is_one_error(run_dir, tmp_path):
    expected = (f"the run in {run_dir} was trained with the normalizer 'scale' of plugin 'mine' (distribution "
                "polydl-mine 1.0), but no installed plugin registers it now; install it: pip install "
                "\"polydl-mine==1.0\"")
    for use in (lambda: evaluate(run_dir), lambda: predict(run_dir, [[0.0, 1.0]]),
                lambda: resume(run_dir, {"epochs": 2})):
        with pytest.raises(ProvenanceError) as exc:
            use()
        assert str(exc.value) == expected
    (tmp_path / "x.csv").write_text("0.5,1.5\n")
    for args in (("evaluate", run_dir), ("predict", run_dir, tmp_path / "x.csv"),
                 ("train", "--resume", run_dir, "--epochs", "2")):
        line = assert_one_line_error(invoke(*args), 2, "no installed plugin registers it now")
        assert "damaged" not in line
    assert meta(run_dir)["epoch"] == 1  # nothing was trained


def test_a_component_another_plugin_supplies_now_is_one_error(run_dir):
    with _mine("2.0", name="other", dist="polydl-other"):
        with pytest.raises(ProvenanceError, match=r"^the run in .* was trained with the normalizer 'scale' of plugin "
                                                  r"'mine' \(distribution polydl-mine 1.0\), but 'scale' now comes "
                                                  r"from plugin 'other' \(distribution polydl-other 2.0\); install "
                                                  r"it: pip install \"polydl-mine==1.0\", and set "
                                                  r"POLYDL_PREFER_PLUGINS=mine if the other plugin keeps the name$"):
            evaluate(run_dir)


def test_another_version_of_the_same_distribution_warns_once_and_goes_on(run_dir, tmp_path):
    with _mine("1.1"):
        with pytest.warns(ProvenanceWarning, match=r"trained with the normalizer 'scale' of polydl-mine 1.0, and "
                                                   r"polydl-mine 1.1 is installed now; its results may differ "
                                                   r"\(pip install \"polydl-mine==1.0\" restores it\)$"):
            assert evaluate(run_dir)["samples"] == 40
        import shutil
        copy = tmp_path / "copy"
        shutil.copytree(run_dir, copy)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = resume(copy, {"epochs": 2})
        assert result.epochs == 2
        assert [w.category for w in caught] == [ProvenanceWarning]
    assert meta(copy)["components"]["normalizer"]["version"] == "1.1"  # the checkpoint records what trained on


def test_a_component_the_resumed_run_replaces_is_not_checked(tmp_path):
    class Half:
        @hookimpl
        def polydl_register_schedules(self, register):
            register("half", lambda lr0=0.1: polydl.schedules.get("constant", lr0=lr0 / 2))

    with registered_plugin(Half(), "half", distribution="polydl-half", version="1"):
        run(tiny(schedule="half", epochs=1), tmp_path / "r")
    with pytest.raises(ProvenanceError, match="schedule 'half' of plugin 'half'"):
        resume(tmp_path / "r", {"epochs": 2})
    assert resume(tmp_path / "r", {"epochs": 2, "schedule": "constant"}).epochs == 2
    event = metrics(tmp_path / "r")[-1]["event"]  # α before is unknown: its schedule is gone
    assert event == "lr changed from half(lr0=0.01) per epoch to constant(lr0=0.01) per epoch: α → 0.01 at epoch 2"
    assert evaluate(tmp_path / "r")["samples"] == 40  # evaluating needs no schedule


def test_a_plugin_that_is_installed_but_loses_the_name_is_named(site, monkeypatch, tmp_path):
    source = """
        import polydl

        class Scale(polydl.nn.Module):
            def __init__(self, num_features, s=1.0):
                self.s = s

            def forward(self, x):
                return x * self.s

        @polydl.hookimpl
        def polydl_register_normalizers(register):
            register("scale", Scale)
    """
    make_dist(site, "polydl-aa", "1.0", {"aa": "fake_aa"}, {"fake_aa.py": source})
    make_dist(site, "polydl-bb", "1.0", {"bb": "fake_bb"}, {"fake_bb.py": source})
    monkeypatch.setenv("POLYDL_PREFER_PLUGINS", "bb")
    run(tiny(normalizer="scale", epochs=1), tmp_path / "r")
    assert meta(tmp_path / "r")["components"]["normalizer"]["plugin"] == "bb"
    plugins.reset()
    monkeypatch.delenv("POLYDL_PREFER_PLUGINS")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", plugins.PluginWarning)  # the clash itself
        line = assert_one_line_error(invoke("evaluate", tmp_path / "r"), 2)
    assert line.endswith("but 'scale' now comes from plugin 'aa' (distribution polydl-aa 1.0); that plugin is "
                         "installed but loses the name: set POLYDL_PREFER_PLUGINS=bb to use it")
    monkeypatch.setenv("POLYDL_PREFER_PLUGINS", "bb")
    plugins.reset()
    assert json.loads(invoke("evaluate", tmp_path / "r", "--json").stdout)["samples"] == 40


def test_every_component_of_another_version_is_one_warning_line(tmp_path):
    """A run from another polydl version: its built-in components are named in one warning."""
    run(tiny(epochs=1), tmp_path / "r")
    data, arrays = ck.load_checkpoint(tmp_path / "r" / ck.CHECKPOINT)
    for c in data["components"].values():
        c["version"] = "0.0.9"
    ck.save_checkpoint(tmp_path / "r" / ck.CHECKPOINT, data, arrays)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        evaluate(tmp_path / "r")
    (warning,) = [str(w.message) for w in caught]
    assert warning == (f"the run in {tmp_path / 'r'} was trained with the normalizer 'batchnorm', the loss "
                       f"'softmax_cross_entropy', the model 'mlp', the dataset 'moons' of polydl 0.0.9, and polydl "
                       f"{polydl.__version__} "
                       "is installed now; its results may differ (pip install \"polydl==0.0.9\" restores it)")
