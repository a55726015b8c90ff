"""Simulated work: the workshop's recursive fib(n), at most one request per worker at a time.

A node of W workers behaves like the workshop's blocking node: W requests in service at once,
the rest queue (first come, first served), so the capacity model can count on it. With one
worker a lock does it; with several, the node's permit desk (:mod:`node_service.permits`), so
a request waits only while all W are busy, whichever worker's socket it came in on. The CPU
part runs in a thread so the event loop stays free for ``/health`` and ``/metrics``: Kubernetes
probes must not kill a busy node.

A worker may bound how many of its requests wait for a turn (``max_queue``): past it a request
is refused at once (:class:`QueueFull`) instead of joining a queue it would time out in. The
bound is per worker, on the requests that worker accepted, so it costs no round trip to the
permit desk; a node then queues at most ``workers * max_queue``, spread as the kernel spreads
its connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from node_service.permits import NodePermits

__all__ = ["QueueFull", "WorkResult", "WorkRunner", "fib"]


def fib(n: int) -> int:
    """Recursive Fibonacci: deliberately exponential CPU work (fib(35) ~ 2.7 s on one core)."""
    if n < 2:
        return n
    return fib(n - 1) + fib(n - 2)


class QueueFull(Exception):
    """The worker already has ``max_queue`` requests waiting for a turn: this one is shed."""

    def __init__(self, max_queue: int) -> None:
        super().__init__(f"{max_queue} /work requests already wait in this worker")
        self.max_queue = max_queue


@dataclass(frozen=True)
class WorkResult:
    """One finished /work: what was computed and where the time went."""

    load_factor: int
    io_millis: int
    result: int
    queue_millis: float
    service_millis: float
    fault_millis: int = 0


class WorkRunner:
    """Runs the /work requests of one worker process, each when the node has a free worker."""

    def __init__(self, permits: NodePermits | None = None, max_queue: int = 0) -> None:
        self._permits = permits
        self.max_queue = max_queue
        # Created lazily: an asyncio.Lock must belong to the loop that serves requests.
        self._turn_lock: asyncio.Lock | None = None
        self._cpu_lock: asyncio.Lock | None = None
        self.waiting = 0  # waiting for a turn or in service
        self.queued = 0  # waiting for a turn only

    @contextlib.asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        if self._permits is not None:
            async with self._permits.hold():
                yield
            return
        if self._turn_lock is None:
            self._turn_lock = asyncio.Lock()
        async with self._turn_lock:
            yield

    def full(self) -> bool:
        """Whether a request arriving now would be shed."""
        return self.max_queue > 0 and self.queued >= self.max_queue

    async def run(
        self, load_factor: int, io_millis: int, extra_millis: Callable[[], int] | None = None
    ) -> WorkResult:
        """Wait for a free worker, then compute fib(load_factor) and wait ``io_millis``.

        ``extra_millis`` is asked once service starts how much longer to wait (a slow
        dependency): the wait holds the turn, as a blocking call would. Raises
        :class:`QueueFull`, before waiting at all, when :meth:`full`.
        """
        if self.full():
            raise QueueFull(self.max_queue)
        if self._cpu_lock is None:
            self._cpu_lock = asyncio.Lock()
        arrived = time.perf_counter()
        self.waiting += 1
        self.queued += 1
        queued = True
        try:
            async with self._turn():
                self.queued -= 1
                queued = False
                fault_millis = extra_millis() if extra_millis is not None else 0
                # One computation per process at a time: threads of one process share its GIL.
                async with self._cpu_lock:
                    started = time.perf_counter()
                    result = await asyncio.to_thread(fib, load_factor)
                if io_millis or fault_millis:
                    await asyncio.sleep((io_millis + fault_millis) / 1000)
                finished = time.perf_counter()
        finally:
            self.waiting -= 1
            if queued:
                self.queued -= 1
        return WorkResult(
            load_factor=load_factor,
            io_millis=io_millis,
            result=result,
            queue_millis=round((started - arrived) * 1000, 2),
            service_millis=round((finished - started) * 1000, 2),
            fault_millis=fault_millis,
        )
