"""Client-side load balancing: which target the next request goes to.

The strategies gRPC, Envoy, Finagle and Linkerd offer a client, each behind one interface
(:class:`Balancer`): before a request, :meth:`~Balancer.pick` a target index; when it is sent,
:meth:`~Balancer.started`; when it is answered or has failed, :meth:`~Balancer.finished` with
its latency and whether it succeeded. Every balancer counts each target's outstanding
requests (sent, not yet finished), so a report can show them whatever the strategy.

``round-robin``
    Targets in turn (what the load generator has always done). Blind to speed: a node five
    times slower gets as many requests as the others and its queue grows.
``random``
    A uniformly random target. Blind as round-robin, with no coordination between clients.
``least-outstanding``
    The target with the fewest outstanding requests (nginx's least_conn; Envoy's
    LEAST_REQUEST when its choice_count covers every host). Ties go round-robin: the scan
    starts after the last target picked and takes the first minimum, so with all counts equal
    it *is* round-robin.
``p2c``
    Power of two choices: two distinct targets at random, the one with fewer outstanding
    requests (gRPC's least_request and Envoy's LEAST_REQUEST with their default choice_count
    of 2); a tie goes to the first drawn, itself random. It never picks the busier of the two,
    so a target busier than all others is never picked.
``peak-ewma``
    Finagle's and Linkerd's latency-aware load: each target's cost is
    ``latency_estimate * (outstanding + 1)`` and the cheapest target is picked (ties
    round-robin). The estimate is a peak-sensitive EWMA of latencies (:class:`PeakEwma`).
    Finagle and Linkerd pair this cost with p2c to scale to thousands of endpoints; over the
    handful of targets of a lab, a full scan costs as little and always takes the cheapest.

Least-outstanding and p2c count requests, not outcomes: a node that fails fast (refuses,
sheds with 503) drains its count and draws more traffic. Passive outlier ejection (Envoy's
consecutive-5xx) is the remedy and is not built yet; peak-ewma guards against it itself.

Balancers are not thread-safe: one event loop (one load-generator process) owns each. Their
randomness (a ``random.Random``) and time (monotonic seconds) are injected, so tests replay a
run exactly. Per pick they scan the targets at most once and allocate no list, dict or tuple.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Literal, Protocol, cast, get_args

__all__ = [
    "DEFAULT_STRATEGY",
    "STRATEGIES",
    "Balancer",
    "BalancerFactory",
    "Clock",
    "LeastOutstanding",
    "PeakEwma",
    "PowerOfTwoChoices",
    "RandomChoice",
    "RoundRobin",
    "StrategyError",
    "StrategyName",
    "parse_strategy",
]

Clock = Callable[[], float]  # monotonic seconds
StrategyName = Literal["round-robin", "random", "least-outstanding", "p2c", "peak-ewma"]
DEFAULT_STRATEGY: StrategyName = "round-robin"
_NAMES: tuple[str, ...] = get_args(StrategyName)


class StrategyError(ValueError):
    """A balancing strategy name the load generator does not know; ``field`` names the setting."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message


class Balancer(Protocol):
    """What the load generator asks of a strategy (see the module docstring)."""

    name: StrategyName
    outstanding: list[int]  # per target: requests started and not yet finished

    def pick(self) -> int:
        """The index of the target the next request goes to."""
        ...

    def started(self, index: int) -> None:
        """A request to target ``index`` was sent."""
        ...

    def finished(self, index: int, latency_s: float, ok: bool) -> None:
        """A request to target ``index`` ended after ``latency_s``: answered (``ok``) or failed."""
        ...


# Builds a strategy's balancer over ``targets`` targets.
BalancerFactory = Callable[[int, random.Random, Clock], Balancer]


