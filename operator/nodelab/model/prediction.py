"""``status.prediction``: the capacity model fed with a run's calibration, for either runtime.

The only place that turns a calibration into the models' inputs: the capacity model
(:mod:`nodelab.model.capacity`) always, the storm model (:mod:`nodelab.model.storm`, phase 5) as
``prediction.storm`` when the spec has a trigger or a retry policy that retries, and the
balancing model (:mod:`nodelab.model.balancing`, phase 6) as ``prediction.balancing`` when the
spec has a slow pool. What differs between the runtimes is where the fleet runs
(:class:`Placement`): in a cluster the node pods have ``replicas x pod CPU`` cores of their
own; locally every replica and the load generator share this machine's cores.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from loadgen.resilience import RetryPolicy
from nodelab.model import balancing, capacity, storm
from nodelab.model.spec import NodeLab

__all__ = [
    "Calibration",
    "Placement",
    "balancing_prediction",
    "breaking_concurrency",
    "has_storm",
    "node_profiles",
    "predict",
    "predict_storm",
    "prediction",
    "run_requests",
    "storm_scenario",
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


def _wait_ms(lab: NodeLab, io_millis: int | None) -> float:
    return float(lab.spec.node.io_millis if io_millis is None else io_millis)


def _run_trigger(lab: NodeLab, last_run: Mapping[str, Any]) -> storm.Trigger | None:
    """The fault window the run had: the report's (quick mode scales it), else the spec's."""
    window = last_run.get("trigger")
    if isinstance(window, Mapping) and window.get("durationSeconds"):
        mode: storm.TriggerMode = "fail" if window.get("mode") == "fail" else "slow"
        return storm.Trigger(
            start_s=float(window.get("startSeconds") or 0.0),
            duration_s=float(window["durationSeconds"]),
            mode=mode,
            extra_ms=float(window.get("extraMillis") or 0.0) if mode == "slow" else 0.0,
        )
    trigger = lab.spec.trigger
    if trigger is None:
        return None
    return storm.Trigger(
        start_s=trigger.start_seconds,
        duration_s=trigger.duration_seconds,
        mode=trigger.mode,
        extra_ms=float(trigger.extra_millis or 0) if trigger.mode == "slow" else 0.0,
    )


def _run_duration_s(lab: NodeLab, last_run: Mapping[str, Any]) -> float | None:
    """How long the open loop offered requests: its schedule over its rate, else the spec's."""
    rate = last_run.get("rate") or lab.spec.load.rate
    scheduled = last_run.get("scheduled")
    if rate and scheduled:
        return float(scheduled) / float(rate)
    duration = lab.spec.load.duration_seconds
    return float(duration) if duration is not None else None


def has_storm(lab: NodeLab) -> bool:
    """Whether the spec is a storm run's: a trigger, or a retry policy that retries."""
    retry = lab.spec.load.retry
    return lab.spec.trigger is not None or (retry is not None and retry.retries)


def storm_scenario(
    calibration: Calibration,
    lab: NodeLab,
    where: Placement,
    last_run: Mapping[str, Any] | None = None,
    *,
    io_millis: int | None = None,
) -> storm.StormScenario | None:
    """The storm model's scenario for ``lab``'s run (``last_run``'s trigger window and length
    when given), or None when the lab is not a storm run (no trigger, no retries, no rate).

    The service time is the calibrated one; what is not the configured wait needs a core
    (as in :func:`predict`), on ``where``'s cores; one load process, so one budget floor.
    """
    load = lab.spec.load
    report = last_run or {}
    duration = _run_duration_s(lab, report)
    if not has_storm(lab) or load.rate is None or duration is None or duration <= 0:
        return None
    node = lab.spec.node
    protection = node.protection
    return storm.StormScenario(
        rate_rps=float(load.rate),
        duration_s=duration,
        timeout_s=float(load.timeout_seconds),
        service_ms=calibration.latency_ms,
        workers=node.workers,
        replicas=node.replicas,
        policy=load.retry or RetryPolicy(),
        trigger=_run_trigger(lab, report),
        protection=storm.NodeProtection()
        if protection is None
        else storm.NodeProtection(
            max_queue=protection.max_queue,
            retry_after_s=float(protection.retry_after_seconds),
            rate_limit=protection.rate_limit or 0.0,
        ),
        cores=where.cores,
        cpu_ms=max(calibration.latency_ms - _wait_ms(lab, io_millis), 0.0),
    )


def predict_storm(
    calibration: Calibration,
    lab: NodeLab,
    where: Placement,
    last_run: Mapping[str, Any] | None = None,
    *,
    io_millis: int | None = None,
) -> storm.StormPrediction | None:
    """The storm model's prediction for ``lab``'s run, or None when it is not a storm run."""
    scenario = storm_scenario(calibration, lab, where, last_run, io_millis=io_millis)
    return None if scenario is None else storm.predict_storm(scenario)


