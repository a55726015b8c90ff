"""Simulated work: the workshop's recursive fib(n), at most one request per worker at a time.

A node of W workers behaves like the workshop's blocking node: W requests in service at once,
the rest queue (first come, first served), so the capacity model can count on it. With one
worker a lock does it; with several, the node's permit desk (:mod:`node_service.permits`), so
a request waits only while all W are busy, whichever worker's socket it came in on. The CPU
part runs in a thread so the event loop stays free for ``/health`` and ``/metrics``: Kubernetes
probes must not kill a busy node.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from node_service.permits import NodePermits

__all__ = ["WorkResult", "WorkRunner", "fib"]


def fib(n: int) -> int:
    """Recursive Fibonacci: deliberately exponential CPU work (fib(35) ~ 2.7 s on one core)."""
    if n < 2:
        return n
    return fib(n - 1) + fib(n - 2)


@dataclass(frozen=True)
class WorkResult:
    """One finished /work: what was computed and where the time went."""

    load_factor: int
    io_millis: int
    result: int
    queue_millis: float
    service_millis: float


class WorkRunner:
    """Runs the /work requests of one worker process, each when the node has a free worker."""

    def __init__(self, permits: NodePermits | None = None) -> None:
        self._permits = permits
        # Created lazily: an asyncio.Lock must belong to the loop that serves requests.
        self._turn_lock: asyncio.Lock | None = None
        self._cpu_lock: asyncio.Lock | None = None
        self.waiting = 0

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

    async def run(self, load_factor: int, io_millis: int) -> WorkResult:
        """Wait for a free worker, then compute fib(load_factor) and wait ``io_millis``."""
        if self._cpu_lock is None:
            self._cpu_lock = asyncio.Lock()
        arrived = time.perf_counter()
        self.waiting += 1
        try:
            async with self._turn():
                # One computation per process at a time: threads of one process share its GIL.
                async with self._cpu_lock:
                    started = time.perf_counter()
                    result = await asyncio.to_thread(fib, load_factor)
                if io_millis:
                    await asyncio.sleep(io_millis / 1000)
                finished = time.perf_counter()
        finally:
            self.waiting -= 1
        return WorkResult(
            load_factor=load_factor,
            io_millis=io_millis,
            result=result,
            queue_millis=round((started - arrived) * 1000, 2),
            service_millis=round((finished - started) * 1000, 2),
        )
