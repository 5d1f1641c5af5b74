"""The hub: the owner's mailbox on the cluster, one small Ray actor placed on the owner's node.

A trial's task :meth:`~TrialHub.put` s each epoch's record there as soon as the epoch ends, and
the owner :meth:`~TrialHub.drain` s the hub in one call per poll, for all its trials at once.
The hub also holds the stop flags (a pruned trial), the owner's answers to the epochs of tasks
with ``decide`` and the interrupt flag (Ctrl-C of the owner); a thread of each task waits for
them in a long call (:meth:`~TrialHub.control`, :meth:`~TrialHub.decision`), which returns the
moment one is set. One actor rather than a queue per trial: the owner asks one actor, not N,
and stop flags need a way back anyway.
"""
from __future__ import annotations

__all__ = ["TrialHub", "CONTROL_WAIT"]

#: how long a trial's watcher waits in one call for a stop or an interrupt
CONTROL_WAIT = 2.0


class TrialHub:
    """The owner's mailbox on the cluster (an asyncio actor): trials :meth:`put` events, the
    owner :meth:`drain` s them and sets the flags that trials wait for with :meth:`control`."""

    def __init__(self):
        self.events: list[dict] = []
        self.stops: set[int] = set()
        self.past: dict[int, int] = {}   # trial -> the last epoch the owner said to go on past
        self.interrupted = False
        self._changed = None

    def _flag(self):
        import asyncio

        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    def _wake(self) -> None:
        import asyncio

        self._flag().set()  # wakes the trials waiting in control(); later ones wait on a new event
        self._changed = asyncio.Event()

    def _state(self, number: int) -> str | None:
        if self.interrupted:
            return "interrupt"
        return "stop" if int(number) in self.stops else None

    async def put(self, event: dict) -> bool:
        self.events.append(event)
        return True

    async def drain(self) -> list[dict]:
        out, self.events = self.events, []
        return out

    async def stop(self, number: int) -> None:
        self.stops.add(int(number))
        self._wake()

    async def proceed(self, number: int, epoch: int) -> None:
        self.past[int(number)] = max(int(epoch), self.past.get(int(number), 0))
        self._wake()

    async def forget(self, number: int) -> None:
        self.stops.discard(int(number))
        self.past.pop(int(number), None)

    async def interrupt(self) -> None:
        self.interrupted = True
        self._wake()

    async def decision(self, number: int, epoch: int, wait: float = 0.0) -> str | None:
        """``"interrupt"``, ``"stop"`` or ``"go"`` (past ``epoch``) for trial ``number``, as soon as
        the owner said one, or None after ``wait`` seconds."""
        import asyncio

        def said():
            return self._state(number) or ("go" if self.past.get(int(number), 0) >= int(epoch) else None)

        state = said()
        deadline = asyncio.get_running_loop().time() + wait
        while state is None:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                break
            try:
                await asyncio.wait_for(self._flag().wait(), timeout=left)
            except asyncio.TimeoutError:
                pass
            state = said()
        return state

    async def control(self, number: int, wait: float = 0.0) -> str | None:
        """``"interrupt"``, ``"stop"`` or None for trial ``number``, as soon as it is set or
        after ``wait`` seconds."""
        import asyncio

        state = self._state(number)
        if state is None and wait > 0:
            try:
                await asyncio.wait_for(self._flag().wait(), timeout=wait)
            except asyncio.TimeoutError:
                pass
            state = self._state(number)
        return state
