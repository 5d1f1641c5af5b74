"""``polydl info``: versions, CPU kernels, CUDA devices and loaded plugins."""
from __future__ import annotations

import platform

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


@click.command("info", cls=Command)
def info():
    """polydl, Python, NumPy, Numba and CuPy versions, CUDA devices, and the loaded plugins."""
    click.echo(f"polydl  {polydl.__version__}")
    click.echo(f"Python  {platform.python_version()}")
    click.echo(f"NumPy   {np.__version__}")
    mode = cpu_kernels.mode()
    numba = cpu_kernels.numba_version() if mode != "off" else None
    if numba:
        kernels = f"{numba} (fused CPU kernels: {mode})"
    elif mode == "off":
        kernels = "not used (POLYDL_CPU_KERNELS=off)"
    else:
        err = cpu_kernels._NUMBA_ERROR
        why = "not installed" if err is None or isinstance(err, ModuleNotFoundError) else f"fails to import ({err})"
        then = ("every fused op will fail: pip install 'polydl[fast]' or set POLYDL_CPU_KERNELS=auto"
                if mode == "on" else "fused CPU kernels off; pip install 'polydl[fast]'")
        kernels = f"{why} ({then})"
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
        return
    click.echo("plugins:")
    by_plugin: dict = {}
    for kind, name, plugin, dist, version in rows:
        by_plugin.setdefault((plugin, dist, version), []).append(f"{kind} {name}")
    for (plugin, dist, version), items in sorted(by_plugin.items(), key=lambda kv: str(kv[0])):
        origin = f" ({dist} {version})" if dist else ""
        click.echo(f"  {plugin}{origin}: {', '.join(items)}")
