"""Calibration: a few sequential requests, alone on the fleet, give the service time S.

It runs through the load generator itself (one client, concurrency 1), exactly as the Job's
``--calibrate`` does, so the model's S and the run's latencies are measured the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from loadgen import report as loadgen_report
from loadgen import runner
from loadgen.plan import LoadPlan

__all__ = ["Calibration", "calibrate"]


@dataclass(frozen=True)
class Calibration:
    """One request's time when it has the fleet to itself."""

    requests: int
    latency_ms: float  # what a client sees: the model's service time S
    service_ms: float  # inside the worker (the work and its wait), without HTTP overhead

    def to_report(self) -> dict[str, Any]:
        """The ``calibration`` block of the load report (docs/contracts.md)."""
        return {
            "requests": self.requests,
            "serviceMillis": round(self.service_ms, 2),
            "latencyMillis": round(self.latency_ms, 2),
        }


def calibrate(targets: Sequence[str], *, path: str, requests: int, timeout_s: float) -> Calibration:
    """Send ``requests`` requests one after another and return their mean times.

    One unmeasured request per target goes first: a fresh worker's first answer also pays
    for connection set-up and lazy imports, which no later request does.
    Raises ``RuntimeError`` when no request succeeded (the fleet is not serving).
    """
    warm_up = LoadPlan(
        targets=tuple(targets), path=path, concurrency=1, requests=len(targets), timeout_s=timeout_s
    )
    runner.run_one_level(warm_up)
    plan = LoadPlan(
        targets=tuple(targets),
        path=path,
        concurrency=1,
        requests=requests,
        timeout_s=timeout_s,
        fresh_connections=True,  # as the load that follows, and as the Job calibrates
    )
    entry = loadgen_report.calibration_entry(runner.run_one_level(plan))
    latency = entry.get("latencyMillis")
    if not latency:
        raise RuntimeError(f"calibration: none of {requests} requests to {path} succeeded")
    service = entry.get("serviceMillis")
    # /health answers carry no serviceMillis: there the whole request is the service.
    return Calibration(
        requests=int(entry.get("requests") or requests),
        latency_ms=float(latency),
        service_ms=float(service) if service is not None else float(latency),
    )
