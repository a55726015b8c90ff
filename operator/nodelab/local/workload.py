"""What the local fleet runs for a phase: the file's figures, or scaled for quick and I/O modes.

Quick mode lowers the load factor (fib(35) -> fib(27): ~1/47 of the work) and caps the request
count, and the SLO is scaled by the same factor as the service time, so a verdict keeps its
meaning: p99 past the SLO means requests waited as many service times as in the full run.
I/O mode replaces fib(n) by a wait of the same length (measured here), so each worker still holds
one request at a time but the cores no longer limit the fleet.

A storm run (phase 5: an open loop by duration with a trigger) keeps its rate and its work:
quick mode only shortens it, to at most :data:`QUICK_MAX_STORM_DURATION_S`, and scales the
trigger's window by the same factor (``time_scale``), so the fault opens and closes at the same
fractions of the run and the run still has seconds after it to recover in. The timeout is not
scaled: it is what the storm is made of (it is whole seconds in the spec).
"""

from __future__ import annotations

import functools
import statistics
import time
from dataclasses import dataclass

from nodelab.local.settings import Mode
from nodelab.model import spec as nodelab_spec

__all__ = [
    "QUICK_LOAD_FACTOR",
    "QUICK_MAX_DURATION_S",
    "QUICK_MAX_REQUESTS",
    "QUICK_MAX_STORM_DURATION_S",
    "Workload",
    "fib_calls",
    "fib_millis",
    "plan_workload",
    "slo_factor",
]

QUICK_LOAD_FACTOR = 27
QUICK_MAX_REQUESTS = 40
QUICK_MAX_DURATION_S = 5
# A storm needs seconds before, during and after its trigger (recovery is 3 good seconds).
QUICK_MAX_STORM_DURATION_S = 10
# fib(n) up to this is cheap enough to time here; larger n is extrapolated by the call count.
_TIMED_LOAD_FACTOR_MAX = 27


def fib_calls(n: int) -> int:
    """Calls the recursive fib(n) makes: 2 * fib(n + 1) - 1 (the work is proportional to it)."""
    a, b = 0, 1
    for _ in range(n + 1):
        a, b = b, a + b
    return 2 * a - 1


def _fib(n: int) -> int:
    return n if n < 2 else _fib(n - 1) + _fib(n - 2)


@functools.cache
def fib_millis(load_factor: int) -> float:
    """Milliseconds recursive fib(load_factor) takes on one core of this machine.

    Timed here (median of 3) up to fib(27); beyond, extrapolated by the exact call count so
    that ``--mode io`` of fib(35) does not cost three times 1-3 s of CPU to find out.
    """
    if load_factor <= 0:
        return 0.0
    timed = min(load_factor, _TIMED_LOAD_FACTOR_MAX)
    samples = []
    for _ in range(3):
        started = time.perf_counter()
        _fib(timed)
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples) * fib_calls(load_factor) / fib_calls(timed)


@dataclass(frozen=True)
class Workload:
    """The node work and request count a local run uses, and what was changed and why."""

    load_factor: int
    io_millis: int
    requests: int | None
    duration_s: float | None
    file_load_factor: int
    file_io_millis: int
    work_load_factor: int  # the fib(n) one request's work stands for (before io mode)
    quick: bool
    mode: Mode
    notes: tuple[str, ...] = ()
    time_scale: float = 1.0  # the run's clock over the spec's: the trigger's window scales by it

    @property
    def work_ratio(self) -> float:
        """The file's CPU work per request over the run's (1 unless quick mode lowered it)."""
        return fib_calls(self.file_load_factor) / fib_calls(self.work_load_factor)


def plan_workload(lab: nodelab_spec.NodeLab, *, quick: bool, mode: Mode) -> Workload:
    """Derive the local run's work from a validated phase (see the module docstring)."""
    node, load = lab.spec.node, lab.spec.load
    notes: list[str] = []
    time_scale = 1.0
    load_factor = node.load_factor
    requests, duration = load.requests, load.duration_seconds
    if quick:
        if load_factor > QUICK_LOAD_FACTOR:
            notes.append(
                f"quick: loadFactor {load_factor} -> {QUICK_LOAD_FACTOR} "
                f"(1/{fib_calls(load_factor) / fib_calls(QUICK_LOAD_FACTOR):.0f} of the work "
                "per request); the SLO is scaled by the measured service time"
            )
            load_factor = QUICK_LOAD_FACTOR
        if requests is not None and requests > QUICK_MAX_REQUESTS:
            notes.append(f"quick: requests {requests} -> {QUICK_MAX_REQUESTS}")
            requests = QUICK_MAX_REQUESTS
        trigger = lab.spec.trigger
        cap = QUICK_MAX_DURATION_S if trigger is None else QUICK_MAX_STORM_DURATION_S
        if duration is not None and duration > cap:
            time_scale = cap / duration
            note = f"quick: durationSeconds {duration} -> {cap}"
            if trigger is not None:
                note += (
                    f"; the trigger's window scales with it (x{time_scale:.3g}): "
                    f"{trigger.start_seconds:g}-{trigger.end_seconds:g} s -> "
                    f"{trigger.start_seconds * time_scale:.3g}-"
                    f"{trigger.end_seconds * time_scale:.3g} s; rate and timeout unchanged"
                )
            notes.append(note)
            duration = cap
    work_load_factor = load_factor
    io_millis = node.io_millis
    if mode == "io" and load_factor > 0:
        wait = round(fib_millis(load_factor))
        notes.append(
            f"io mode: fib({load_factor}) ({wait} ms on one core here) becomes a {wait} ms wait; "
            "each worker still serves one request at a time, so cores no longer limit capacity"
        )
        io_millis += wait
        load_factor = 0
    return Workload(
        load_factor=load_factor,
        io_millis=io_millis,
        requests=requests,
        duration_s=float(duration) if duration is not None else None,
        file_load_factor=node.load_factor,
        file_io_millis=node.io_millis,
        work_load_factor=work_load_factor,
        quick=quick,
        mode=mode,
        notes=tuple(notes),
        time_scale=time_scale if lab.spec.trigger is not None else 1.0,
    )


def slo_factor(workload: Workload, *, latency_ms: float, service_ms: float) -> float:
    """How much shorter a request is here than in the phase file's own run (1.0 when full).

    ``latency_ms`` (client side) and ``service_ms`` (inside the worker) come from calibration.
    The part of the service time that is the work scales by :attr:`Workload.work_ratio`; the
    request overhead (HTTP, scheduling: latency - service) and the file's own ioMillis do not.
    """
    ratio = workload.work_ratio
    if ratio <= 1.0:
        return 1.0
    overhead = max(latency_ms - service_ms, 0.0)
    work = max(service_ms - workload.file_io_millis, 0.0)
    full = overhead + workload.file_io_millis + work * ratio
    return min(latency_ms / full, 1.0) if full > 0 else 1.0
