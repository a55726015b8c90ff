"""The capacity model: what a closed loop against replicas x workers should measure, and why.

A request costs ``service_ms`` (S) of wall time when served alone, ``cpu_ms`` of it on a core:
everything that is not the configured wait (``ioMillis``) needs a core - the work, the node's
HTTP handling, the new connection, and the load generator's own share, which runs on the same
cores locally. ``work_ms`` is the part one worker computes itself (``fib(n)``: a worker computes
one request at a time, its threads share one GIL).

Throughput X of a closed loop of C clients is bounded three ways (the bottleneck law):

    X <= C / S                 (the clients: each has one request out at a time)
    X <= W * R / S             (the workers: replicas x workers requests in service at once)
    X <= cores / cpu           (the hardware: only `cores` requests compute at once)

and, by Little's law, each request spends C / X in the system on average.

The SLO judges p99, and with a few dozen requests p99 is the slowest request. Four effects,
each measured on the local runtime (docs/local.md, "What the model says"), decide how slow it is;
the model takes the largest of the first three, bounded by the fourth:

``queue``
    The node serves W requests at a time, first come first served: the unluckiest client waits
    ceil(C / (W*R)) rounds of service. Each round is stretched by processor sharing: when more
    requests compute at once than there are cores, the OS shares the cores among them, so each
    one's CPU part takes ``sharing`` = computing / cores times longer.
``stack``
    Connections arriving together (a closed loop's first round) are accepted by as many of a
    node's workers as there are cores to run their accept loops, not spread over all W; a worker
    computes the requests it accepted one after another. The deepest worker's last request waits
    for ``stack_depth`` computations, and the sharing grows while it waits, as answered clients
    send their next request to other workers.
``burst``
    Every request's CPU part competes for the cores at once in that first round (the queued
    ones are sent, accepted and parsed meanwhile): the last one is done when all have had theirs,
    about C * cpu / cores after the start, plus its wait; each later round of the queue adds
    one service time.
``run``
    No request outlasts the run: a run of N requests lasts N / X, so p99 <= N / X.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "P99_CAUSES",
    "Prediction",
    "accept_spread",
    "p99_words",
    "predict",
    "sharing_factor",
]

# What set the predicted p99 (see the module docstring).
P99_CAUSES = ("service", "queue", "stack", "burst", "run")


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
    p99_ms: float = 0.0  # the slowest request of the closed loop (what a p99 SLO sees)
    p99_cause: str = "service"  # one of P99_CAUSES
    rounds: int = 1  # rounds of service the unluckiest client waits at the node's queue
    stack_depth: int = 1  # requests one worker computes in turn from a burst of connections
    sharing: float = 1.0  # how much processor sharing stretches a request's CPU part
    run_ms: float | None = None  # how long the whole run lasts (requests / throughput)

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

    def verdict(self, slo_ms: float) -> str:
        """The verdict this prediction gives against a p99 SLO: ``OK`` or ``Crashed``."""
        return "OK" if self.p99_ms <= slo_ms else "Crashed"


def sharing_factor(computing: float, cores: float) -> float:
    """How much longer a CPU part takes when ``computing`` requests share ``cores`` (>= 1)."""
    return max(1.0, computing / cores)


def accept_spread(workers: int, replicas: int, cores: float, *, shared_cores: bool) -> int:
    """How many workers of one node take a burst of connections: one per core, at most W.

    Locally (``shared_cores``) every replica's accept loops run on the same cores; in a cluster
    each replica has its own share, ``cores / replicas``.
    """
    per_node = cores if shared_cores else cores / replicas
    return max(1, min(workers, math.floor(per_node)))


def predict(
    *,
    service_ms: float,
    cpu_ms: float,
    workers: int,
    replicas: int,
    concurrency: int,
    cores: float,
    work_ms: float | None = None,
    requests: int | None = None,
    shared_cores: bool = False,
) -> Prediction:
    """Predict closed-loop throughput, mean latency and p99 (see the module docstring).

    ``service_ms`` is one request's time when served alone (a calibration run measures it),
    ``cpu_ms`` the part of it that needs a core (``service_ms`` for pure CPU work, ~0 for pure
    waiting), ``cores`` the CPU the fleet can use at once. ``work_ms`` is the part a worker
    computes itself, one request at a time (defaults to ``cpu_ms``; 0 when it only waits).
    ``requests`` bounds p99 by the run's length (None: a run by duration, no bound).
    ``shared_cores`` says whether the replicas share the same cores (one machine) or each has
    ``cores / replicas`` of its own.
    """
    if service_ms <= 0:
        raise ValueError("service_ms must be positive")
    if min(workers, replicas, concurrency) < 1 or cores <= 0:
        raise ValueError("workers, replicas, concurrency and cores must be positive")
    if requests is not None and requests < 1:
        raise ValueError("requests must be positive")
    cpu_ms = min(max(cpu_ms, 0.0), service_ms)
    work = cpu_ms if work_ms is None else min(max(work_ms, 0.0), cpu_ms)
    capacity = workers * replicas
    limits = {
        "clients": concurrency / service_ms,
        "workers": capacity / service_ms,
        "cores": cores / cpu_ms if cpu_ms > 0 else float("inf"),
    }
    # Ties go to the earlier limit: "clients" means nothing queues anywhere.
    bottleneck = min(limits, key=lambda name: limits[name])
    per_ms = limits[bottleneck]
    latency_ms = max(concurrency / per_ms, service_ms)

    in_service = min(concurrency, capacity)
    cpu_share = cpu_ms / service_ms  # the fraction of its service a request spends computing
    sharing = sharing_factor(in_service * cpu_share, cores)
    rounds = math.ceil(concurrency / capacity)
    round_ms = service_ms + (sharing - 1.0) * cpu_ms
    # The first round: the requests in service compute, the queued ones are sent, accepted and
    # parsed; all of it at once on the cores. Each later round starts when a first one ends.
    first_cpu_ms = (in_service * cpu_ms + (concurrency - in_service) * (cpu_ms - work)) / cores
    terms = {
        "service": service_ms,
        "queue": rounds * round_ms,
        "burst": (rounds - 1) * round_ms + (service_ms - cpu_ms) + max(cpu_ms, first_cpu_ms),
    }
    depth = 1
    if work > 0:
        spread = accept_spread(workers, replicas, cores, shared_cores=shared_cores)
        depth = math.ceil(math.ceil(concurrency / replicas) / spread)
        # While the deepest worker computes its j-th request, the clients answered so far have
        # sent new requests to other workers: j bursts' worth of workers compute at once.
        started = replicas * spread
        terms["stack"] = (service_ms - work) + sum(
            work * sharing_factor(min(j * started, in_service) * cpu_share, cores)
            for j in range(1, depth + 1)
        )
    cause = max(terms, key=lambda name: terms[name])
    p99_ms = max(terms[cause], latency_ms)
    run_ms = None if requests is None else requests / per_ms
    if run_ms is not None and run_ms < p99_ms:
        cause, p99_ms = "run", max(run_ms, latency_ms, service_ms)
    return Prediction(
        throughput_rps=per_ms * 1000.0,
        latency_ms=latency_ms,
        bottleneck=bottleneck,
        explanation=_explain(bottleneck, concurrency, workers, replicas, cores, cpu_share),
        service_ms=service_ms,
        cpu_ms=cpu_ms,
        cores=cores,
        capacity=capacity,
        p99_ms=p99_ms,
        p99_cause=cause,
        rounds=rounds,
        stack_depth=depth,
        sharing=sharing,
        run_ms=run_ms,
    )


def p99_words(prediction: Prediction) -> str:
    """Why the predicted p99 is what it is, in plain words (for a table or a line)."""
    p = prediction
    sharing = f", each stretched x{p.sharing:.1f} by sharing the cores" if p.sharing > 1 else ""
    if p.p99_cause == "queue" and p.rounds > 1:
        return (
            f"the last client waits {p.rounds} rounds of service for {p.capacity} "
            f"worker{'s' if p.capacity > 1 else ''}{sharing}"
        )
    if p.p99_cause == "queue" and p.sharing > 1:
        return f"more requests compute at once than there are cores{sharing}"
    if p.p99_cause == "stack":
        return (
            f"connections arriving together pile {p.stack_depth} requests on one worker (one "
            "accept loop per core), which computes them in turn while the others share the cores"
        )
    if p.p99_cause == "burst":
        wait = (
            f"the last client waits {p.rounds} rounds of service for {p.capacity} "
            f"worker{'s' if p.capacity > 1 else ''}"
            if p.rounds > 1
            else "no request waits for a worker"
        )
        return (
            f"{wait}; the first round's requests all need a core at once, so the last one "
            f"gets its CPU once all have had theirs on {p.cores:g} cores"
        )
    if p.p99_cause == "run":
        piled = (
            f"a worker piled with {p.stack_depth} requests computes them while the others "
            "share the cores, so its last one"
            if p.stack_depth > 1
            else "the slowest request"
        )
        return f"{piled} finishes near the end of the run ({p.run_ms:,.0f} ms for all requests)"
    return "nothing queues: p99 is about one service time"


def _explain(
    bottleneck: str,
    concurrency: int,
    workers: int,
    replicas: int,
    cores: float,
    cpu_share: float = 1.0,
) -> str:
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
    if cpu_share < 0.5:
        return (
            f"{concurrency} clients on {fleet}: the workers mostly wait, but each request's "
            f"handling (HTTP, a new connection, the load generator's share) needs a core, and "
            f"{cores:g} cores serve only so many of those per second."
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
