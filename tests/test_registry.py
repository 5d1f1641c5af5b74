"""The shared checks in ``polydl.registry``: closest names, number and whole-number parameters,
and ``Registry.build``'s parameter check, used by every registry and by the CLI."""
from __future__ import annotations

import pytest

import polydl
from polydl.registry import Entry, Registry, check_number, check_whole, closest, did_you_mean


def test_closest_and_did_you_mean():
    assert closest("trian", ["train", "evaluate"]) == "train"
    assert closest("zzz", ["train", "evaluate"]) is None
    assert closest("zzz", ["train"], cutoff=0.0) == "train"
    assert did_you_mean("inverse_tme", polydl.schedules.names()) == "; did you mean 'inverse_time'?"
    assert did_you_mean("qqqq", ["train"]) == ""


@pytest.mark.parametrize("args, kwargs, value", [
    ((3,), {}, 3.0), ((0.5, 0, 1), {"low_open": True}, 0.5), ((1, 0, 1), {}, 1.0), ((0, 0), {}, 0.0),
])
def test_check_number_accepts(args, kwargs, value):
    out = check_number("x", *args, **kwargs)
    assert out == value and isinstance(out, float)


@pytest.mark.parametrize("args, kwargs, message", [
    (("a",), {}, "x must be a finite number, not 'a'"),
    ((True,), {}, "x must be a finite number, not True"),
    ((float("nan"),), {}, "x must be a finite number, not nan"),
    ((-1, 0), {}, "x must be >= 0, not -1"),
    ((0, 0), {"low_open": True}, "x must be > 0, not 0"),
    ((1, 0, 1), {"high_open": True}, r"x must be in \[0, 1\), not 1"),
    ((0, 0, 1), {"low_open": True}, r"x must be in \(0, 1\], not 0"),
    ((2, None, 1), {}, "x must be <= 1, not 2"),
])
def test_check_number_rejects(args, kwargs, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        check_number("x", *args, **kwargs)


def test_check_whole():
    assert check_whole("n", 3, 1) == 3
    assert check_whole("n", 4.0, 1, integral_floats=True) == 4
    for bad in (4.0, 2.5, "3", True, None):
        with pytest.raises(ValueError, match="n must be a whole number"):
            check_whole("n", bad, 1)
    with pytest.raises(ValueError, match=r"^n must be >= 1 \(samples\), not 0$"):
        check_whole("n", 0, 1, meaning="samples")


def _registry():
    reg = Registry("widgets", singular="widget")
    reg._load = lambda: None  # a registry built by hand: no plugins to load
    return reg


def test_build_checks_parameter_names_and_lists_the_valid_ones():
    reg = _registry()

    def widget(size, colour="red", weight=1.0):
        return (size, colour, weight)

    reg.register("w", widget)
    assert reg.parameters("w") == ["size", "colour", "weight"] and reg.parameters("w", skip=1) == ["colour", "weight"]
    assert reg.build("w", 3, colour="blue") == (3, "blue", 1.0)
    with pytest.raises(ValueError, match=r"^widget 'w' has no parameter 'color'; did you mean 'colour'\? "
                                         r"\(its parameters: colour, weight\)$"):
        reg.build("w", 3, color="blue")
    with pytest.raises(ValueError, match=r"widget 'w' has no parameter 'a', 'b' \(its parameters"):
        reg.build("w", 3, a=1, b=2)
    with pytest.raises(ValueError, match=r"^widget 'w': missing a required argument: 'size' "
                                         r"\(its parameters: size, colour, weight\)$"):
        reg.build("w")


def test_build_turns_a_type_error_of_the_factory_into_a_value_error():
    reg = _registry()
    reg.register("half", lambda n=2: n // 2)
    assert reg.get("half", n=8) == 4
    with pytest.raises(ValueError, match=r"widget 'half' cannot be built with n='x': unsupported operand"):
        reg.build("half", n="x")


def test_build_passes_keyword_arguments_through_var_keyword():
    reg = _registry()
    reg.register("kw", lambda **kw: kw)
    assert reg.build("kw", anything=1) == {"anything": 1}


def test_entry_builtin():
    assert polydl.schedules.registry.entry("constant").builtin
    assert Entry("x", None, plugin="polydl").builtin
    assert not Entry("x", None, plugin="cosine", distribution="polydl-cosine").builtin
