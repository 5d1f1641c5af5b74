"""``polydl info``: versions, CPU kernels, CUDA devices and loaded plugins."""
from __future__ import annotations

import platform
import sys

import click
import numpy as np

import polydl
from polydl import backend, cpu_kernels

from ._common import Command


def cuda_devices() -> list[str]:
    """``cuda:N name (memory, compute capability)`` for each GPU CuPy sees."""
    out = []
    for d in backend.cuda_devices():
        extra = [f"{d['memory_gib']:g} GiB"] if "memory_gib" in d else []
        extra += [f"compute capability {d['compute_capability']}"] if "compute_capability" in d else []
        out.append(f"cuda:{d['index']} {d['name']}" + (f" ({', '.join(extra)})" if extra else ""))
    return out


def plugin_rows() -> list[tuple]:
    """(kind, name, plugin, distribution, version) of every registry entry a plugin added."""
    from polydl import plugins
    return [(reg.singular, e.name, e.plugin, e.distribution, e.version)
            for reg in plugins.registries().values() for e in reg.entries() if not e.builtin]


def numba_line(check: bool = False) -> tuple[str, bool]:
    """(the text after ``Numba``, whether the kernels can run). Without ``check`` nothing imports
    Numba (0.3–0.6 s): the version comes from its installed metadata; ``check`` imports it and
    compiles and runs one kernel, which tells a broken install from a working one."""
    mode = cpu_kernels.mode()
    if mode == "off" and not check:
        return "not used (POLYDL_CPU_KERNELS=off)", True
    version = cpu_kernels.installed_version()
    err = cpu_kernels._NUMBA_ERROR  # this process tried to import it and failed
    problem = None if err is None else f"fails to import ({err})"
    if version is not None and check:
        try:
            seconds = cpu_kernels.check()
        except RuntimeError as exc:
            problem = str(exc)
        else:
            return f"{version} (fused CPU kernels: {mode}; one compiled and run in {seconds:.2f}s)", True
    if version is not None and problem is None:
        return f"{version} (fused CPU kernels: {mode}; polydl info --check-kernels compiles one)", True
    if version is None:
        problem, fix = "not installed", "pip install numba"
    else:
        fix = "pip install --upgrade numba"
    then = f"every fused op will fail: {fix} or set POLYDL_CPU_KERNELS=auto" if mode == "on" else \
        f"fused CPU kernels off; {fix}"
    return f"{problem} ({then})", False


@click.command("info", cls=Command)
@click.option("--check-kernels", is_flag=True,
              help="Import Numba and compile and run one fused CPU kernel (exit status 1 if that fails).")
def info(check_kernels):
    """polydl, Python, NumPy, Numba and CuPy versions, CUDA devices, and the loaded plugins."""
    click.echo(f"polydl  {polydl.__version__}")
    click.echo(f"Python  {platform.python_version()}")
    click.echo(f"NumPy   {np.__version__}")
    kernels, healthy = numba_line(check_kernels)
    click.echo(f"Numba   {kernels}")
    cupy = backend.cupy_version()
    click.echo(f"CuPy    {cupy if cupy else 'not installed'}")
    devices = cuda_devices()
    if devices:
        click.echo("CUDA devices:")
        for d in devices:
            click.echo(f"  {d}")
    else:
        click.echo("CUDA devices: none" + (" (CuPy not installed)" if cupy is None else ""))
    rows = plugin_rows()
    if not rows:
        click.echo("plugins: none (built-ins only)")
    else:
        click.echo("plugins:")
        by_plugin: dict = {}
        for kind, name, plugin, dist, version in rows:
            by_plugin.setdefault((plugin, dist, version), []).append(f"{kind} {name}")
        for (plugin, dist, version), items in sorted(by_plugin.items(), key=lambda kv: str(kv[0])):
            origin = f" ({dist} {version})" if dist else ""
            click.echo(f"  {plugin}{origin}: {', '.join(items)}")
    if check_kernels and not healthy:
        sys.exit(1)
