"""Population benchmarks: P models of one shape trained as one batched computation, against the
same P models trained one after the other, and against JAX's ``jit(vmap(...))`` of the same
model with a ``lax.scan`` over the epoch's mini-batches (``jax_mlp.py``; compile time measured
apart), in one run.

W4: 32 members of W1 (64-32-10 BatchNorm MLP, Adam, batch 32, 4,000 samples) with learning rates
log-uniform in [1e-4, 1e-1], β1 uniform in [0.8, 0.95] and a seed each. W5: 8 members of W2
(784-256-256-10, batch 128, 20,000 samples). The scaling rows train P = 1, 8, 32, 128 members
of W1 and measure the epoch time and the peak memory (the growth of the process's peak RSS over
two epochs, in a fresh process).

    python benchmarks/population.py                    # W4, W5, scaling, JAX if installed
    python benchmarks/population.py --only W4 --reps 7
    python benchmarks/population.py --device cuda --write docs/gpu-population.md

JAX is needed only here (pip install jax jaxlib); it is never a dependency of polydl, and without
it the JAX column is skipped with a message.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import bench_threads

bench_threads.cap()

import jax_mlp  # noqa: E402
import numpy as np  # noqa: E402

WORKLOADS = {"W1": ((64, 32, 10), 32, 4000), "W2": ((784, 256, 256, 10), 128, 20000)}


def make_data(sizes, samples, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((samples, sizes[0]), dtype=np.float32),
            rng.integers(0, sizes[-1], samples).astype(np.int64))


def member_hyper(P, seed=0):
    """The members' learning rates (log-uniform in [1e-4, 1e-1]), β1 (uniform in [0.8, 0.95]), seeds."""
    rng = np.random.default_rng(seed)
    return (10 ** rng.uniform(-4, -1, P)).tolist(), rng.uniform(0.8, 0.95, P).tolist(), list(range(P))


# ---------------------------------------------------------------------------- polydl
class PolydlPopulation:
    """One population of P members as one batched computation."""

    def __init__(self, sizes, batch, X, y, P, device):
        import polydl
        from polydl import backend, losses, nn, optim
        from polydl.capture import TrainStep

        self.polydl = polydl
        lrs, betas, _ = member_hyper(P)
        polydl.manual_seed(0)
        self.model = nn.mlp(sizes, population=P).to(device)
        self.opt = optim.Adam(self.model.parameters(), lr=lrs, beta1=betas)
        self.loss = losses.get("softmax_cross_entropy")
        self.X, self.y = backend.to_device(X, device), backend.to_device(y, device)
        self.batch = batch
        self.xp = backend.get_array_module(self.X)
        self.step = TrainStep(self.model, self.loss, self.opt)  # each step captured, as training runs it

    def epoch(self):
        step, X, y, b = self.step, self.X, self.y, self.batch
        for i in range(0, len(y) - b + 1, b):
            step(X[i:i + b], y[i:i + b])
        if self.xp is not np:
            self.xp.cuda.get_current_stream().synchronize()


class PolydlSequential:
    """The same P members as P separate models, trained one after the other."""

    def __init__(self, sizes, batch, X, y, P, device):
        import polydl
        from polydl import backend, losses, nn, optim
        from polydl.capture import TrainStep

        self.polydl = polydl
        lrs, betas, seeds = member_hyper(P)
        self.members = []
        for lr, beta, seed in zip(lrs, betas, seeds):
            polydl.manual_seed(seed)
            model = nn.mlp(sizes).to(device)
            self.members.append((model, optim.Adam(model.parameters(), lr=lr, beta1=beta)))
        self.loss = losses.get("softmax_cross_entropy")
        self.steps = [TrainStep(model, self.loss, opt) for model, opt in self.members]
        self.X, self.y = backend.to_device(X, device), backend.to_device(y, device)
        self.batch = batch
        self.xp = backend.get_array_module(self.X)

    def epoch(self):
        X, y, b = self.X, self.y, self.batch
        for step in self.steps:
            for i in range(0, len(y) - b + 1, b):
                step(X[i:i + b], y[i:i + b])
        if self.xp is not np:
            self.xp.cuda.get_current_stream().synchronize()


# ---------------------------------------------------------------------------- JAX
class JaxPopulation(jax_mlp.JaxMLP):
    """The same members in JAX (``jax_mlp``): ``jit(vmap(epoch))`` over them, ``lax.scan`` over the
    epoch's mini-batches, from the weights the polydl population starts with."""

    def __init__(self, sizes, batch, X, y, P, device):
        import polydl
        from polydl import nn

        lrs, betas, _ = member_hyper(P)
        polydl.manual_seed(0)
        super().__init__(jax_mlp.initial_params(nn.mlp(sizes, population=P)), X, y, batch, lrs, betas)


