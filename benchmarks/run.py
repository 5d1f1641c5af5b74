"""Training-step benchmarks: polydl against PyTorch, JAX and the GEMM floor, in one run.

Each workload W1–W3 trains the same BatchNorm MLP (Linear without bias → BatchNorm → ReLU per
hidden layer, then Linear; Adam; softmax cross-entropy) on the same random data, one epoch per
timed run; C1 trains LeNet-5 with BatchNorm2d on 1×28×28 images, batch 128 (``conv.py``). The sides are interleaved, with a pause between timed runs (BLAS threads keep spinning for a
moment after a run and slow whatever runs next), and both are capped to the same thread count.
The GEMM floor is the time of just the matrix products of that training step. JAX's side
(W1–W3, ``jax_mlp.py``) is ``jax.jit`` of a ``lax.scan`` over the epoch's mini-batches, from
polydl's initial weights; its compile time is measured apart and reported.

    python benchmarks/run.py                        # all CPU workloads, 5 repetitions
    python benchmarks/run.py --workloads W1 --reps 9
    python benchmarks/run.py --workloads C1 --sides polydl,torch,gemm
    python benchmarks/run.py --device cuda --write docs/gpu-report-bench.md

PyTorch and JAX are needed only here (pip install torch jax jaxlib); neither is a dependency of
polydl, and a side whose library is missing is skipped with a message.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import bench_threads

bench_threads.cap()

import jax_mlp  # noqa: E402
import numpy as np  # noqa: E402
from conv import CONV_WORKLOADS, conv_sides  # noqa: E402
from overhead import op_overhead  # noqa: E402

WORKLOADS = {
    # name: (layer sizes, batch size, samples per epoch)
    "W1": ((64, 32, 10), 32, 4000),
    "W2": ((784, 256, 256, 10), 128, 20000),
    "W3": ((784, 1024, 1024, 10), 512, 8192),
}
GPU_BATCH = {"W1": 32, "W2": 512, "W3": 1024}


def make_data(sizes, samples, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((samples, sizes[0]), dtype=np.float32)
    y = rng.integers(0, sizes[-1], samples).astype(np.int64)
    return X, y


# ---------------------------------------------------------------------------- polydl
class PolydlSide:
    """polydl's training loop, each mini-batch one ``polydl.capture.TrainStep`` (as ``polydl
    train`` runs it): captured after its first step; ``capture=False`` keeps every step eager
    (``POLYDL_CAPTURE=off``). ``kernels=False`` runs it with the fused CPU kernels off (the NumPy
    form of every op and optimizer step, as without Numba installed)."""

    def __init__(self, sizes, batch, X, y, device, kernels=True, capture=True):
        import polydl
        from polydl import backend, losses, nn, optim
        from polydl.capture import TrainStep

        self.name = ("polydl" if kernels else "polydl NumPy only") + ("" if capture else " eager")
        self.kernels = "auto" if kernels else "off"
        self.polydl = polydl
        polydl.manual_seed(0)
        self.device = device
        self.model = nn.mlp(sizes).to(device)
        self.opt = optim.Adam(self.model.parameters(), lr=1e-3)
        self.loss = losses.get("softmax_cross_entropy")
        self.X = backend.to_device(X, device)
        self.y = backend.to_device(y, device)
        self.batch = batch
        self.xp = backend.get_array_module(self.X)
        self.step = TrainStep(self.model, self.loss, self.opt, capture=capture)

    def epoch(self):
        step, X, y, b = self.step, self.X, self.y, self.batch
        last = None
        with self.polydl.cpu_kernels.use(self.kernels):
            for i in range(0, len(y) - b + 1, b):
                last, _ = step(X[i:i + b], y[i:i + b])
        self.sync()
        return float(last.item())

    def sync(self):
        if self.xp is not np:
            self.xp.cuda.get_current_stream().synchronize()


# ---------------------------------------------------------------------------- PyTorch
class TorchSide:
    def __init__(self, sizes, batch, X, y, device, fused=False):
        import torch

        self.torch = torch
        torch.manual_seed(0)
        dev = "cuda" if device.startswith("cuda") else "cpu"
        self.dev = dev
        layers = []
        for a, b in zip(sizes[:-2], sizes[1:-1]):
            layers += [torch.nn.Linear(a, b, bias=False), torch.nn.BatchNorm1d(b, momentum=0.1),
                       torch.nn.ReLU()]
        layers.append(torch.nn.Linear(sizes[-2], sizes[-1]))
        self.model = torch.nn.Sequential(*layers).to(dev)
        kw = {"fused": True} if fused else {}
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3, **kw)
        self.loss = torch.nn.CrossEntropyLoss()
        self.X = torch.from_numpy(X).to(dev)
        self.y = torch.from_numpy(y).to(dev)
        self.batch = batch
        self.name = "torch fused" if fused else "torch"

    def epoch(self):
        model, opt, loss_fn, X, y, b = self.model, self.opt, self.loss, self.X, self.y, self.batch
        last = None
        for i in range(0, len(y) - b + 1, b):
            opt.zero_grad(set_to_none=True)
            last = loss_fn(model(X[i:i + b]), y[i:i + b])
            last.backward()
            opt.step()
        self.sync()
        return float(last.item())

    def sync(self):
        if self.dev == "cuda":
            self.torch.cuda.synchronize()


# ---------------------------------------------------------------------------- JAX
class JaxSide(jax_mlp.JaxMLP):
    """The same model in JAX (``jax_mlp``), from the weights polydl's side starts with."""

    name = "JAX"

    def __init__(self, sizes, batch, X, y, device):
        import polydl
        from polydl import nn

        polydl.manual_seed(0)
        super().__init__(jax_mlp.initial_params(nn.mlp(sizes)), X, y, batch, lr=1e-3)


