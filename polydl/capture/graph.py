"""The CUDA form of a captured step: its replays as CUDA graphs.

On CUDA, a plan's replays are launches on fixed arrays, which is what a CUDA graph holds: the
first replay of a plan captures them (``cupy.cuda.Stream.begin_capture``) and every later step
launches the graphs instead of issuing the kernels one by one. CuPy refuses to call cuBLAS while a
stream captures, so a replay that multiplies matrices (``linear``'s products) runs as it is, and
the replays between two such products form one graph: the step becomes a few graph launches and
the products between them. Which replays capture is found by capturing each alone once (a trial
that is never launched). Each graph allocates its temporaries from a memory pool of its own, kept
with the graph and used by nothing else, so no later allocation can take memory a graph still
writes. A plan whose replays need the host (random draws) keeps launching kernel by kernel.
"""
from __future__ import annotations

from .. import backend

__all__ = ["maybe_capture", "Segments"]


class Segments:
    """The step as launches: each item a CUDA graph (with its pool) or a replay run as it is."""

    def __init__(self, items):
        self.items = items
        self.calls = tuple(item[0].launch if item[0] is not None else item[2] for item in items)

    @property
    def graphs(self) -> int:
        return sum(1 for item in self.items if item[0] is not None)

    def launch(self) -> None:
        for call in self.calls:
            call()


def _capture(cuda, stream, replays):
    """``replays`` captured on ``stream`` as one graph, their temporaries from a new pool."""
    pool = cuda.MemoryPool()
    with cuda.using_allocator(pool.malloc), stream:
        stream.begin_capture()
        try:
            for replay in replays:
                replay()
        finally:
            graph = stream.end_capture()
    return graph, pool


def _capturable(cuda, stream, replay) -> bool:
    """Whether ``replay`` captures (a trial graph, never launched)."""
    try:
        _capture(cuda, stream, (replay,))
    except Exception:  # noqa: BLE001 - cuBLAS refused, a host transfer, an invalidated capture
        return False
    return True


def segments(xp, replays) -> Segments | None:
    """The replays as graphs of the runs that capture and, between them, the replays that do
    not; None when none captures."""
    cuda = xp.cuda
    stream = cuda.Stream(non_blocking=True)
    runs, current = [], []
    for replay in replays:
        if _capturable(cuda, stream, replay):
            current.append(replay)
            continue
        if current:
            runs.append(current)
            current = []
        runs.append(replay)
    if current:
        runs.append(current)
    if not any(isinstance(r, list) for r in runs):
        return None
    items = []
    for run in runs:
        if isinstance(run, list):
            graph, pool = _capture(cuda, stream, run)
            items.append((graph, pool, None))
        else:
            items.append((None, None, run))
    return Segments(items)


def maybe_capture(plan) -> bool:
    """Capture ``plan``'s replays as CUDA graphs where they can be (then run this step by
    launching them: True); False where the plan runs its replays itself (host work, or no
    replay captures), with the reason in ``plan.host_why``."""
    if plan.host_why is not None:
        return False
    xp = backend.get_array_module(plan.x)
    try:
        steps = segments(xp, plan.forward + plan.backward)
    except Exception as exc:  # noqa: BLE001 - the device refused: the replays run kernel by kernel
        plan.host_why = f"its CUDA graphs could not be captured ({type(exc).__name__}: {exc})"
        return False
    if steps is None:
        plan.host_why = "no replay of it can be captured in a CUDA graph"
        return False
    plan.graph = steps
    steps.launch()
    return True