class _Counting:
    """The outstanding counts every strategy keeps."""

    __slots__ = ("outstanding",)

    def __init__(self, targets: int) -> None:
        if isinstance(targets, bool) or not isinstance(targets, int) or targets < 1:
            raise ValueError(f"a balancer needs at least one target, got {targets!r}")
        self.outstanding = [0] * targets

    def started(self, index: int) -> None:
        """A request to target ``index`` was sent."""
        self.outstanding[index] += 1

    def finished(self, index: int, latency_s: float, ok: bool) -> None:
        """A request to target ``index`` ended (its latency and outcome do not matter here)."""
        self._release(index)

    def _release(self, index: int) -> None:
        if self.outstanding[index] <= 0:
            # A finish without its start would skew every later pick: a caller's bug.
            raise ValueError(f"target {index} finished a request it never started")
        self.outstanding[index] -= 1


class RoundRobin(_Counting):
    """Targets in turn, starting with target 0."""

    __slots__ = ("_next",)
    name: StrategyName = "round-robin"

    def __init__(self, targets: int, rng: random.Random, clock: Clock) -> None:
        super().__init__(targets)
        self._next = 0

    def pick(self) -> int:
        """The target after the one picked last."""
        index = self._next
        self._next = index + 1 if index + 1 < len(self.outstanding) else 0
        return index


class RandomChoice(_Counting):
    """A uniformly random target per request."""

    __slots__ = ("_randrange",)
    name: StrategyName = "random"

    def __init__(self, targets: int, rng: random.Random, clock: Clock) -> None:
        super().__init__(targets)
        self._randrange = rng.randrange

    def pick(self) -> int:
        """Any target, each equally likely."""
        return self._randrange(len(self.outstanding))


class LeastOutstanding(_Counting):
    """The target with the fewest outstanding requests; ties round-robin."""

    __slots__ = ("_next",)
    name: StrategyName = "least-outstanding"

    def __init__(self, targets: int, rng: random.Random, clock: Clock) -> None:
        super().__init__(targets)
        self._next = 0

    def pick(self) -> int:
        """The first target with the fewest outstanding requests, scanning from the next one."""
        outstanding = self.outstanding
        n = len(outstanding)
        start = self._next
        best = start
        fewest = outstanding[start]
        for offset in range(1, n):
            index = start + offset
            if index >= n:
                index -= n
            if outstanding[index] < fewest:
                best, fewest = index, outstanding[index]
        self._next = best + 1 if best + 1 < n else 0
        return best


class PowerOfTwoChoices(_Counting):
    """Of two distinct random targets, the one with fewer outstanding requests."""

    __slots__ = ("_randrange",)
    name: StrategyName = "p2c"

    def __init__(self, targets: int, rng: random.Random, clock: Clock) -> None:
        super().__init__(targets)
        self._randrange = rng.randrange

    def pick(self) -> int:
        """The less busy of two distinct random targets (the first drawn on a tie)."""
        n = len(self.outstanding)
        if n == 1:
            return 0
        first = self._randrange(n)
        second = self._randrange(n - 1)
        if second >= first:
            second += 1  # uniform over the targets other than ``first``
        outstanding = self.outstanding
        return second if outstanding[second] < outstanding[first] else first


# Finagle's cost for a target with requests out and no latency yet (Long.MaxValue >> 16 ns).
PENALTY_S = float(2**47) / 1e9


