"""``polydl train --model``: a convolutional model on the digits from the command line, its
parameters from ``--model-param`` and ``[model_params]``, evaluated and predicted with like any
run; a model that cannot take the data, or a setting it would ignore, is one ``Error:`` line and
nothing is written."""
import numpy as np
from cli_helpers import assert_one_line_error, invoke

#: a convolutional run of about a second
CNN = ["--model", "cnn", "--model-param", "channels=[4,8]", "--hidden", "16", "--epochs", "2", "--no-plot"]


def test_a_cnn_from_the_command_line(tmp_path):
    out = tmp_path / "cnn"
    r = invoke("train", *CNN, "--out", out)
    assert r.exit_code == 0, r.output
    first = r.stdout.splitlines()[0]
    assert first.startswith("training cnn 1×8×8 (channels=[4, 8], kernel_size=3, pool=2, batchnorm=True, hidden=[16]) "
                            "-> 10 (batchnorm, relu; "), first
    assert "digits: test accuracy" in r.stdout.splitlines()[-1]
    e = invoke("evaluate", out)
    assert e.exit_code == 0 and "accuracy" in e.stdout, e.output
    np.savez(tmp_path / "x.npz", X=np.random.default_rng(0).random((3, 64)))
    p = invoke("predict", out, tmp_path / "x.npz")
    assert p.exit_code == 0 and len(p.stdout.strip().splitlines()) == 4, p.output


def test_model_parameters_from_a_config_file_and_flags(tmp_path):
    (tmp_path / "c.toml").write_text('model = "cnn"\n\n[model_params]\nchannels = [4, 8]\nkernel_size = 5\n')
    r = invoke("train", "--config", tmp_path / "c.toml", "--model-param", "pool=1", "--print-config")
    assert r.exit_code == 0, r.output
    assert 'model = "cnn"' in r.stdout
    assert "[model_params]\nchannels = [4, 8]\nkernel_size = 5\npool = 1\n" in r.stdout
    r = invoke("train", "--config", tmp_path / "c.toml", "--model", "lenet5", "--print-config")
    assert r.stdout.endswith("[model_params]\n")  # another model: the old one's parameters are dropped


def test_bad_models_are_one_line_and_write_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cases = [
        (["--model", "cnn", "--dataset", "moons"], "model cnn takes images (channels, height, width), but the data's "
                                                    "samples have shape (2,) (2 values each)"),
        (["--model", "lenet5"], "model lenet5: convolution 2's 5×5 kernel is larger than its input of 4×4 padded by 0"),
        (["--model", "lenet5", "--hidden", "32"], "model 'lenet5' takes no hidden, so hidden = [32] would be ignored"),
        (["--model", "cnn", "--model-param", "channels=[4,4,4,4]"], "the feature maps of convolution 4 are 1×1, "
                                                                    "smaller than the 2×2 pool"),
        (["--model", "cnn", "--model-param", "chanels=[4]"], "model 'cnn' has no parameter 'chanels'; did you mean "
                                                             "'channels'?"),
        (["--model", "cnn", "--model-param", "hidden=[4]"], "model_params cannot set hidden: it comes from hidden "
                                                            "(--hidden)"),
        (["--model", "convnet"], "unknown model 'convnet'"),
    ]
    for flags, fragment in cases:
        assert_one_line_error(invoke("train", *flags, "--out", tmp_path / "out"), 2, fragment)
        assert not (tmp_path / "out").exists() and not (tmp_path / "runs").exists()


def test_plugins_lists_the_models():
    r = invoke("plugins")
    assert r.exit_code == 0, r.output
    assert "  models: mlp, cnn (channels, kernel_size, pool, batchnorm), lenet5 (batchnorm)" in r.stdout
