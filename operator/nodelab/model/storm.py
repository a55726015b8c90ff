"""The storm model (phase 5): why retries turn a few slow seconds into an outage that stays.

The lab: an open loop offers ``lambda`` requests a second for ``D`` seconds, each attempt with a
client timeout ``T``. During the trigger window ``[t0, t0 + W)`` every /work that enters service
waits ``E`` more while holding its worker (mode ``slow``), or every /work that arrives is
answered 503/500 at once (mode ``fail``). Clients retry by a :class:`RetryPolicy`; nodes may
shed past a bounded queue and rate-limit.

Capacity
    The fleet serves ``mu = min(R * W_k / S, cores / cpu)`` requests a second: the workers bound
    (replicas x workers requests in service, each for the service time S) and the cores bound of
    :mod:`nodelab.model.capacity` (absent in I/O mode, where the work is a wait). An open loop has
    no clients bound. In a ``slow`` trigger each request holds its worker ``S + E``, so
    ``mu_during = min(R * W_k / (S + E), cores / cpu)``; the extra wait needs no core.

Amplification when every attempt fails
    Attempts per request once every attempt times out (or fails): ``A`` (``maxAttempts``) for
    immediate retries and for backoff alike - backoff only delays the retries, by ``T`` plus a
    draw of ``U(0, min(cap, base * 2**k))`` each, it does not remove them. A budget lets retries
    be at most ``r`` of the first attempts plus a floor ``f`` (retries/s), so
    ``amp = 1 + min(A - 1, r + f / lambda)``. The load at timeout is ``lambda * amp``.

Metastability (the closed-form test)
    A timed-out attempt is still served: the node keeps computing a request whose client left
    (uvicorn does), so abandoned attempts are wasted work that holds the queue up. After the
    trigger the backlog ``Q`` drains only if ``lambda * amp < mu``, at ``mu - lambda * amp``
    while latency ``max(S, Q / mu)`` stays past ``T`` (every attempt still times out), so
    latency is back under ``T`` after ``drain_s ~ (Q - mu * T) / (mu - lambda * amp)`` (the
    backlog ``mu * T`` is what the timeout tolerates; ``amp`` is 1 when the node bounds latency);
    the measured recovery is seen once 3 good seconds follow.
    If ``lambda * amp >= mu`` the queue never drains, latency stays past ``T`` and goodput
    stays near zero: the storm sustains itself after its cause is gone. It cannot when the node
    bounds latency below ``T``: a bounded queue keeps ``max(S, R * W_k * (1 + maxQueue) / mu)``
    (the requests in service and ``maxQueue`` waiting per worker) under ``T``, so accepted
    attempts succeed and the rest are shed at once with ``Retry-After``; a rate limit at or
    below ``mu`` keeps the queue from growing.

The fluid simulation
    The figures come from a deterministic fluid queue stepped ``steps_per_second`` times a
    second: a step's attempts (first ones at ``lambda``, retries as scheduled) pass the circuit
    breaker (open: rejected, not sent), the fail window (fail at once), the rate limit
    (``R * W_k * rateLimit``/s, the rest 429 with Retry-After 1 s) and the bounded queue (the
    rest 503 with ``Retry-After``); the admitted join the FIFO backlog ``Q`` and will take
    ``max(S_eff, Q / mu)``: within ``T`` they succeed then, past it their client times out at
    ``T`` while the node still serves them. Each failure is retried, if attempts, the budget
    (a sliding ``window`` of first attempts and retries) and the breaker allow, after the
    policy's delay (full jitter spread uniformly, at least the Retry-After when honored). The
    node serves ``mu(t)`` a second. The breaker opens when, since it last closed, the latest
    ``minCalls`` outcomes fail at ``failureRatio`` or more; after ``openSeconds`` its probes see
    at once whether the fleet answers within ``T`` (then it closes) or not (open again).
    Per-second sums of the steps give the predicted timeline, read with the measured timeline's
    rules (:mod:`loadgen.timeline`): amplification = attempts / offered, goodput = successes /
    offered, recovery = the first second after the trigger from which goodput stays >= 95% of
    the offered load for 3 seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from loadgen.resilience.budget import DEFAULT_MIN_PER_SECOND, DEFAULT_WINDOW_S
from loadgen.resilience.policy import RetryPolicy
from loadgen.resilience.retry_after import RETRY_AFTER_CAP_S

__all__ = [
    "RECOVERY_RATIO",
    "RECOVERY_SECONDS",
    "NodeProtection",
    "PredictedSecond",
    "StormPrediction",
    "StormScenario",
    "Trigger",
    "amplification_at_timeout",
    "fleet_capacity_rps",
    "predict_storm",
    "simulate",
]

# The measured timeline's recovery rule (loadgen.timeline; a unit test keeps them equal).
RECOVERY_RATIO = 0.95
RECOVERY_SECONDS = 3

# A 429's Retry-After is ceil(the bucket's wait): at least a second.
_LIMITED_RETRY_AFTER_S = 1.0

TriggerMode = Literal["slow", "fail"]
_Failure = Literal["timeout", "error", "limited", "shed"]


@dataclass(frozen=True)
class Trigger:
    """The fault window: ``[start_s, start_s + duration_s)`` seconds into the run."""

    start_s: float
    duration_s: float
    mode: TriggerMode = "slow"
    extra_ms: float = 0.0  # slow: the wait each /work gets on top of its own

    def __post_init__(self) -> None:
        if self.start_s < 0 or self.duration_s <= 0:
            raise ValueError("a trigger needs start_s >= 0 and duration_s > 0")
        if self.mode not in ("slow", "fail"):
            raise ValueError(f"trigger mode must be slow or fail, got {self.mode!r}")
        if self.mode == "slow" and self.extra_ms <= 0:
            raise ValueError("a slow trigger needs extra_ms > 0")

    @property
    def end_s(self) -> float:
        """When the window ends (exclusive)."""
        return self.start_s + self.duration_s

    def active(self, t: float) -> bool:
        """Whether ``t`` seconds into the run is inside the window."""
        return self.start_s <= t < self.end_s


@dataclass(frozen=True)
class NodeProtection:
    """What each worker refuses (node_service's Protection): 0 turns a bound off."""

    max_queue: int = 0  # requests waiting for a turn per worker; past it 503 + Retry-After
    retry_after_s: float = 1.0  # the shed answer's Retry-After
    rate_limit: float = 0.0  # /work per second per worker; past it 429

    def __post_init__(self) -> None:
        if self.max_queue < 0 or self.rate_limit < 0 or self.retry_after_s < 0:
            raise ValueError("max_queue, rate_limit and retry_after_s must be >= 0")


@dataclass(frozen=True)
class StormScenario:
    """One phase 5 run as the model sees it.

    ``cores`` and ``cpu_ms`` bound capacity as in :func:`nodelab.model.capacity.predict` (both
    needed; None or 0 ``cpu_ms``: I/O mode, no cores bound). ``budget_floor_rps`` is the budget's
    floor for the whole load (``min_per_second`` times the load's retriers).
    """

    rate_rps: float
    duration_s: float
    timeout_s: float
    service_ms: float
    workers: int
    replicas: int
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    trigger: Trigger | None = None
    protection: NodeProtection = field(default_factory=NodeProtection)
    cores: float | None = None
    cpu_ms: float | None = None
    budget_floor_rps: float = DEFAULT_MIN_PER_SECOND
    budget_window_s: int = DEFAULT_WINDOW_S
    steps_per_second: int = 20

    def __post_init__(self) -> None:
        if min(self.rate_rps, self.duration_s, self.timeout_s, self.service_ms) <= 0:
            raise ValueError("rate_rps, duration_s, timeout_s and service_ms must be positive")
        if min(self.workers, self.replicas, self.steps_per_second, self.budget_window_s) < 1:
            raise ValueError("workers, replicas, steps_per_second and budget_window_s must be >= 1")
        if self.cores is not None and self.cores <= 0:
            raise ValueError("cores must be positive")
        if self.budget_floor_rps < 0:
            raise ValueError("budget_floor_rps must be >= 0")

    @property
    def fleet_workers(self) -> int:
        """Requests in service at once: replicas x workers."""
        return self.replicas * self.workers

    def service_s(self, t: float) -> float:
        """A request's service time entering service at ``t`` (slowed inside a slow trigger)."""
        extra = 0.0
        if self.trigger is not None and self.trigger.mode == "slow" and self.trigger.active(t):
            extra = self.trigger.extra_ms
        return (self.service_ms + extra) / 1000.0

    def capacity_rps(self, t: float) -> float:
        """The fleet's ``mu`` at ``t``."""
        return fleet_capacity_rps(
            self.service_s(t) * 1000.0, self.fleet_workers, self.cores, self.cpu_ms
        )


def fleet_capacity_rps(
    service_ms: float, fleet_workers: int, cores: float | None = None, cpu_ms: float | None = None
) -> float:
    """``mu = min(fleet_workers / S, cores / cpu)``: capacity's workers and cores bounds."""
    mu = fleet_workers * 1000.0 / service_ms
    if cores is not None and cpu_ms:
        mu = min(mu, cores * 1000.0 / cpu_ms)
    return mu


def amplification_at_timeout(policy: RetryPolicy, rate_rps: float, floor_rps: float) -> float:
    """Attempts per request when every attempt fails: ``A``, or ``1 + min(A-1, r + f/lambda)``
    with a budget."""
    retries = float(policy.max_attempts - 1)
    if policy.budget_ratio is not None:
        retries = min(retries, policy.budget_ratio + floor_rps / rate_rps)
    return 1.0 + retries


@dataclass(frozen=True)
class PredictedSecond:
    """One second of the predicted run, comparable with a measured timeline point."""

    t: int
    offered: float
    attempts: float
    successes: float
    backlog: float  # requests in the fleet at the second's end, abandoned ones included
    latency_ms: float  # what an attempt sent at the second's end would take
    breaker_open: bool  # open at the second's end

    def to_point(self) -> dict[str, Any]:
        """The measured timeline's point form (``t``, ``offered``, ``attempts``, ...)."""
        return {
            "t": self.t,
            "offered": round(self.offered, 2),
            "attempts": round(self.attempts, 2),
            "successes": round(self.successes, 2),
            "backlog": round(self.backlog, 1),
            "latencyMillis": round(self.latency_ms, 1),
            "breaker": "open" if self.breaker_open else "closed",
        }


@dataclass(frozen=True)
class StormPrediction:
    """The model's answer for one scenario (see the module docstring)."""

    offered_rps: float
    capacity_rps: float  # mu before and after the trigger
    capacity_during_rps: float  # mu inside the trigger
    amplification_at_timeout: float
    load_at_timeout_rps: float  # lambda x amplification_at_timeout
    sustains: bool  # the closed-form test: the retry load alone keeps the queue from draining
    amplification: float | None
    goodput: float | None  # successes / offered over the whole run
    trigger_amplification: float | None
    goodput_during: float | None
    goodput_after: float | None
    recovery_s: int | None  # None: did not recover within the run
    backlog_at_trigger_end: float
    drain_s: float | None  # (Q - mu T) / (mu - lambda x amp) after the trigger; None: no drain
    breaker_openings: int
    reasons: tuple[str, ...]
    timeline: tuple[PredictedSecond, ...] = ()

    @property
    def recovered(self) -> bool:
        """Whether goodput is predicted to come back within the run."""
        return self.recovery_s is not None

    def to_status(self) -> dict[str, Any]:
        """camelCase fields for ``status.prediction.storm`` (the timeline left out)."""
        out: dict[str, Any] = {
            "recovered": self.recovered,
            "offeredRps": round(self.offered_rps, 3),
            "capacityRps": round(self.capacity_rps, 3),
            "capacityDuringTriggerRps": round(self.capacity_during_rps, 3),
            "amplificationAtTimeout": round(self.amplification_at_timeout, 3),
            "loadAtTimeoutRps": round(self.load_at_timeout_rps, 3),
            "sustains": self.sustains,
            "backlogAtTriggerEnd": round(self.backlog_at_trigger_end, 1),
            "breakerOpenings": self.breaker_openings,
            "reasons": list(self.reasons),
        }
        for key, value in (
            ("amplification", self.amplification),
            ("goodput", self.goodput),
            ("triggerAmplification", self.trigger_amplification),
            ("goodputDuringTrigger", self.goodput_during),
            ("goodputAfterTrigger", self.goodput_after),
            ("recoverySeconds", self.recovery_s),
            ("drainSeconds", self.drain_s),
        ):
            if value is not None:
                out[key] = round(value, 3) if isinstance(value, float) else value
        return out

    def timeline_points(self) -> list[dict[str, Any]]:
        """The predicted timeline in the measured timeline's point form, for a chart."""
        return [second.to_point() for second in self.timeline]


@dataclass(frozen=True)
class _Simulated:
    seconds: tuple[PredictedSecond, ...]
    backlog_at_trigger_end: float
    breaker_openings: int


class _Fluid:
    """The fluid simulation's state; :func:`simulate` runs it (see the module docstring)."""

    def __init__(self, scenario: StormScenario) -> None:
        self.s = scenario
        self.sps = scenario.steps_per_second
        self.dt = 1.0 / self.sps
        # The run lasts its duration plus one timeout, as the load generator's deadline does.
        self.steps = math.ceil((scenario.duration_s + scenario.timeout_s) * self.sps) + 1
        attempts = scenario.policy.max_attempts
        self.due = [[0.0] * self.steps for _ in range(attempts + 1)]  # by attempt number
        self.timeouts = [[0.0] * self.steps for _ in range(attempts + 1)]
        self.successes = [0.0] * self.steps
        self.sent = [0.0] * self.steps
        self.ok_seen = [0.0] * self.steps
        self.failed_seen = [0.0] * self.steps
        self.firsts = [0.0] * self.steps
        self.retries = [0.0] * self.steps
        self.window_steps = scenario.budget_window_s * self.sps
        self.window_firsts = 0.0
        self.window_retries = 0.0
        self.backlog = 0.0
        self.breaker_open_until: float | None = None
        self.closed_since = 0
        self.openings = 0
        for step in range(min(self.steps, math.ceil(scenario.duration_s * self.sps))):
            self.due[1][step] = scenario.rate_rps * self.dt
        fleet = scenario.fleet_workers
        limit = scenario.protection.rate_limit
        self.rate_cap = fleet * limit * self.dt if limit > 0 else math.inf
        queue = scenario.protection.max_queue
        self.backlog_cap = fleet * (1 + queue) if queue > 0 else math.inf

    def latency_s(self, t: float) -> float:
        """What an attempt admitted at ``t`` takes: ``max(S_eff, Q / mu)`` (FIFO)."""
        return max(self.s.service_s(t), self.backlog / self.s.capacity_rps(t))

    def run(self) -> _Simulated:
        s = self.s
        trigger_end = None if s.trigger is None else s.trigger.end_s
        backlog_at_end = 0.0
        per_second: list[PredictedSecond] = []
        totals = [0.0, 0.0, 0.0]  # offered, attempts, successes of the current second
        for step in range(self.steps):
            t = step * self.dt
            if trigger_end is not None and step == math.ceil(trigger_end * self.sps):
                backlog_at_end = self.backlog
            self._slide_budget(step)
            for attempt in range(1, s.policy.max_attempts + 1):
                mass = self.timeouts[attempt][step]
                if mass:
                    self._failed(step, attempt, mass, "timeout")
            self._breaker(step, t)
            self._send(step, t)
            self.backlog = max(0.0, self.backlog - s.capacity_rps(t) * self.dt)
            totals[0] += self.due[1][step] if t < s.duration_s else 0.0
            totals[1] += self.sent[step]
            totals[2] += self.successes[step]
            if (step + 1) % self.sps == 0 or step == self.steps - 1:
                per_second.append(
                    PredictedSecond(
                        t=step // self.sps,
                        offered=totals[0],
                        attempts=totals[1],
                        successes=totals[2],
                        backlog=self.backlog,
                        latency_ms=self.latency_s(t) * 1000.0,
                        breaker_open=self.breaker_open_until is not None,
                    )
                )
                totals = [0.0, 0.0, 0.0]
        return _Simulated(tuple(per_second), backlog_at_end, self.openings)

    def _slide_budget(self, step: int) -> None:
        gone = step - self.window_steps
        if gone >= 0:
            self.window_firsts -= self.firsts[gone]
            self.window_retries -= self.retries[gone]

    def _breaker(self, step: int, t: float) -> None:
        settings = self.s.policy.breaker
        if settings is None:
            return
        if self.breaker_open_until is not None:
            if t < self.breaker_open_until:
                return
            # Half-open: the probes find out at once whether the fleet answers within T.
            failing = self.s.trigger is not None and (
                self.s.trigger.mode == "fail" and self.s.trigger.active(t)
            )
            if failing or self.backlog >= self.backlog_cap or self.latency_s(t) > self.s.timeout_s:
                self.breaker_open_until = t + settings.open_seconds
                return
            self.breaker_open_until = None
            self.closed_since = step
            return
        seen = failed = 0.0
        for past in range(step - 1, self.closed_since - 1, -1):
            seen += self.ok_seen[past] + self.failed_seen[past]
            failed += self.failed_seen[past]
            if seen >= settings.min_calls:
                break
        if seen >= settings.min_calls and failed >= settings.failure_ratio * seen:
            self.breaker_open_until = t + settings.open_seconds
            self.openings += 1

    def _send(self, step: int, t: float) -> None:
        s = self.s
        if self.breaker_open_until is not None:
            return  # rejected before sending: the requests fail, nothing is retried
        masses = [self.due[attempt][step] for attempt in range(s.policy.max_attempts + 1)]
        total = sum(masses)
        if total <= 0:
            return
        self.sent[step] = total
        self.firsts[step] += masses[1]
        self.window_firsts += masses[1]
        if s.trigger is not None and s.trigger.mode == "fail" and s.trigger.active(t):
            for attempt, mass in enumerate(masses):
                if mass:
                    self._failed(step, attempt, mass, "error")
            return
        passed = min(1.0, self.rate_cap / total)
        room = max(0.0, self.backlog_cap - self.backlog)
        admitted_share = passed * min(1.0, room / (total * passed))
        latency = self.latency_s(t)
        for attempt, mass in enumerate(masses):
            if not mass:
                continue
            if passed < 1.0:
                self._failed(step, attempt, mass * (1.0 - passed), "limited")
            if admitted_share < passed:
                self._failed(step, attempt, mass * (passed - admitted_share), "shed")
            admitted = mass * admitted_share
            if latency <= s.timeout_s:
                done = step + max(1, round(latency * self.sps))
                if done < self.steps:
                    self.successes[done] += admitted
                    self.ok_seen[done] += admitted
            else:
                seen = step + max(1, round(s.timeout_s * self.sps))
                if seen < self.steps:
                    self.timeouts[attempt][seen] += admitted
        self.backlog += total * admitted_share

    def _failed(self, step: int, attempt: int, mass: float, kind: _Failure) -> None:
        """``mass`` of attempt number ``attempt`` failed as seen at ``step``: retry what may."""
        policy = self.s.policy
        self.failed_seen[step] += mass
        if attempt >= policy.max_attempts:
            return
        if policy.budget_ratio is not None:
            allowance = (
                policy.budget_ratio * self.window_firsts
                + self.s.budget_floor_rps * self.s.budget_window_s
                - self.window_retries
            )
            mass = min(mass, max(0.0, allowance))
            if mass <= 0:
                return
        self.retries[step] += mass
        self.window_retries += mass
        bound = 0.0
        if policy.kind == "backoff":
            bound = min(policy.cap_millis, policy.base_millis * 2.0 ** (attempt - 1)) / 1000.0
        floor = 0.0
        if policy.honor_retry_after and kind in ("shed", "limited"):
            asked = self.s.protection.retry_after_s if kind == "shed" else _LIMITED_RETRY_AFTER_S
            floor = min(asked, RETRY_AFTER_CAP_S)
        self._schedule(step, attempt + 1, mass, floor, bound)

    def _schedule(self, step: int, attempt: int, mass: float, floor: float, bound: float) -> None:
        """Spread ``mass`` over the wait ``max(U(0, bound), floor)``, at least one step on."""
        due = self.due[attempt]
        first = step + max(1, round(floor * self.sps))
        if bound <= floor:
            if first < self.steps:
                due[first] += mass
            return
        at_floor = mass * floor / bound
        if at_floor and first < self.steps:
            due[first] += at_floor
        spread = max(1, round((bound - floor) * self.sps))
        share = (mass - at_floor) / spread
        for offset in range(spread):
            target = first + offset + (1 if at_floor else 0)
            if target < self.steps:
                due[target] += share


def simulate(scenario: StormScenario) -> tuple[PredictedSecond, ...]:
    """The predicted per-second timeline of ``scenario`` (offered, attempts, successes, ...)."""
    return _Fluid(scenario).run().seconds


def predict_storm(scenario: StormScenario) -> StormPrediction:
    """Predict amplification, goodput and recovery of one run, with the reasons."""
    s = scenario
    simulated = _Fluid(s).run()
    seconds = simulated.seconds
    mu = fleet_capacity_rps(s.service_ms, s.fleet_workers, s.cores, s.cpu_ms)
    mu_during = mu
    if s.trigger is not None and s.trigger.mode == "slow":
        mu_during = fleet_capacity_rps(
            s.service_ms + s.trigger.extra_ms, s.fleet_workers, s.cores, s.cpu_ms
        )
    amp = amplification_at_timeout(s.policy, s.rate_rps, s.budget_floor_rps)
    load = s.rate_rps * amp
    bounded = _latency_bound_s(s, mu) is not None or _rate_bound_rps(s) <= mu
    sustains = load >= mu and not bounded
    drain_s = None
    backlog = simulated.backlog_at_trigger_end
    if s.trigger is not None and not sustains:
        # Recovery needs latency back under T, i.e. the backlog under mu * T; until then every
        # attempt times out and retries at the timeout's amplification (unless latency is bounded).
        excess = max(0.0, backlog - mu * s.timeout_s)
        drain_rate = mu - (s.rate_rps if bounded else load)
        drain_s = excess / drain_rate if drain_rate > 0 else None
    figures = _figures(seconds, s.trigger)
    prediction = StormPrediction(
        offered_rps=s.rate_rps,
        capacity_rps=mu,
        capacity_during_rps=mu_during,
        amplification_at_timeout=amp,
        load_at_timeout_rps=load,
        sustains=sustains,
        amplification=figures[0],
        goodput=_ratio(sum(x.successes for x in seconds), sum(x.offered for x in seconds)),
        trigger_amplification=figures[1],
        goodput_during=figures[2],
        goodput_after=figures[3],
        recovery_s=figures[4],
        backlog_at_trigger_end=backlog,
        drain_s=drain_s,
        breaker_openings=simulated.breaker_openings,
        reasons=(),
        timeline=seconds,
    )
    return _with_reasons(prediction, s)


def _latency_bound_s(s: StormScenario, mu: float) -> float | None:
    """The latency a bounded queue holds attempts to after the trigger, if it is within T."""
    if s.protection.max_queue <= 0:
        return None
    bound = max(s.service_ms / 1000.0, s.fleet_workers * (1 + s.protection.max_queue) / mu)
    return bound if bound <= s.timeout_s else None


def _rate_bound_rps(s: StormScenario) -> float:
    limit = s.protection.rate_limit
    return s.fleet_workers * limit if limit > 0 else math.inf


def _figures(
    seconds: tuple[PredictedSecond, ...], trigger: Trigger | None
) -> tuple[float | None, float | None, float | None, float | None, int | None]:
    """loadgen.timeline.storm_figures' rules applied to the predicted seconds."""
    offered = sum(x.offered for x in seconds)
    overall = _ratio(sum(x.attempts for x in seconds), offered)
    if trigger is None:
        return overall, None, None, None, None
    first, end = int(trigger.start_s), math.ceil(trigger.end_s)
    inside, after = seconds[first:end], seconds[end:]
    inside_offered = sum(x.offered for x in inside)
    recovery = None
    for index in range(len(after) - RECOVERY_SECONDS + 1):
        window = after[index : index + RECOVERY_SECONDS]
        if all(x.offered > 0 and x.successes >= RECOVERY_RATIO * x.offered for x in window):
            recovery = index
            break
    return (
        overall,
        _ratio(sum(x.attempts for x in inside), inside_offered),
        _ratio(sum(x.successes for x in inside), inside_offered),
        _ratio(sum(x.successes for x in after), sum(x.offered for x in after)),
        recovery,
    )


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator > 0 else None


def _policy_words(policy: RetryPolicy) -> str:
    if policy.kind == "none":
        return "no retries"
    words = (
        f"immediate retries x{policy.max_attempts}"
        if policy.kind == "immediate"
        else (
            f"backoff retries x{policy.max_attempts} (full jitter, {policy.base_millis:g}-"
            f"{policy.cap_millis:g} ms)"
        )
    )
    if policy.budget_ratio is not None:
        words += f" within a {policy.budget_ratio:g} budget"
    return words


def _with_reasons(p: StormPrediction, s: StormScenario) -> StormPrediction:
    reasons = [f"offered {p.offered_rps:g} req/s vs capacity {p.capacity_rps:.3g} req/s"]
    if p.offered_rps >= p.capacity_rps:
        reasons[0] += ": over capacity before any trigger, the queue only grows"
    trigger = s.trigger
    if trigger is not None and trigger.mode == "slow":
        held = s.service_ms + trigger.extra_ms
        line = (
            f"during the trigger each request holds its worker {held:g} ms: capacity falls to "
            f"{p.capacity_during_rps:.3g} req/s"
        )
        if held / 1000.0 > s.timeout_s:
            line += f", and every attempt outlasts the {s.timeout_s:g} s timeout"
        reasons.append(line)
    elif trigger is not None:
        reasons.append("during the trigger every attempt fails at once (503/500)")
    if trigger is not None:
        if s.policy.retries:
            compare = ">=" if p.load_at_timeout_rps >= p.capacity_rps else "<"
            line = (
                f"{_policy_words(s.policy)} make {p.load_at_timeout_rps:.3g} attempts/s when "
                f"every attempt fails, {compare} {p.capacity_rps:.3g} req/s after it"
            )
            if p.sustains and not p.recovered:
                line += ": every attempt keeps timing out and the queue never drains"
            elif p.sustains and p.breaker_openings:
                line += ": it would never drain, but the breaker stops the attempts"
            elif p.sustains:
                line += ", but the trigger leaves no backlog that holds latency past the timeout"
            reasons.append(line)
        bound = _latency_bound_s(s, p.capacity_rps)
        if bound is not None:
            reasons.append(
                f"a queue of {s.protection.max_queue} per worker keeps latency <= "
                f"{bound * 1000:.0f} ms < the {s.timeout_s:g} s timeout: accepted requests "
                "succeed, the rest are shed at once"
            )
        if _rate_bound_rps(s) <= p.capacity_rps:
            reasons.append(
                f"a rate limit of {_rate_bound_rps(s):.3g} req/s <= capacity keeps the queue "
                "from growing"
            )
        if p.breaker_openings:
            reasons.append(
                f"the circuit breaker opens {p.breaker_openings} time"
                f"{'s' if p.breaker_openings > 1 else ''}: no attempt goes while it is open, "
                "so the backlog drains"
            )
        reasons.append(f"backlog at the trigger's end: {p.backlog_at_trigger_end:.0f} requests")
        if p.drain_s:
            reasons.append(f"latency is back under the timeout in ~{p.drain_s:.1f} s")
        if p.recovery_s is None:
            reasons.append("goodput does not come back within the run: it does not recover")
        else:
            reasons.append(f"goodput is back {p.recovery_s} s after the trigger")
    return replace(p, reasons=tuple(reasons))