class PeakEwma(_Counting):
    """The target with the lowest ``latency_estimate * (outstanding + 1)``; ties round-robin.

    The latency estimate is Finagle's and Linkerd's peak-sensitive EWMA with time constant
    ``tau_s`` (10 s by default, as both). A latency above the estimate replaces it at once, so
    a node that slows down is avoided from its first slow answer; a latency below it moves it
    by the weight the elapsed time gives, ``w = exp(-dt / tau)``::

        estimate = latency                              if latency > estimate
                 = estimate * w + latency * (1 - w)     otherwise

    where ``dt`` is the time since the previous sample. Between samples the estimate read for
    a pick decays toward zero with the same time constant (both do this on every look), so a
    node that was slow and has been left alone is tried again after a while instead of never.

    A new node, with no latency yet, costs zero while it is idle, so it is tried at once, and
    :data:`PENALTY_S` plus its outstanding count while requests to it are out, so one probe
    goes and it is not flooded before its first answer (Finagle's rule; Linkerd instead starts
    every node at a default latency).

    A failed request counts as a latency no lower than the current estimate: a node that fails
    fast (refuses, sheds with 503) must not look faster for it and draw more traffic.
    """

    __slots__ = ("_clock", "_estimate", "_next", "_stamp", "tau_s")
    name: StrategyName = "peak-ewma"

    def __init__(
        self, targets: int, rng: random.Random, clock: Clock, *, tau_s: float = 10.0
    ) -> None:
        super().__init__(targets)
        if isinstance(tau_s, bool) or not isinstance(tau_s, int | float) or not tau_s > 0:
            raise ValueError(f"tau_s must be a positive number of seconds, got {tau_s!r}")
        if not math.isfinite(tau_s):
            raise ValueError(f"tau_s must be finite, got {tau_s!r}")
        self.tau_s = float(tau_s)
        self._clock = clock
        self._estimate = [0.0] * targets  # seconds, as of the sample at ``_stamp``
        self._stamp = [0.0] * targets
        self._next = 0

    def latency_estimate(self, index: int, now: float | None = None) -> float:
        """Target ``index``'s latency estimate in seconds at ``now`` (default: the clock's)."""
        if now is None:
            now = self._clock()
        return self._decayed(index, now)

    def cost(self, index: int, now: float | None = None) -> float:
        """Target ``index``'s cost at ``now``: what :meth:`pick` compares."""
        if now is None:
            now = self._clock()
        return self._cost(index, now)

    def pick(self) -> int:
        """The cheapest target, scanning from the one after the target picked last."""
        now = self._clock()
        n = len(self.outstanding)
        start = self._next
        best = start
        cheapest = self._cost(start, now)
        for offset in range(1, n):
            index = start + offset
            if index >= n:
                index -= n
            cost = self._cost(index, now)
            if cost < cheapest:
                best, cheapest = index, cost
        self._next = best + 1 if best + 1 < n else 0
        return best

    def finished(self, index: int, latency_s: float, ok: bool) -> None:
        """Fold the request's latency into the target's estimate (see the class docstring)."""
        self._release(index)
        now = self._clock()
        estimate = self._estimate[index]
        if not ok and latency_s < estimate:
            latency_s = estimate
        if latency_s > estimate:
            self._estimate[index] = latency_s
        else:
            weight = math.exp(-max(now - self._stamp[index], 0.0) / self.tau_s)
            self._estimate[index] = estimate * weight + latency_s * (1.0 - weight)
        self._stamp[index] = now

    def _decayed(self, index: int, now: float) -> float:
        estimate = self._estimate[index]
        if estimate == 0.0:
            return 0.0
        return estimate * math.exp(-max(now - self._stamp[index], 0.0) / self.tau_s)

    def _cost(self, index: int, now: float) -> float:
        pending = self.outstanding[index]
        estimate = self._decayed(index, now)
        if estimate == 0.0 and pending:
            return PENALTY_S + pending
        return estimate * (pending + 1)


# Strategy name -> the factory of its balancer: ``STRATEGIES[name](targets, rng, clock)``.
STRATEGIES: Mapping[StrategyName, BalancerFactory] = MappingProxyType(
    {
        "round-robin": RoundRobin,
        "random": RandomChoice,
        "least-outstanding": LeastOutstanding,
        "p2c": PowerOfTwoChoices,
        "peak-ewma": PeakEwma,
    }
)


def parse_strategy(name: object, *, field: str = "--balance") -> StrategyName:
    """``name`` as a strategy name, or :class:`StrategyError` naming ``field`` and the choices."""
    if not isinstance(name, str) or name not in _NAMES:
        raise StrategyError(field, f"must be one of {', '.join(_NAMES)}; got {name!r}")
    return cast(StrategyName, name)
