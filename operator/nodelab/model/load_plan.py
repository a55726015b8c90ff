"""The NodeLab -> ``LoadPlan`` mapping both runtimes use: the Job's flags and the local run.

What differs between the runtimes comes in as arguments: the targets (the headless Service's
DNS name, expanded to one per ready pod, or the local processes' URLs), how long the run is
(:class:`RunLength`: the spec's, or the local quick mode's shorter one), the SLO it is judged
by (the spec's, or quick mode's scaled one) and where the nodes' fault token is (the Secret
mounted into the Job's pod, or the local runtime's scratch file). Everything else comes from
the spec: ``spec.load.retry``, ``spec.load.balancing`` and ``spec.trigger`` included.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from loadgen.plan import LoadPlan, Trigger
from nodelab.model.spec import NodeLab, TriggerSpec

__all__ = ["CALIBRATION_REQUESTS", "RunLength", "load_plan", "load_trigger"]

# Sequential requests that calibrate the service time before a run, in either runtime; the
# load generator reports their median, so one cold or preempted request does not move it.
CALIBRATION_REQUESTS = 5


@dataclass(frozen=True)
class RunLength:
    """When a run stops: after ``requests`` requests, or after ``duration_s`` seconds.

    ``time_scale`` is how long this run's clock is against the spec's (quick mode's shorter
    storm run: ``duration_s`` over ``spec.load.durationSeconds``); the trigger's window is
    scaled by it too, so it opens and closes at the same fractions of the run.
    """

    requests: int | None
    duration_s: float | None
    time_scale: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.time_scale <= 1:
            raise ValueError(f"time_scale must be in (0, 1], got {self.time_scale!r}")

    @classmethod
    def of(cls, lab: NodeLab) -> RunLength:
        """The spec's own: ``spec.load.requests`` or ``spec.load.durationSeconds``."""
        load = lab.spec.load
        duration = float(load.duration_seconds) if load.duration_seconds is not None else None
        return cls(requests=load.requests, duration_s=duration)


def load_trigger(trigger: TriggerSpec | None, time_scale: float = 1.0) -> Trigger | None:
    """``spec.trigger`` as the load generator's :class:`loadgen.plan.Trigger` (its window
    times ``time_scale``); None without one. ``status`` goes with mode fail only."""
    if trigger is None:
        return None
    slow = trigger.mode == "slow"
    return Trigger(
        start_s=round(trigger.start_seconds * time_scale, 3),
        duration_s=round(trigger.duration_seconds * time_scale, 3),
        mode=trigger.mode,
        extra_millis=trigger.extra_millis if slow else None,
        status=None if slow else trigger.status,
    )


def load_plan(
    lab: NodeLab,
    *,
    targets: Sequence[str],
    calibrate: int,
    expand_dns: bool = False,
    length: RunLength | None = None,
    slo_p99_ms: float | None = None,
    generation: int | None = None,
    fault_token_file: str | None = None,
) -> LoadPlan:
    """The load generator's plan for ``lab``: its load spec against ``targets``.

    ``calibrate`` sequential requests go first (the capacity model's input); ``length`` and
    ``slo_p99_ms`` default to the spec's, ``generation`` to the lab's. New connections per
    request, as the workshop's client makes them. The retry policy, the balancing strategy
    and the trigger are the spec's; ``fault_token_file`` is the path of the nodes' fault
    token, which a lab with a trigger needs (the plan refuses a trigger without it).
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
        balancing=load.balancing,
        retry=load.retry,
        trigger=load_trigger(lab.spec.trigger, length.time_scale),
        fault_token_file=fault_token_file,
    )
