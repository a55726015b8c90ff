"""The capacity model: what a closed loop against replicas x workers should measure, and why.

A request costs ``service_ms`` of wall time when served alone, ``cpu_ms`` of it on a core (the
rest is waiting: ``ioMillis``). Each worker serves one request at a time. Three limits bound the
throughput X of a closed loop of C clients (the bottleneck law):

    X <= C / S                 (the clients: each has one request out at a time)
    X <= W * R / S             (the workers: replicas x workers requests in service at once)
    X <= cores / S_cpu         (the hardware: only `cores` requests compute at once)

and, by Little's law, each request spends C / X in the system. For pure CPU work this is the
workshop's min(C, W*R, cores) / S; for pure waiting the cores drop out: min(C, W*R) / S.

The SLO judges p99, not the mean. In a closed loop the unluckiest request waits for
ceil(C / (W*R)) rounds of service, and each round is stretched when more requests compute at
once than there are cores (they share them): that worst case is ``p99_ms``. Measured locally,
C=5 clients on W*R=4 workers give a p99 of 2 S while the mean is only 1.25 S.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Prediction", "predict"]


@dataclass(frozen=True)
class Prediction:
    """The model's answer for one configuration."""

    throughput_rps: float
    latency_ms: float
    bottleneck: str  # clients | workers | cores
    explanation: str
    service_ms: float
    cpu_ms: float
    cores: float
    capacity: int  # replicas x workers
    p99_ms: float = 0.0  # worst-case latency of the closed loop (what a p99 SLO sees)

    def to_status(self) -> dict[str, Any]:
        """The camelCase form stored in ``status.prediction`` and in local reports."""
        data = asdict(self)
        return {
            "throughputRps": round(data["throughput_rps"], 3),
            "latencyMillis": round(data["latency_ms"], 2),
            "bottleneck": data["bottleneck"],
            "explanation": data["explanation"],
            "serviceMillis": round(data["service_ms"], 2),
            "cpuMillis": round(data["cpu_ms"], 2),
            "cores": data["cores"],
            "capacity": data["capacity"],
            "p99Millis": round(data["p99_ms"], 2),
        }


def predict(
    *,
    service_ms: float,
    cpu_ms: float,
    workers: int,
    replicas: int,
    concurrency: int,
    cores: float,
) -> Prediction:
    """Predict closed-loop throughput and latency (see the module docstring for the model).

    ``service_ms`` is one request's time when served alone (a calibration run measures it),
    ``cpu_ms`` the part of it spent computing (equal to ``service_ms`` for pure CPU work, 0 for
    pure waiting), ``cores`` the CPU the fleet can use at once.
    """
    if service_ms <= 0:
        raise ValueError("service_ms must be positive")
    if min(workers, replicas, concurrency) < 1 or cores <= 0:
        raise ValueError("workers, replicas, concurrency and cores must be positive")
    cpu_ms = min(max(cpu_ms, 0.0), service_ms)
    capacity = workers * replicas
    limits = {
        "clients": concurrency / service_ms,
        "workers": capacity / service_ms,
        "cores": cores / cpu_ms if cpu_ms > 0 else float("inf"),
    }
    # Ties go to the earlier limit: "clients" means nothing queues anywhere.
    bottleneck = min(limits, key=lambda name: limits[name])
    per_ms = limits[bottleneck]
    throughput_rps = per_ms * 1000.0
    latency_ms = max(concurrency / per_ms, service_ms)
    in_service = min(concurrency, capacity)
    rounds = math.ceil(concurrency / capacity)
    shared = max(1.0, in_service / cores) if cpu_ms > 0 else 1.0
    p99_ms = max(rounds * (service_ms - cpu_ms + cpu_ms * shared), latency_ms)
    return Prediction(
        throughput_rps=throughput_rps,
        latency_ms=latency_ms,
        bottleneck=bottleneck,
        explanation=_explain(bottleneck, concurrency, workers, replicas, cores),
        service_ms=service_ms,
        cpu_ms=cpu_ms,
        cores=cores,
        capacity=capacity,
        p99_ms=p99_ms,
    )


def _explain(bottleneck: str, concurrency: int, workers: int, replicas: int, cores: float) -> str:
    capacity = workers * replicas
    fleet = (
        f"{replicas} x {workers} workers"
        if replicas > 1
        else f"{workers} worker" + ("s" if workers > 1 else "")
    )
    if bottleneck == "clients":
        return (
            f"{concurrency} clients never fill {fleet}: every request is served at once, "
            "so latency is the service time."
        )
    if bottleneck == "workers":
        waiting = concurrency - capacity
        return (
            f"{concurrency} clients for {fleet}: {waiting} requests wait in a queue at any moment; "
            "add workers (vertical) or replicas (horizontal)."
        )
    if replicas > 1:
        return (
            f"{fleet} on {cores:g} shared cores: only {cores:g} requests compute at once; "
            "replicas on one machine share its cores, so horizontal scaling needs more machines."
        )
    return (
        f"{fleet} on {cores:g} cores: only {cores:g} requests compute at once, so vertical "
        "scaling is capped by the hardware; more workers only share the same cores."
    )