# ---------------------------------------------------------------------------- GEMM floor
class GemmFloor:
    """Only the matrix products of the training step: forward z = a W for each layer, backward
    dW = aᵀ g for each layer and da = g Wᵀ for every layer but the first."""

    name = "GEMM floor"

    def __init__(self, sizes, batch, X, y, device):
        from polydl import backend

        self.xp = backend.device(device).xp
        xp = self.xp
        self.W = [backend.to_device(np.random.default_rng(0).standard_normal((a, b), dtype=np.float32) * 0.05, device)
                  for a, b in zip(sizes[:-1], sizes[1:])]
        self.X = backend.to_device(X, device)
        self.batch = batch
        self.n = len(y)
        self.acts = [xp.empty((batch, w.shape[0]), np.float32) for w in self.W]
        self.outs = [xp.empty((batch, w.shape[1]), np.float32) for w in self.W]
        self.dW = [xp.empty_like(w) for w in self.W]

    def epoch(self):
        xp, W, b = self.xp, self.W, self.batch
        for i in range(0, self.n - b + 1, b):
            a = self.X[i:i + b]
            for k, w in enumerate(W):
                xp.matmul(a, w, out=self.outs[k])
                a = self.outs[k]
            g = self.outs[-1]
            for k in range(len(W) - 1, -1, -1):
                inp = self.X[i:i + b] if k == 0 else self.outs[k - 1]
                xp.matmul(inp.T, g, out=self.dW[k])
                if k > 0:
                    g = xp.matmul(g, W[k].T)
        if xp is not np:
            xp.cuda.get_current_stream().synchronize()
        return 0.0


# ---------------------------------------------------------------------------- driver
def mlp_sides(name, device, sides_wanted):
    """(the sides of the MLP workload ``name`` that ``sides_wanted`` names, its sizes, batch, samples)."""
    sizes, batch, samples = WORKLOADS[name]
    if device.startswith("cuda"):
        batch = GPU_BATCH[name]
        samples = max(samples, batch * 40)
    X, y = make_data(sizes, samples)
    sides = []
    if "polydl" in sides_wanted:
        sides.append(PolydlSide(sizes, batch, X, y, device))
    if "eager" in sides_wanted:
        sides.append(PolydlSide(sizes, batch, X, y, device, capture=False))
    if "numpy" in sides_wanted and not device.startswith("cuda"):
        sides.append(PolydlSide(sizes, batch, X, y, device, kernels=False))
    if "torch" in sides_wanted:
        sides.append(TorchSide(sizes, batch, X, y, device))
    if "fused" in sides_wanted:
        sides.append(TorchSide(sizes, batch, X, y, device, fused=True))
    if "jax" in sides_wanted and not device.startswith("cuda"):
        sides.append(JaxSide(sizes, batch, X, y, device))
    if "gemm" in sides_wanted:
        sides.append(GemmFloor(sizes, batch, X, y, device))
    return sides, sizes, batch, samples


def bench_workload(name, device, reps, pause, sides_wanted):
    if name not in WORKLOADS and name not in CONV_WORKLOADS:
        raise SystemExit(f"unknown workload {name!r} (valid: {', '.join([*WORKLOADS, *CONV_WORKLOADS])})")
    make = conv_sides if name in CONV_WORKLOADS else mlp_sides
    sides, sizes, batch, samples = make(name, device, sides_wanted)
    first_loss = {}
    for s in sides:  # warm-up: one epoch each (allocations, CUDA kernels compiled)
        first_loss[s.name] = s.epoch()
        time.sleep(pause)
    times = {s.name: [] for s in sides}
    for r in range(reps):
        order = sides if r % 2 == 0 else list(reversed(sides))
        for s in order:
            t0 = time.perf_counter()
            s.epoch()
            times[s.name].append(time.perf_counter() - t0)
            time.sleep(pause)
    steps = samples // batch
    return {"workload": name, "sizes": sizes, "batch": batch, "samples": steps * batch,
            "median_s": {k: statistics.median(v) for k, v in times.items()},
            "loss_after_first_epoch": {k: v for k, v in first_loss.items() if k != "GEMM floor" and v is not None},
            "compile_s": {s.name: s.compile_s for s in sides if hasattr(s, "compile_s")},
            "all_s": times}


