"""What each load-balancing strategy should do on a fleet of unequal nodes (a closed loop).

Node ``i`` serves a request in ``S_i`` ms with ``W_i`` workers: its service rate is
``mu_i = W_i / S_i`` requests per ms. ``C`` clients each keep one request out. The model is a
fluid one: ``N_i``, the clients at node ``i`` (its outstanding requests), is a mean, and node
``i`` completes ``X_i = min(N_i, W_i) / S_i`` requests per ms (Little's law with a response
time of ``S_i`` while a worker is free, ``N_i / mu_i`` once they are all busy). The strategies
differ in what they hold equal.

Fixed shares: ``round-robin`` and ``random``
    Each node gets a fixed share ``p_i`` of the requests, ``1 / n`` (exactly for round-robin,
    on average for random), whatever its speed. Throughput is then ``X = min(C / sum p_i S_i,
    min_i mu_i / p_i)``: either no node queues, or the node with the smallest ``mu_i / p_i``
    (the slowest) saturates and every client the others do not hold waits there. A slow node
    takes as many requests as a fast one, so the clients pile up in its queue.

Equal level: ``least-outstanding`` and ``peak-ewma``
    The next request goes to the node whose cost is lowest, so in equilibrium every node's cost
    is the same level ``K`` (were one lower, it would get the next request), and ``sum N_i =
    C`` fixes ``K``. Least-outstanding's cost is ``N_i + 1``: every node holds ``C / n``
    clients and its share of the requests is ``X_i / X``, which is ``mu_i / sum mu`` when
    ``C / n`` fills every node's workers (and ``(1 / S_i) / sum (1 / S)`` below that: with
    equal workers, the same thing). Three nodes, one five times slower: 5/11, 5/11, 1/11.
    Peak-ewma's cost is ``R_i (N_i + 1)`` with ``R_i`` the node's response time (the fluid
    model takes the mean; the peak-sensitive estimate runs above it): a slow node holds fewer
    clients than under least-outstanding, a fast one more, and the shares stay close to
    ``mu_i / sum mu``.

``p2c`` (power of two choices), in between
    It never picks the busier of the two nodes it draws, so no node stays busier than all the
    others: in the fluid limit it levels outstanding requests as least-outstanding does.
    But a node is picked only when drawn, and the node ranked ``r``-th least busy
    (from 0) is picked with probability at most ``2 (n - 1 - r) / (n (n - 1))``: the least
    busy one at most ``2 / n``. When least-outstanding's shares fit under those caps (the
    sorted shares' running sums under the caps' running sums) p2c gets the same shares;
    otherwise the fastest nodes get their caps, the rest shares in proportion to
    least-outstanding's, and the fixed-share closed loop follows. In a real run randomness
    puts p2c between random and least-outstanding: a slow node gets more than under
    least-outstanding, fewer than under round-robin.

Each node's p99 is :func:`nodelab.model.capacity.predict` for that node alone
(``replicas=1``) with ``ceil(N_i)`` clients. The fleet's p99 is the p99 of the slowest node
whose requests, with those of the nodes slower than it, are more than 1% of all: the model's
per-node p99 is about its slowest request, so any node with more than 1% of the requests puts
its p99 into the fleet's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from loadgen.balancing import STRATEGIES, StrategyName, parse_strategy
from nodelab.model.capacity import Prediction, predict

__all__ = [
    "TAIL_SHARE",
    "BalancingPrediction",
    "NodeOutcome",
    "NodeProfile",
    "compare_strategies",
    "predict_balancing",
    "service_rates",
]

# The share of requests past the fleet's p99.
TAIL_SHARE = 0.01

_FIXED_SHARES = ("round-robin", "random")


@dataclass(frozen=True)
class NodeProfile:
    """One node of the fleet: its service time alone, its workers, and what needs a core.

    ``cpu_ms`` is the part of ``service_ms`` that needs a core (None: all of it, the workshop's
    fib), ``cores`` the cores it has (None: one per worker, so nothing shares a core).
    """

    service_ms: float
    workers: int = 1
    cpu_ms: float | None = None
    cores: float | None = None

    def __post_init__(self) -> None:
        if not _positive(self.service_ms):
            raise ValueError(f"service_ms must be positive, got {self.service_ms!r}")
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1:
            raise ValueError(f"workers must be a positive integer, got {self.workers!r}")
        if self.cpu_ms is not None and not (_positive(self.cpu_ms) or self.cpu_ms == 0):
            raise ValueError(f"cpu_ms must be >= 0, got {self.cpu_ms!r}")
        if self.cores is not None and not _positive(self.cores):
            raise ValueError(f"cores must be positive, got {self.cores!r}")

    @property
    def service_rate(self) -> float:
        """``mu = workers / service_ms``: requests per ms with every worker busy."""
        return self.workers / self.service_ms


@dataclass(frozen=True)
class NodeOutcome:
    """What one node gets and answers under a strategy."""

    index: int
    share: float  # of all requests
    clients: float  # mean requests outstanding at the node (fluid, not rounded)
    throughput_rps: float
    p99_ms: float
    prediction: Prediction  # capacity.predict for this node with ceil(clients) clients


@dataclass(frozen=True)
class BalancingPrediction:
    """A strategy's outcome on the fleet: each node's, and the fleet's throughput and p99."""

    strategy: StrategyName
    concurrency: int
    nodes: tuple[NodeOutcome, ...]
    throughput_rps: float
    latency_ms: float  # mean, by Little's law: concurrency / throughput
    p99_ms: float
    p99_node: int  # the node whose p99 is the fleet's

    @property
    def shares(self) -> tuple[float, ...]:
        """Each node's share of the requests, in node order."""
        return tuple(node.share for node in self.nodes)