def node_profiles(
    calibration: Calibration, lab: NodeLab, where: Placement, *, io_millis: int | None = None
) -> tuple[balancing.NodeProfile, ...]:
    """The fleet as the balancing model sees it: the fast nodes, then ``slowPool.replicas``
    slow ones (as the local runtime numbers them: the last replicas are the slow ones).

    The calibration is a fast node's (its median: the slow pool is a minority of the nodes
    its requests go to). A slow node stretches the time inside the worker by
    ``serviceFactor`` and adds ``extraMillis``; its HTTP overhead is a fast node's. Each node
    has its pod's CPU in a cluster; on one machine each sees the machine's cores.
    """
    node = lab.spec.node
    wait = _wait_ms(lab, io_millis)
    cpu = max(calibration.latency_ms - wait, 0.0)
    work_cpu = max(calibration.service_ms - wait, 0.0)
    cores = where.cores if where.shared else where.cores / node.replicas
    fast = balancing.NodeProfile(
        service_ms=calibration.latency_ms, workers=node.workers, cpu_ms=cpu, cores=cores
    )
    pool = node.slow_pool
    if pool is None:
        return (fast,) * node.replicas
    factor = pool.service_factor or 1.0
    extra = float(pool.extra_millis or 0)
    slow = balancing.NodeProfile(
        service_ms=calibration.latency_ms + (factor - 1.0) * calibration.service_ms + extra,
        workers=node.workers,
        cpu_ms=cpu + (factor - 1.0) * work_cpu,
        cores=cores,
    )
    return (fast,) * (node.replicas - pool.replicas) + (slow,) * pool.replicas


def balancing_prediction(
    calibration: Calibration,
    lab: NodeLab,
    where: Placement,
    *,
    concurrency: int,
    io_millis: int | None = None,
) -> dict[str, Any] | None:
    """``status.prediction.balancing`` for a lab with a slow pool, else None.

    The spec's strategy on :func:`node_profiles` with ``concurrency`` closed-loop clients:
    each node's share of the requests and p99 (``nodes``, in the fleet's order, the slow
    ones last), the slow pool's share, the fleet's throughput and p99; and every strategy's
    p99 and slow-pool share beside it (``strategies``), to show what another would do.
    """
    pool = lab.spec.node.slow_pool
    if pool is None:
        return None
    nodes = node_profiles(calibration, lab, where, io_millis=io_millis)
    fast_count = len(nodes) - pool.replicas
    chosen = balancing.predict_balancing(lab.spec.load.balancing, nodes, concurrency)

    def slow_share(p: balancing.BalancingPrediction) -> float:
        return round(sum(p.shares[fast_count:]), 4)

    return {
        "strategy": chosen.strategy,
        "concurrency": concurrency,
        "throughputRps": round(chosen.throughput_rps, 3),
        "p99Millis": round(chosen.p99_ms, 2),
        "p99Node": chosen.p99_node,
        "slowShare": slow_share(chosen),
        "nodes": [
            {
                "index": outcome.index,
                "slow": outcome.index >= fast_count,
                "serviceMillis": round(nodes[outcome.index].service_ms, 2),
                "share": round(outcome.share, 4),
                "p99Millis": round(outcome.p99_ms, 2),
            }
            for outcome in chosen.nodes
        ],
        "strategies": [
            {
                "strategy": p.strategy,
                "p99Millis": round(p.p99_ms, 2),
                "throughputRps": round(p.throughput_rps, 3),
                "slowShare": slow_share(p),
            }
            for p in balancing.compare_strategies(nodes, concurrency)
        ],
    }


def prediction(
    lab: NodeLab,
    last_run: Mapping[str, Any],
    where: Placement,
    *,
    io_millis: int | None = None,
) -> dict[str, Any] | None:
    """``status.prediction`` for the run ``last_run`` of ``lab``, or None without a calibration.

    The model at the run's concurrency, the SLO it was judged by and the generation; with a
    sweep in the spec, the model at every level and the first that breaks; for a storm run the
    storm model (``storm``: :meth:`~nodelab.model.storm.StormPrediction.to_status`), for a
    lab with a slow pool the balancing model (``balancing``: :func:`balancing_prediction`).
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
    stormy = predict_storm(calibration, lab, where, last_run, io_millis=io_millis)
    if stormy is not None:
        result["storm"] = stormy.to_status()
    balanced = balancing_prediction(
        calibration, lab, where, concurrency=concurrency, io_millis=io_millis
    )
    if balanced is not None:
        result["balancing"] = balanced
    return result