def peak_memory(name, side, device, threads):
    """Peak RSS growth (MiB) of one side training one epoch of ``name``, in a fresh process."""
    code = f"""
import os, sys
os.environ.setdefault('OPENBLAS_NUM_THREADS', '{threads}'); os.environ.setdefault('OMP_NUM_THREADS', '{threads}')
sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})
import run as R
sizes, batch, samples = R.WORKLOADS[{name!r}]
X, y = R.make_data(sizes, samples)
make = {{'polydl': lambda *a: R.PolydlSide(*a, {device!r}),
        'polydl NumPy only': lambda *a: R.PolydlSide(*a, {device!r}, kernels=False),
        'torch': lambda *a: R.TorchSide(*a, {device!r}),
        'torch fused': lambda *a: R.TorchSide(*a, {device!r}, fused=True)}}[{side!r}]
# warm-up on a tiny model: the library's lazy imports and compiled kernels load before the baseline
tx, ty = R.make_data((8, 8, 2), 16)
make((8, 8, 2), 4, tx, ty).epoch()
side = make(sizes, batch, X, y)
def status(key):  # VmHWM is this process image's own peak (ru_maxrss inherits the parent's at exec)
    for line in open('/proc/self/status'):
        if line.startswith(key): return int(line.split()[1])
base = status('VmRSS')
side.epoch(); side.epoch()
print((status('VmHWM') - base) / 1024)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def versions():
    out = {"python": platform.python_version(), "numpy": np.__version__, "machine": platform.machine(),
           "cpus": os.cpu_count(), "processor": platform.processor() or "unknown"}
    try:
        import torch
        out["torch"] = torch.__version__
    except ImportError:
        out["torch"] = "not installed"
    out["jax"] = jax_mlp.version()
    try:
        import polydl
        out["polydl"] = polydl.__version__
        from polydl import backend, cpu_kernels
        out["cupy"] = backend.cupy_version() or "not installed"
        out["numba"] = cpu_kernels.numba_version() or "not installed"
    except ImportError:
        pass
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    out["cpu_model"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return out


def render(results, overhead, memory, info, args):
    cpu = not args.device.startswith("cuda")
    lines = [f"Machine: {info.get('cpu_model', info['processor'])}, {info['cpus']} cores; Python {info['python']}, "
             f"NumPy {info['numpy']}, PyTorch {info['torch']}, JAX {info['jax']}, polydl {info.get('polydl')}"
             + (f", Numba {info.get('numba')}" if cpu else f", CuPy {info.get('cupy')}") + f"; {args.threads} threads.",
             "", f"Device `{args.device}`, float32, {args.reps} repetitions, median seconds per epoch.", "",
             "| workload | batch | samples | polydl (s) | torch (s) | torch fused (s) | JAX (s) | GEMM floor (s) | "
             "polydl samples/s | vs torch | vs torch fused | polydl / JAX | polydl / GEMM floor |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]

    def fmt(x):
        return "—" if x is None else f"{x:.4f}"

    def ratio(a, b):
        return "—" if a is None or b is None else f"{a / b:.2f}×"

    for r in results:
        med = r["median_s"]
        p = med.get("polydl")
        t = med.get("torch")
        f = med.get("torch fused")
        g = med.get("GEMM floor")
        j = med.get("JAX")
        lines.append(f"| {r['workload']} {'-'.join(map(str, r['sizes']))} | {r['batch']} | {r['samples']} | {fmt(p)} | "
                     f"{fmt(t)} | {fmt(f)} | {fmt(j)} | {fmt(g)} | "
                     f"{'—' if p is None else format(r['samples'] / p, ',.0f')} | "
                     f"{ratio(t, p)} | {ratio(f, p)} | {ratio(p, j)} | {ratio(p, g)} |")
    lines.append("")
    lines.append("\"vs torch\" is PyTorch's time over polydl's (higher is better for polydl); "
                 "\"polydl / JAX\" and \"polydl / GEMM floor\" are polydl's time over JAX's and over the matrix "
                 "products alone (below 1 polydl is faster).")
    compiled = [f"{r['workload']} {r['compile_s']['JAX']:.2f} s" for r in results if "JAX" in r.get("compile_s", {})]
    if compiled:
        lines += ["", "JAX's compile time (trace, lower and compile of the whole epoch, once, not in the times "
                  "above): " + ", ".join(compiled) + "."]
    losses = [f"{r['workload']} " + ", ".join(f"{k} {v:.4f}" for k, v in r["loss_after_first_epoch"].items())
              for r in results if r.get("loss_after_first_epoch")]
    if losses:
        lines += ["", "Loss of the last mini-batch of the first epoch (JAX starts from polydl's weights, PyTorch "
                  "from its own draw): " + "; ".join(losses) + "."]
    if any("polydl NumPy only" in r["median_s"] for r in results):
        lines += ["", "The same runs with the fused CPU kernels off (`POLYDL_CPU_KERNELS=off`, or Numba not "
                  "installed: the NumPy form of every op and optimizer step):", "",
                  "| workload | polydl NumPy only (s) | vs torch | vs torch fused | / GEMM floor | polydl with kernels, speed-up |",
                  "|---|---|---|---|---|---|"]
        for r in results:
            med = r["median_s"]
            n = med.get("polydl NumPy only")
            if n is None:
                continue
            lines.append(f"| {r['workload']} | {fmt(n)} | {ratio(med.get('torch'), n)} | {ratio(med.get('torch fused'), n)} | "
                         f"{ratio(n, med.get('GEMM floor'))} | {ratio(n, med.get('polydl'))} |")
    if any("polydl eager" in r["median_s"] for r in results):
        lines += ["", "Captured steps against eager ones (`POLYDL_CAPTURE=off`: every step builds its graph and "
                  "walks it):", "", "| workload | polydl eager (s) | polydl captured (s) | speed-up | eager / JAX |",
                  "|---|---|---|---|---|"]
        for r in results:
            med = r["median_s"]
            e = med.get("polydl eager")
            if e is not None:
                lines.append(f"| {r['workload']} | {fmt(e)} | {fmt(med.get('polydl'))} | {ratio(e, med.get('polydl'))} | "
                             f"{ratio(e, med.get('JAX'))} |")
    if overhead:
        lines += ["", f"Autodiff bookkeeping: a recorded tiny op costs {overhead['recorded_add_us']:.2f} µs against "
                  f"{overhead['numpy_add_us']:.2f} µs for the bare NumPy call ({overhead['forward_overhead_us']:.2f} µs "
                  f"of graph recording); the backward walk costs {overhead['backward_per_node_us']:.2f} µs per node."]
    if memory:
        lines += ["", "Peak memory growth during two epochs of W2 (fresh process each, MiB): "
                  + ", ".join(f"{k} {v:.1f}" for k, v in memory.items()) + "."]
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workloads", default="W1,W2,W3,C1")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--pause", type=float, default=0.5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sides", default="polydl,eager,numpy,torch,fused,jax,gemm",
                    help="comma-separated: polydl, eager (polydl with capture off), numpy (polydl with the CPU "
                         "kernels off), torch, fused, jax, gemm")
    ap.add_argument("--no-memory", action="store_true", help="skip the W2 peak-memory comparison")
    ap.add_argument("--no-overhead", action="store_true", help="skip the per-op overhead measurement")
    ap.add_argument("--json", help="also write the raw results to this JSON file")
    ap.add_argument("--write", help="write the markdown table to this file")
    args = ap.parse_args(argv)
    try:
        import torch
        torch.set_num_threads(args.threads)
    except ImportError:
        print("PyTorch is not installed: comparing with the GEMM floor only", file=sys.stderr)
        args.sides = ",".join(s for s in args.sides.split(",") if s not in ("torch", "fused"))
    if "jax" in args.sides.split(",") and not jax_mlp.available():
        print(jax_mlp.SKIP, file=sys.stderr)
        args.sides = ",".join(s for s in args.sides.split(",") if s != "jax")
    sides = set(args.sides.split(","))
    results = []
    for name in args.workloads.split(","):
        r = bench_workload(name.strip(), args.device, args.reps, args.pause, sides)
        results.append(r)
        print(json.dumps({k: v for k, v in r.items() if k != "all_s"}), file=sys.stderr)
    overhead = None if args.no_overhead else op_overhead()
    memory = None
    if not args.no_memory and "W2" in args.workloads and not args.device.startswith("cuda"):
        memory = {s: peak_memory("W2", s, args.device, args.threads)
                  for s in ("polydl", "polydl NumPy only", "torch", "torch fused")
                  if s.startswith("polydl") or "torch" in sys.modules}
    info = versions()
    text = render(results, overhead, memory, info, args)
    print(text)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"results": results, "overhead": overhead, "memory": memory, "versions": info}, fh, indent=1)
    if args.write:
        from polydl.training.checkpoint import atomic_write

        atomic_write(args.write, text + "\n")


if __name__ == "__main__":
    main()
