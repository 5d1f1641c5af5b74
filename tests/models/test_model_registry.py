"""The model registry: the built-ins registered through the hook, ``get`` with its checks, a
plugin's model, and what a factory must be to be registered."""
from __future__ import annotations

import numpy as np
import pytest

import polydl
from polydl import models, nn, plugins
from polydl.registry import RegistrationError, UnknownNameError
from polydl.testing import registered_plugin


def test_builtins_are_registered_through_the_hook():
    for name in ("mlp", "cnn", "lenet5"):
        entry = models.registry.entry(name)
        assert entry.builtin and entry.plugin == "polydl.models"
    info = {p.name: p for p in plugins.plugins()}["polydl.models"]
    assert info.hooks == ["polydl_register_models"] and info.registered == {"models": ["mlp", "cnn", "lenet5"]}
    assert info.parameters["models"] == {"mlp": [], "cnn": ["channels", "kernel_size", "pool", "batchnorm"],
                                         "lenet5": ["batchnorm"]}


def test_the_configuration_keys_a_factory_may_declare_are_supplied():
    assert plugins.SUPPLIED["models"] == (2, models.CONFIG_KEYS)
    assert models.takes("cnn", "hidden") and models.takes("lenet5", "dropout") and not models.takes("lenet5", "hidden")
    assert models.takes_population("mlp") and not models.takes_population("cnn")
    assert models.defaults("cnn")["channels"] == (32, 64) and models.is_mlp("mlp") and not models.is_mlp("cnn")


def test_get_builds_a_module_for_the_sample_shape():
    polydl.manual_seed(0)
    model = models.get("cnn", (1, 8, 8), 10, channels=[4, 8], kernel_size=3, batchnorm="false")
    assert isinstance(model, nn.Sequential)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model)
    assert model(polydl.tensor(np.zeros((3, 64), np.float32))).shape == (3, 10)
    assert models.get("mlp", 5, 2)(polydl.tensor(np.zeros((4, 5), np.float32))).shape == (4, 2)


@pytest.mark.parametrize("call, error, message", [
    (lambda: models.get("cnn", (1, 0, 8), 3), ValueError, r"input_shape must be a tuple of positive whole sizes"),
    (lambda: models.get("cnn", (1, 8, 8), 0), ValueError, r"num_outputs"),
    (lambda: models.get("cnn", (1, 8, 8), 3, chanels=[4]), ValueError,
     r"model 'cnn' has no parameter 'chanels'; did you mean 'channels'\? \(its parameters: channels, kernel_size, "
     r"pool, batchnorm\)"),
    (lambda: models.get("cnn", (1, 8, 8), 3, batchnorm="maybe"), ValueError, r"batchnorm must be true or false"),
    (lambda: models.get("resnet50", (1, 8, 8), 3), UnknownNameError, r"unknown model 'resnet50'"),
])
def test_get_refuses_bad_arguments(call, error, message):
    with pytest.raises(error, match=message):
        call()


def _tiny(input_shape, num_outputs, width=3):
    return nn.Sequential(nn.Linear(int(np.prod(input_shape)), width), nn.ReLU(), nn.Linear(width, num_outputs))


class Tiny:
    @polydl.hookimpl
    def polydl_register_models(self, register):
        register("tiny", _tiny)


def test_a_plugin_model_is_built_like_a_builtin():
    with registered_plugin(Tiny(), "tiny-models", distribution="polydl-tiny", version="1.0") as info:
        assert info.registered == {"models": ["tiny"]}
        entry = models.registry.entry("tiny")
        assert (entry.plugin, entry.distribution, entry.version) == ("tiny-models", "polydl-tiny", "1.0")
        model = models.get("tiny", (2, 3), 4, width=5)
        assert model(polydl.tensor(np.ones((2, 6), np.float32))).shape == (2, 4)
        pop = models.get("tiny", (2, 3), 4, population=3)
        assert isinstance(pop, models.ModelByMember) and pop(polydl.tensor(np.ones((2, 6), np.float32))).shape == (3, 2, 4)
    assert "tiny" not in models.names()


@pytest.mark.parametrize("factory, message", [
    (42, r"model 'bad' must be a callable factory\(input_shape, num_outputs, \*\*params\)"),
    (lambda: None, r"model factory 'bad' must accept input_shape and num_outputs as its first two arguments"),
])
def test_a_factory_that_cannot_be_called_so_is_refused(factory, message):
    class Bad:
        @polydl.hookimpl
        def polydl_register_models(self, register):
            register("bad", factory)

    with pytest.raises(plugins.PluginError, match=message), registered_plugin(Bad(), "bad-models"):
        pass


def test_a_factory_returning_no_module_is_an_error():
    with pytest.raises(RegistrationError):
        models.registry.register("", _tiny)
    models.registry.register("not_a_module", lambda input_shape, num_outputs: "a string")
    try:
        with pytest.raises(ValueError, match=r"model factory 'not_a_module' returned str, not a polydl.nn.Module"):
            models.get("not_a_module", (2,), 2)
    finally:
        models.registry.unregister("not_a_module")
