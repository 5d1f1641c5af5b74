"""Normalizers by name."""
from __future__ import annotations

import numpy as np
import pytest

import polydl
from polydl import nn, normalizers


def test_names():
    assert {"batchnorm", "none"} <= set(normalizers.names())


def test_batchnorm_by_name_takes_its_parameters():
    bn = normalizers.get("batchnorm", 5, momentum=0.8, eps=1e-3)
    assert isinstance(bn, nn.BatchNorm)
    assert (bn.num_features, bn.momentum, bn.eps) == (5, 0.8, 1e-3)
    assert bn.gamma.shape == (5,) and bn.cancels_bias
    default = normalizers.get("batchnorm", 3)
    assert (default.momentum, default.eps) == (0.9, 1e-5)


def test_none_is_the_identity(device):
    norm = normalizers.get("none", 4)
    assert isinstance(norm, nn.Module) and norm.parameters() == []
    assert not getattr(norm, "cancels_bias", False)
    x = polydl.tensor(np.arange(8.0).reshape(2, 4), device=device)
    assert norm(x) is x


def test_unknown_name_and_bad_parameters():
    with pytest.raises(ValueError) as info:
        normalizers.get("layernorm_typo", 4)
    assert "batchnorm" in str(info.value) and "none" in str(info.value)
    with pytest.raises(ValueError):
        normalizers.get("batchnorm", 4, mom=0.5)
    with pytest.raises(ValueError, match="momentum"):
        normalizers.get("batchnorm", 4, momentum=1.5)
    with pytest.raises(ValueError, match="num_features"):
        normalizers.get("batchnorm", 0)


def test_dtype_and_device_of_a_factory_are_not_the_users_parameters():
    """polydl never passes a normalizer ``dtype`` or ``device`` (``Module.to`` moves the model),
    so a factory that takes them (LayerNorm of the example plugin does) does not list them."""

    def scaled(num_features, scale=2.0, dtype=None, device=None):
        return nn.Identity()

    class P:
        @polydl.hookimpl
        def polydl_register_normalizers(self, register):
            register("scaled", scaled)

    with polydl.testing.registered_plugin(P(), "scaled-plugin") as info:
        assert normalizers.registry.parameters("scaled", skip=1) == ["scale"]
        assert polydl.plugins.plugins()[-1].parameters == {"normalizers": {"scaled": ["scale"]}}
        with pytest.raises(ValueError, match=r"^normalizer 'scaled' has no parameter 'scal'; did you mean 'scale'\? "
                                             r"\(its parameters: scale\)$"):
            normalizers.get("scaled", 4, scal=1.0)
        assert info.name == "scaled-plugin"
