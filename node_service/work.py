"""Simulated work: the workshop's recursive fib(n), one request at a time per worker process.

The lock makes a worker behave like the workshop's blocking node (requests queue, and the capacity
model can count on one /work per worker at a time), while the CPU part runs in a thread so the event
loop stays free for ``/health`` and ``/metrics``: Kubernetes probes must not kill a busy node.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

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
    """Runs /work requests of one worker process strictly one after another."""

    def __init__(self) -> None:
        # Created lazily: an asyncio.Lock must belong to the loop that serves requests.
        self._lock: asyncio.Lock | None = None
        self.waiting = 0

    async def run(self, load_factor: int, io_millis: int) -> WorkResult:
        """Wait for this worker's turn, then compute fib(load_factor) and wait ``io_millis``."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        arrived = time.perf_counter()
        self.waiting += 1
        try:
            async with self._lock:
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
