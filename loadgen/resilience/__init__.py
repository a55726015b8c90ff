"""Client-side resilience for the load generator: backoff, retry budget, circuit breaker.

Everything here is pure: time comes from an injected monotonic clock and randomness from an
injected :class:`random.Random`, so a run's retry decisions can be replayed in a test.
"""

from __future__ import annotations

from loadgen.resilience.backoff import Backoff, FullJitter, immediate
from loadgen.resilience.breaker import BreakerState, CircuitBreaker
from loadgen.resilience.budget import RetryBudget
from loadgen.resilience.policy import BreakerSettings, PolicyError, RetryKind, RetryPolicy
from loadgen.resilience.retrier import OUTCOMES, RETRIED, Outcome, Retrier
from loadgen.resilience.retry_after import RETRY_AFTER_CAP_S, parse_retry_after

__all__ = [
    "OUTCOMES",
    "RETRIED",
    "RETRY_AFTER_CAP_S",
    "Backoff",
    "BreakerSettings",
    "BreakerState",
    "CircuitBreaker",
    "FullJitter",
    "Outcome",
    "PolicyError",
    "Retrier",
    "RetryBudget",
    "RetryKind",
    "RetryPolicy",
    "immediate",
    "parse_retry_after",
]
