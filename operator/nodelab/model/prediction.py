"""``status.prediction``: the capacity model fed with a run's calibration, for either runtime.

The only place that turns a calibration into the capacity model's inputs. What differs between
the runtimes is where the fleet runs (:class:`Placement`): in a cluster the node pods have
``replicas x pod CPU`` cores of their own; locally every replica and the load generator share
this machine's cores.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nodelab.model import capacity
from nodelab.model.spec import NodeLab

__all__ = [
    "Calibration",
    "Placement",
    "breaking_concurrency",
    "predict",
    "prediction",
    "run_requests",
    "sweep_predictions",
]


@dataclass(frozen=True)
class Calibration:
    """One request's time when it has the fleet to itself (the report's ``calibration``)."""

    requests: int
    latency_ms: float  # what a client sees: the model's service time S
    service_ms: float  # inside the worker (the work and its wait), without HTTP overhead

    @classmethod
    def from_report(cls, entry: Mapping[str, Any] | None) -> Calibration | None:
        """The calibration of a load report's ``calibration`` block, or None without one.

        Answers without a service time (``/health``) count the whole request as service.
        """
        entry = entry or {}
        latency = entry.get("latencyMillis")
        if not latency or float(latency) <= 0:
            return None
        service = entry.get("serviceMillis")
        return cls(
            requests=int(entry.get("requests") or 0),
            latency_ms=float(latency),
            service_ms=float(service) if service is not None else float(latency),
        )


@dataclass(frozen=True)
class Placement:
    """Where the fleet runs: the cores its requests compute on, and whether the replicas (and
    the load generator) share them or each replica has ``cores / replicas`` of its own."""

    cores: float
    shared: bool

    @classmethod
    def pods(cls, lab: NodeLab) -> Placement:
        """The cluster's: ``replicas`` pods, each with its own CPU limit."""
        node = lab.spec.node
        return cls(cores=node.replicas * node.pod_cpu_millicores / 1000, shared=False)

    @classmethod
    def one_machine(cls, cores: int) -> Placement:
        """The local runtime's: every replica and the load generator on ``cores`` cores."""
        return cls(cores=float(cores), shared=True)


def run_requests(last_run: Mapping[str, Any]) -> int | None:
    """Requests one run (one sweep level) sends, which bounds its p99; None for a closed loop
    that runs for a duration."""
    scheduled = last_run.get("scheduled")
    return int(scheduled) if scheduled else None


def predict(
    calibration: Calibration,
    lab: NodeLab,
    where: Placement,
    *,
    concurrency: int,
    requests: int | None,
    io_millis: int | None = None,
) -> capacity.Prediction:
    """The capacity model for ``lab``'s fleet placed ``where``, from the calibrated times.

    Everything in a request that is not the configured wait (``io_millis``, by default the
    node's ``ioMillis``) is counted as CPU: the work, the HTTP handling and the new connection
    all need a core. A worker computes itself what it spends inside the worker beyond the wait.
    """
    node = lab.spec.node
    wait = node.io_millis if io_millis is None else io_millis
    return capacity.predict(
        service_ms=calibration.latency_ms,
        cpu_ms=max(calibration.latency_ms - wait, 0.0),
        workers=node.workers,
        replicas=node.replicas,
        concurrency=concurrency,
        cores=where.cores,
        work_ms=max(calibration.service_ms - wait, 0.0),
        requests=requests,
        shared_cores=where.shared,
    )


def sweep_predictions(
    calibration: Calibration,
    lab: NodeLab,
    where: Placement,
    *,
    requests: int | None,
    io_millis: int | None = None,
) -> tuple[tuple[int, capacity.Prediction], ...]:
    """The model at every level of ``spec.load.sweep`` (empty without a sweep)."""
    return tuple(
        (
            level,
            predict(
                calibration, lab, where, concurrency=level, requests=requests, io_millis=io_millis
            ),
        )
        for level in lab.spec.load.sweep
    )


def breaking_concurrency(
    levels: tuple[tuple[int, capacity.Prediction], ...], slo_ms: float
) -> int | None:
    """The first sweep level whose predicted p99 passes the SLO, or None."""
    return next((level for level, p in levels if p.p99_ms > slo_ms), None)


def prediction(
    lab: NodeLab,
    last_run: Mapping[str, Any],
    where: Placement,
    *,
    io_millis: int | None = None,
) -> dict[str, Any] | None:
    """``status.prediction`` for the run ``last_run`` of ``lab``, or None without a calibration.

    The model at the run's concurrency, the SLO it was judged by and the generation; with a
    sweep in the spec, the model at every level and the first that breaks.
    """
    calibration = Calibration.from_report(last_run.get("calibration"))
    if calibration is None:
        return None
    requests = run_requests(last_run)
    concurrency = int(last_run.get("concurrency") or lab.spec.load.concurrency)
    slo_ms = float(last_run.get("sloP99Millis") or lab.spec.slo.p99_millis)
    headline = predict(
        calibration, lab, where, concurrency=concurrency, requests=requests, io_millis=io_millis
    )
    result = headline.to_status()
    result["sloP99Millis"] = slo_ms
    result["generation"] = int(last_run.get("generation") or lab.generation)
    levels = sweep_predictions(calibration, lab, where, requests=requests, io_millis=io_millis)
    if levels:
        result["sweep"] = [
            {
                "concurrency": level,
                "rps": round(p.throughput_rps, 3),
                "latencyMillis": round(p.latency_ms, 2),
                "p99Millis": round(p.p99_ms, 2),
            }
            for level, p in levels
        ]
        breaking = breaking_concurrency(levels, slo_ms)
        if breaking is not None:  # left out, not null: a merge patch's null deletes the field
            result["breakingConcurrency"] = breaking
    return result