def service_rates(nodes: Sequence[NodeProfile]) -> tuple[float, ...]:
    """Each node's ``mu_i = W_i / S_i`` (requests per ms)."""
    return tuple(node.service_rate for node in nodes)


def predict_balancing(
    strategy: str, nodes: Sequence[NodeProfile], concurrency: int
) -> BalancingPrediction:
    """What ``strategy`` does with ``concurrency`` closed-loop clients on ``nodes``.

    See the module docstring for the formulas. Raises
    :class:`loadgen.balancing.StrategyError` for an unknown strategy and ``ValueError`` for
    an empty fleet or a concurrency below 1.
    """
    name = parse_strategy(strategy, field="strategy")
    if not nodes:
        raise ValueError("the fleet needs at least one node")
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency must be a positive integer, got {concurrency!r}")
    fleet = tuple(nodes)
    if name in _FIXED_SHARES:
        clients = _fixed_share_clients(fleet, (1.0 / len(fleet),) * len(fleet), concurrency)
    elif name == "least-outstanding":
        clients = _level_clients(fleet, concurrency, _outstanding_inverse)
    elif name == "peak-ewma":
        clients = _level_clients(fleet, concurrency, _peak_ewma_inverse)
    else:
        clients = _p2c_clients(fleet, concurrency)
    return _outcome(name, fleet, clients, concurrency)


def compare_strategies(
    nodes: Sequence[NodeProfile], concurrency: int, strategies: Iterable[str] = STRATEGIES
) -> tuple[BalancingPrediction, ...]:
    """:func:`predict_balancing` for each of ``strategies`` (default: all), in their order."""
    return tuple(predict_balancing(name, nodes, concurrency) for name in strategies)


def _throughputs(fleet: Sequence[NodeProfile], clients: Sequence[float]) -> tuple[float, ...]:
    """``X_i = min(N_i, W_i) / S_i`` per ms."""
    return tuple(
        min(n, node.workers) / node.service_ms for node, n in zip(fleet, clients, strict=True)
    )


def _fixed_share_clients(
    fleet: Sequence[NodeProfile], shares: Sequence[float], concurrency: int
) -> tuple[float, ...]:
    """Clients per node when node ``i`` gets share ``p_i`` of the requests, whatever happens.

    ``X = min(C / sum p_i S_i, min mu_i / p_i)``; a node not saturated holds ``p_i X S_i``
    clients, and the saturated ones (the minimum's) split the rest in proportion to workers.
    """
    unqueued = concurrency / sum(p * node.service_ms for p, node in zip(shares, fleet, strict=True))
    limits = [
        node.service_rate / p if p > 0 else math.inf for p, node in zip(shares, fleet, strict=True)
    ]
    saturating = min(limits)
    if unqueued <= saturating:
        return tuple(p * unqueued * node.service_ms for p, node in zip(shares, fleet, strict=True))
    bottleneck = [math.isclose(limit, saturating, rel_tol=1e-9) for limit in limits]
    clients = [
        0.0 if slow else p * saturating * node.service_ms
        for p, node, slow in zip(shares, fleet, bottleneck, strict=True)
    ]
    rest = concurrency - sum(clients)
    workers = sum(node.workers for node, slow in zip(fleet, bottleneck, strict=True) if slow)
    return tuple(
        rest * node.workers / workers if slow else n
        for node, n, slow in zip(fleet, clients, bottleneck, strict=True)
    )


# Given a cost level K, the clients N >= 0 at which a node's cost reaches K.
_Inverse = Callable[[NodeProfile, float], float]


