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

A slow node (``--service-factor F``, ``--extra-millis M``) does the same request's work slower,
as a slower machine with a slower dependency would: F times the CPU work, F times the I/O wait,
plus M ms of waiting, all while holding its turn. The CPU part is counted in calls of the
recursive fib, each the same few bytecodes, so CPU time follows the count: fib(n) is computed
floor(F) times, and the fraction left over is made of smaller fibs whose calls add up to that
fraction of fib(n)'s calls, to the nearest call (:func:`cpu_plan`). A fractional factor is so
as honest as a whole one; repeating fib(n) round(F) times, or computing fib(n + log_phi F),
would move the CPU time in steps of a whole fib(n) or of a factor 1.6.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

from node_service.permits import NodePermits

__all__ = ["QueueFull", "WorkResult", "WorkRunner", "compute", "cpu_plan", "fib", "fib_calls"]


def fib(n: int) -> int:
    """Recursive Fibonacci: deliberately exponential CPU work (fib(35) ~ 2.7 s on one core)."""
    if n < 2:
        return n
    return fib(n - 1) + fib(n - 2)


def fib_calls(n: int) -> int:
    """Calls the recursive ``fib(n)`` makes, its own included: 2 * fib(n + 1) - 1."""
    previous, current = 0, 1
    for _ in range(n):
        previous, current = current, previous + current
    return 2 * current - 1


def cpu_plan(n: int, factor: float) -> tuple[int, ...]:
    """The fib arguments of one /work whose CPU work is ``factor`` (>= 1) times fib(n)'s.

    ``n`` floor(factor) times, then, greedily from ``n`` down, smaller arguments whose calls add
    up to the fraction left of fib(n)'s calls (to the nearest call). Deterministic: the same
    request on the same node always does the same work. At most n + 1 parts follow the whole
    repetitions, so the loop around them costs nothing next to the calls.
    """
    if factor < 1:
        raise ValueError(f"a service factor is at least 1, not {factor}")
    whole = math.floor(factor)
    calls = [fib_calls(k) for k in range(n + 1)]
    rest = round((factor - whole) * calls[n])
    plan = [n] * whole
    k = n
    while rest > 0:  # calls[0] == 1, so it ends at exactly 0
        while calls[k] > rest:
            k -= 1
        plan.append(k)
        rest -= calls[k]
    return tuple(plan)


def compute(plan: Sequence[int]) -> int:
    """Compute the fibs of ``plan`` (as :func:`cpu_plan` makes it); the first one's value."""
    result = fib(plan[0])
    for k in plan[1:]:
        fib(k)
    return result


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
    fib_calls: int = 0  # the CPU work done: calls of the recursive fib


class WorkRunner:
    """Runs the /work requests of one worker process, each when the node has a free worker.

    ``service_factor`` and ``extra_millis`` make it a slow node's (see the module's docstring).
    """

    def __init__(
        self,
        permits: NodePermits | None = None,
        max_queue: int = 0,
        *,
        service_factor: float = 1.0,
        extra_millis: int = 0,
    ) -> None:
        if service_factor < 1:
            raise ValueError(f"a service factor is at least 1, not {service_factor}")
        self._permits = permits
        self.max_queue = max_queue
        self.service_factor = service_factor
        self.extra_millis = extra_millis
        # Plans by loadFactor: a handful of n, and the hot path then only looks one up.
        self._plans: dict[int, tuple[tuple[int, ...], int]] = {}
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

    def _plan(self, load_factor: int) -> tuple[tuple[int, ...], int]:
        known = self._plans.get(load_factor)
        if known is None:
            plan = cpu_plan(load_factor, self.service_factor)
            known = self._plans[load_factor] = (plan, sum(fib_calls(k) for k in plan))
        return known

    async def run(
        self, load_factor: int, io_millis: int, fault_millis: Callable[[], int] | None = None
    ) -> WorkResult:
        """Wait for a free worker, then compute fib(load_factor) and wait ``io_millis``.

        On a slow node, the CPU work and ``io_millis`` are ``service_factor`` times as much,
        and ``extra_millis`` is waited on top. ``fault_millis`` is asked once service starts how
        much longer to wait (the fault window's slow dependency). Every wait holds the turn, as
        a blocking call would. Raises :class:`QueueFull`, before waiting at all, when
        :meth:`full`.
        """
        if self.full():
            raise QueueFull(self.max_queue)
        plan, calls = self._plan(load_factor)
        wait_millis = io_millis * self.service_factor + self.extra_millis
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
                faulted = fault_millis() if fault_millis is not None else 0
                # One computation per process at a time: threads of one process share its GIL.
                async with self._cpu_lock:
                    started = time.perf_counter()
                    result = await asyncio.to_thread(compute, plan)
                if wait_millis or faulted:
                    await asyncio.sleep((wait_millis + faulted) / 1000)
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
            fault_millis=faulted,
            fib_calls=calls,
        )
