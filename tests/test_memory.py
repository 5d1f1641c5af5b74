"""Sizes that cannot fit are refused before anything is allocated, saying how large they are."""
from __future__ import annotations

import os

import pytest

from polydl import memory


def test_format_bytes():
    assert memory.format_bytes(0) == "0 bytes"
    assert memory.format_bytes(1023) == "1023 bytes"
    assert memory.format_bytes(1536) == "1.5 KiB"
    assert memory.format_bytes(3 * 2 ** 30) == "3 GiB"
    assert memory.format_bytes(8 * 10 ** 12) == "7.28 TiB"
    assert memory.format_bytes(2 ** 70) == "1.02e+03 EiB"


def test_the_limit_is_the_physical_memory():
    host = memory.host_memory()
    if hasattr(os, "sysconf") and "SC_PHYS_PAGES" in os.sysconf_names:
        assert host == os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") > 0
    assert memory.limit() == (host or memory.FALLBACK_LIMIT)


def test_check_bytes_passes_what_fits_and_names_what_does_not():
    memory.check_bytes("a small array", 1024, "never shown")
    too_big = memory.limit() + 1
    with pytest.raises(memory.MemoryLimitError, match=rf"^an array would need {memory.format_bytes(too_big)}, more "
                                                      r"than (this machine's memory|the limit of) .*; use less$"):
        memory.check_bytes("an array", too_big, "use less")
    assert issubclass(memory.MemoryLimitError, ValueError)

    class Mine(ValueError):
        pass

    with pytest.raises(Mine):
        memory.check_bytes("an array", too_big, "use less", error=Mine)


def test_available_reads_memavailable_and_falls_back_to_the_physical_memory(tmp_path):
    info = tmp_path / "meminfo"
    info.write_text("MemTotal:       16000000 kB\nMemFree:         1000 kB\nMemAvailable:    2048 kB\n")
    assert memory.host_available(str(info)) == 2048 * 1024
    info.write_text("MemTotal: 1 kB\n")
    assert memory.host_available(str(info)) is None
    assert memory.host_available(str(tmp_path / "none")) is None
    free, where = memory.available()
    assert free > 0 and where in ("of memory available on this machine", "of memory on this machine", "allowed")


def test_check_free_says_how_much_is_needed_and_free():
    memory.check_free("a small model", 1024, "never shown")
    free, where = memory.available()
    with pytest.raises(memory.MemoryLimitError, match=rf"^training it would need about "
                                                      rf"{memory.format_bytes(2 * free)}, more than the .* {where}; "
                                                      r"use less$"):
        memory.check_free("training it", 2 * free, "use less")


def _layers_that_fit_one_by_one_but_not_together():
    """A width whose weight alone passes the per-layer check (drawn in float64, kept in float32:
    12 bytes a value, half the machine), three of which with Adam (16 bytes a value) do not fit."""
    return int((memory.limit() / 24) ** 0.5)


def test_the_whole_model_with_gradients_and_optimizer_state_is_checked():
    from polydl.training import TrainConfig
    from polydl.training.build import check_memory, optimizer_slots, training_memory

    assert [optimizer_slots(n) for n in ("sgd", "momentum", "rmsprop", "adam")] == [0, 1, 1, 2]
    cfg = TrainConfig(hidden=[100, 50], normalizer="none", optimizer="adam", dtype="float64")
    need = training_memory(cfg, 10, 3, batch=32)
    values = 10 * 100 + 100 + 100 * 50 + 50 + 50 * 3 + 3
    assert need["parameters"] == need["gradients"] == values * 8 and need["state"] == 2 * values * 8
    assert training_memory(cfg.replace(optimizer="sgd"), 10, 3, batch=32)["state"] == 0
    assert training_memory(cfg, 10, 3, batch=32, population=5) == {k: 5 * v for k, v in need.items()}
    w = _layers_that_fit_one_by_one_but_not_together()
    big = TrainConfig(hidden=[w, w, w], optimizer="adam")
    with pytest.raises(memory.MemoryLimitError) as info:
        check_memory(big, 64, 10, 64, None)
    msg = str(info.value)
    assert msg.startswith(f"training mlp 64-{w}-{w}-{w}-10 with adam would need about ")
    assert "2 values per parameter" in msg and "--hidden 128,64" in msg and "\n" not in msg
    with pytest.raises(memory.MemoryLimitError, match=r"^training a population of 3 mlp .*, fewer members"):
        check_memory(TrainConfig(hidden=[w // 2] * 4), 64, 10, 64, None, population=3)


def test_a_plugin_optimizer_is_asked_for_its_state_or_assumed_to_keep_two():
    import polydl
    from polydl import optim
    from polydl.testing import registered_plugin
    from polydl.training.build import optimizer_slots

    class Plain(optim.SGD):
        pass

    class Declared(optim.SGD):
        state_names = ("a", "b", "c")

    class P:
        @polydl.hookimpl
        def polydl_register_optimizers(self, register):
            register("plain_opt", Plain)
            register("declared_opt", Declared)

    with registered_plugin(P(), "opts"):
        assert optimizer_slots("plain_opt") == 2 and optimizer_slots("declared_opt") == 3