def _outstanding_inverse(node: NodeProfile, level: float) -> float:
    """Least-outstanding: cost ``N + 1``."""
    return max(level - 1.0, 0.0)


def _peak_ewma_inverse(node: NodeProfile, level: float) -> float:
    """Peak-ewma: cost ``R(N) (N + 1)``, ``R = S`` up to ``W`` clients and ``N / mu`` past it."""
    unqueued = level / node.service_ms - 1.0
    if unqueued <= node.workers:
        return max(unqueued, 0.0)
    # N (N + 1) / mu = K
    return (math.sqrt(1.0 + 4.0 * level * node.service_rate) - 1.0) / 2.0


def _level_clients(
    fleet: Sequence[NodeProfile], concurrency: int, inverse: _Inverse
) -> tuple[float, ...]:
    """Clients per node when every node's cost is the same level (bisection on the level)."""
    low, high = 0.0, 1.0
    while sum(inverse(node, high) for node in fleet) < concurrency:
        high *= 2.0
    for _ in range(200):
        middle = (low + high) / 2.0
        if sum(inverse(node, middle) for node in fleet) < concurrency:
            low = middle
        else:
            high = middle
        if high - low <= 1e-12 * high:
            break
    clients = [inverse(node, high) for node in fleet]
    scale = concurrency / sum(clients)  # absorb the bisection's last sliver
    return tuple(n * scale for n in clients)


def _p2c_caps(targets: int) -> tuple[float, ...]:
    """The most of the picks p2c can give the r-th least busy node, r = 0, 1, ..."""
    if targets == 1:
        return (1.0,)
    pairs = targets * (targets - 1)
    return tuple(2.0 * (targets - 1 - rank) / pairs for rank in range(targets))


def _p2c_clients(fleet: Sequence[NodeProfile], concurrency: int) -> tuple[float, ...]:
    """Least-outstanding's clients where its shares fit p2c's caps, else capped fixed shares."""
    level = _level_clients(fleet, concurrency, _outstanding_inverse)
    throughputs = _throughputs(fleet, level)
    total = sum(throughputs)
    wanted = [x / total for x in throughputs]
    order = sorted(range(len(fleet)), key=lambda i: -wanted[i])
    caps = _p2c_caps(len(fleet))
    shares = [0.0] * len(fleet)
    assigned = 0.0
    cap_sum = 0.0
    weight = 1.0
    capped = False
    for rank, index in enumerate(order):
        cap_sum += caps[rank]
        remaining = 1.0 - assigned
        want = remaining * wanted[index] / weight if weight > 0 else remaining
        share = min(want, cap_sum - assigned)
        if share < want - 1e-12:
            capped = True
        shares[index] = share
        assigned += share
        weight -= wanted[index]
    if not capped:
        return level
    return _fixed_share_clients(fleet, shares, concurrency)


def _outcome(
    name: StrategyName,
    fleet: Sequence[NodeProfile],
    clients: Sequence[float],
    concurrency: int,
) -> BalancingPrediction:
    throughputs = _throughputs(fleet, clients)
    total = sum(throughputs)
    outcomes = []
    for index, (node, n, x) in enumerate(zip(fleet, clients, throughputs, strict=True)):
        prediction = predict(
            service_ms=node.service_ms,
            cpu_ms=node.service_ms if node.cpu_ms is None else node.cpu_ms,
            workers=node.workers,
            replicas=1,
            # The fluid mean can sit a hair above an integer; that is not one more client.
            concurrency=max(1, math.ceil(n - 1e-9)),
            cores=float(node.workers) if node.cores is None else node.cores,
        )
        outcomes.append(
            NodeOutcome(
                index=index,
                share=x / total,
                clients=n,
                throughput_rps=x * 1000.0,
                p99_ms=prediction.p99_ms,
                prediction=prediction,
            )
        )
    p99_node = _tail_node(outcomes)
    return BalancingPrediction(
        strategy=name,
        concurrency=concurrency,
        nodes=tuple(outcomes),
        throughput_rps=total * 1000.0,
        latency_ms=concurrency / total,
        p99_ms=outcomes[p99_node].p99_ms,
        p99_node=p99_node,
    )


def _tail_node(nodes: Sequence[NodeOutcome]) -> int:
    """The slowest node whose requests, with the slower nodes', are more than TAIL_SHARE."""
    slowest_first = sorted(nodes, key=lambda node: -node.p99_ms)
    tail = 0.0
    for node in slowest_first:
        tail += node.share
        if tail > TAIL_SHARE:
            return node.index
    return slowest_first[-1].index


def _positive(value: object) -> bool:
    return (
        not isinstance(value, bool)
        and isinstance(value, int | float)
        and math.isfinite(value)
        and value > 0
    )
