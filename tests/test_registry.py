"""``Registry``: registration, lookup and ``build``'s parameter check, used by every registry."""
from __future__ import annotations

import pytest

import polydl
from polydl.registry import Entry, Registry


def _registry():
    return Registry("widgets", singular="widget")  # built by hand: its queries load the plugins first


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
    assert reg.build("half", n=8) == 4
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


def test_the_registry_module_imports_nothing_of_polydl_above_it():
    import ast
    import pathlib

    import polydl.registry as registry

    tree = ast.parse(pathlib.Path(registry.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level}
    assert imported == {"checks"}


def test_plugins_load_on_the_first_query_and_add_goes_through_the_public_method():
    reg = polydl.schedules.registry
    assert reg.holds("constant") or not polydl.plugins.is_loaded()
    assert "constant" in reg  # a query loads the plugins
    assert reg.holds("constant") and not reg.holds("no-such-schedule")
