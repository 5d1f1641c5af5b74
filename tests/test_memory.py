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
