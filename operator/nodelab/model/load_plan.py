"""The NodeLab -> ``LoadPlan`` mapping both runtimes use: the Job's flags and the local run.

What differs between the runtimes comes in as arguments: the targets (the headless Service's
DNS name, expanded to one per ready pod, or the local processes' URLs), how long the run is
(:class:`RunLength`: the spec's, or the local quick mode's shorter one) and the SLO it is judged
by (the spec's, or quick mode's scaled one).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from loadgen.plan import LoadPlan
from nodelab.model.spec import NodeLab

__all__ = ["CALIBRATION_REQUESTS", "RunLength", "load_plan"]

# Sequential requests that calibrate the service time before a run, in either runtime; the
# load generator reports their median, so one cold or preempted request does not move it.
CALIBRATION_REQUESTS = 5


@dataclass(frozen=True)
class RunLength:
    """When a run stops: after ``requests`` requests, or after ``duration_s`` seconds."""

    requests: int | None
    duration_s: float | None

    @classmethod
    def of(cls, lab: NodeLab) -> RunLength:
        """The spec's own: ``spec.load.requests`` or ``spec.load.durationSeconds``."""
        load = lab.spec.load
        duration = float(load.duration_seconds) if load.duration_seconds is not None else None
        return cls(requests=load.requests, duration_s=duration)


def load_plan(
    lab: NodeLab,
    *,
    targets: Sequence[str],
    calibrate: int,
    expand_dns: bool = False,
    length: RunLength | None = None,
    slo_p99_ms: float | None = None,
    generation: int | None = None,
) -> LoadPlan:
    """The load generator's plan for ``lab``: its load spec against ``targets``.

    ``calibrate`` sequential requests go first (the capacity model's input); ``length`` and
    ``slo_p99_ms`` default to the spec's, ``generation`` to the lab's. New connections per
    request, as the workshop's client makes them.
    """
    load = lab.spec.load
    length = length or RunLength.of(lab)
    processes = load.processes
    if length.requests is not None:
        processes = min(processes, length.requests)  # a shortened run keeps a valid plan
    return LoadPlan(
        targets=tuple(targets),
        path=load.path,
        concurrency=load.concurrency,
        requests=length.requests,
        duration_s=length.duration_s,
        rate=load.rate,
        timeout_s=float(load.timeout_seconds),
        processes=processes,
        slo_p99_ms=float(lab.spec.slo.p99_millis if slo_p99_ms is None else slo_p99_ms),
        sweep=load.sweep or None,
        calibrate=calibrate,
        generation=lab.generation if generation is None else generation,
        expand_dns=expand_dns,
        fresh_connections=True,
    )
