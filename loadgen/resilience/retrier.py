"""A retry policy at work: whether a request may go, and how long to wait before retrying.

One :class:`Retrier` serves every request of a load client (one shard, or one target for a
breaker per target): its budget and breaker see all of their outcomes. Per request the
engine asks :meth:`Retrier.admit` before each attempt and :meth:`Retrier.decide` after it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Literal, get_args

from loadgen.resilience.backoff import Backoff, FullJitter, immediate
from loadgen.resilience.breaker import CircuitBreaker
from loadgen.resilience.budget import DEFAULT_MIN_PER_SECOND, DEFAULT_WINDOW_S, RetryBudget
from loadgen.resilience.policy import RetryPolicy
from loadgen.resilience.retry_after import RETRY_AFTER_CAP_S

__all__ = ["OUTCOMES", "RETRIED", "Outcome", "Retrier"]

# What an attempt came to: answered 2xx; timed out; 503 (the node shed it); 429 (the node
# limited it); any other 5xx or a failed connection.
Outcome = Literal["ok", "timeout", "shed", "limited", "error"]
OUTCOMES: frozenset[str] = frozenset(get_args(Outcome))
RETRIED: frozenset[str] = OUTCOMES - {"ok"}


class Retrier:
    """Runs a :class:`RetryPolicy` with an injected clock (monotonic seconds) and random source.

    Counts, for the report: ``retries`` granted, ``exhausted`` (requests that failed on
    their last allowed attempt); the budget's ``denied`` and the breaker's ``rejected``
    are on :attr:`budget` and :attr:`breaker`.
    """

    __slots__ = (
        "_backoff",
        "_retry_after_cap_s",
        "breaker",
        "budget",
        "exhausted",
        "policy",
        "retries",
    )

    def __init__(
        self,
        policy: RetryPolicy,
        clock: Callable[[], float],
        rng: random.Random,
        *,
        retry_after_cap_s: float = RETRY_AFTER_CAP_S,
        budget_min_per_second: float = DEFAULT_MIN_PER_SECOND,
        budget_window_s: int = DEFAULT_WINDOW_S,
    ) -> None:
        self.policy = policy
        self.retries = 0
        self.exhausted = 0
        self._retry_after_cap_s = retry_after_cap_s
        self._backoff: Backoff = immediate
        if policy.kind == "backoff":
            self._backoff = FullJitter(policy.base_millis / 1000, policy.cap_millis / 1000, rng)
        self.budget: RetryBudget | None = None
        if policy.budget_ratio is not None:
            self.budget = RetryBudget(
                clock,
                ratio=policy.budget_ratio,
                min_per_second=budget_min_per_second,
                window_s=budget_window_s,
                max_attempts=policy.max_attempts,
            )
        self.breaker: CircuitBreaker | None = None
        if (settings := policy.breaker) is not None:
            self.breaker = CircuitBreaker(
                clock,
                failure_ratio=settings.failure_ratio,
                min_calls=settings.min_calls,
                open_seconds=settings.open_seconds,
                probes=settings.probes,
            )

    def admit(self) -> bool:
        """Whether an attempt (first or retry) may be sent now: False while the breaker is
        open, or half-open with its probes already out."""
        return self.breaker is None or self.breaker.allow()

    def decide(
        self, attempt: int, outcome: Outcome, retry_after_s: float | None = None
    ) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or None to give up.

        Call it after every attempt that :meth:`admit` let go, ``ok`` ones included: the
        breaker learns from each outcome and the budget counts first attempts
        (``attempt == 1``). ``retry_after_s`` is the answer's Retry-After, already read
        (:func:`~loadgen.resilience.retry_after.parse_retry_after`); with
        ``honor_retry_after`` the wait is at least that, up to ``retry_after_cap_s``.
        """
        if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
            raise ValueError(f"attempt must be an integer >= 1, got {attempt!r}")
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {sorted(OUTCOMES)}, got {outcome!r}")
        if self.breaker is not None:
            self.breaker.record(outcome == "ok")
        if attempt == 1 and self.budget is not None:
            self.budget.record_request()
        if outcome not in RETRIED:
            return None
        if attempt >= self.policy.max_attempts:
            self.exhausted += 1
            return None
        if self.budget is not None and not self.budget.try_spend_retry(attempt):
            return None
        self.retries += 1
        delay = self._backoff(attempt - 1)
        if self.policy.honor_retry_after and retry_after_s is not None:
            # NaN compares false, so a nonsense hint leaves the backoff's wait as it is.
            asked = min(retry_after_s, self._retry_after_cap_s)
            if asked > delay:
                delay = asked
        return delay