# ---------------------------------------------------------------------------- driver
def timed(sides, reps, pause=0.5):
    for s in sides.values():  # warm-up: allocations, compiled kernels
        s.epoch()
        time.sleep(pause)
    times = {k: [] for k in sides}
    names = list(sides)
    for r in range(reps):
        for k in names if r % 2 == 0 else reversed(names):
            t0 = time.perf_counter()
            sides[k].epoch()
            times[k].append(time.perf_counter() - t0)
            time.sleep(pause)
    return {k: statistics.median(v) for k, v in times.items()}


def bench(workload, P, device, reps, with_jax):
    sizes, batch, samples = WORKLOADS[workload]
    X, y = make_data(sizes, samples)
    sides = {"population": PolydlPopulation(sizes, batch, X, y, P, device),
             "sequential": PolydlSequential(sizes, batch, X, y, P, device)}
    if with_jax:
        sides["jax"] = JaxPopulation(sizes, batch, X, y, P, device)
    out = timed(sides, reps)
    if with_jax:
        out["jax_compile_s"] = sides["jax"].compile_s
    return out


def peak_memory(P, device):
    """Peak RSS growth (MiB) over two population epochs of W1 with P members, in a fresh process."""
    code = f"""
import sys
sys.argv = ['x']
sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})
import population as B
sizes, batch, samples = B.WORKLOADS['W1']
X, y = B.make_data(sizes, samples)
B.PolydlPopulation((8, 8, 2), 4, X[:16, :8], y[:16] % 2, 2, {device!r}).epoch()  # imports, kernels
side = B.PolydlPopulation(sizes, batch, X, y, {P}, {device!r})
def status(key):
    for line in open('/proc/self/status'):
        if line.startswith(key): return int(line.split()[1])
base = status('VmRSS')
side.epoch(); side.epoch()
print((status('VmHWM') - base) / 1024)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", choices=["W4", "W5", "scaling"], default=None)
    ap.add_argument("--no-jax", action="store_true")
    ap.add_argument("--json")
    ap.add_argument("--write")
    args = ap.parse_args(argv)
    with_jax = not args.no_jax and not args.device.startswith("cuda") and jax_mlp.available()
    if not args.no_jax and not jax_mlp.available():
        print(jax_mlp.SKIP, file=sys.stderr)
    results, lines = {}, []
    if args.only in (None, "W4"):
        r = bench("W1", 32, args.device, args.reps, with_jax)
        results["W4"] = r
        lines += ["| W4: 32 members of W1 | " + _row(r, 32) + " |"]
    if args.only in (None, "W5"):
        r = bench("W2", 8, args.device, max(3, args.reps // 2), with_jax)
        results["W5"] = r
        lines += ["| W5: 8 members of W2 | " + _row(r, 8) + " |"]
    print(json.dumps(results), file=sys.stderr)
    text = ["| workload | population (s) | sequential (s) | sequential / population | JAX jit(vmap) (s) | "
            "population / JAX | JAX compile (s) |", "|---|---|---|---|---|---|---|", *lines]
    if any("jax" in r for r in results.values()):
        text += ["", "\"population / JAX\" is the population's time over JAX's (below 1 the population is faster); "
                 "JAX's compile time (trace, lower, compile of the whole epoch, once) is not in its time."]
    if args.only in (None, "scaling"):
        scaling = {}
        for P in (1, 8, 32, 128):
            sizes, batch, samples = WORKLOADS["W1"]
            X, y = make_data(sizes, samples)
            t = timed({"population": PolydlPopulation(sizes, batch, X, y, P, args.device)}, args.reps)["population"]
            mem = peak_memory(P, args.device) if not args.device.startswith("cuda") else None
            scaling[P] = {"epoch_s": t, "peak_mib": mem}
            print(json.dumps({P: scaling[P]}), file=sys.stderr)
        results["scaling"] = scaling
        text += ["", "| members P (W1) | epoch (s) | per member (ms) | peak memory growth (MiB) |", "|---|---|---|---|"]
        for P, v in scaling.items():
            mem = "—" if v["peak_mib"] is None else f"{v['peak_mib']:.1f}"
            text.append(f"| {P} | {v['epoch_s']:.4f} | {v['epoch_s'] / P * 1e3:.2f} | {mem} |")
    out = "\n".join(text)
    print(out)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)
    if args.write:
        from polydl.training.checkpoint import atomic_write

        atomic_write(args.write, out + "\n")


def _row(r, P):
    pop, seq = r["population"], r["sequential"]
    jax_t = r.get("jax")
    j = "—" if jax_t is None else f"{jax_t:.4f}"
    jr = "—" if jax_t is None else f"{pop / jax_t:.2f}×"
    c = "—" if jax_t is None else f"{r['jax_compile_s']:.2f}"
    return f"{pop:.4f} | {seq:.4f} | {seq / pop:.2f}× | {j} | {jr} | {c}"


if __name__ == "__main__":
    main()
