"""The defended client of the storm tests and the bench: the retry policy phase 5's storm is
answered with, independent of the shipped phase files (which the tour's measurements tune)."""

from __future__ import annotations

from loadgen.resilience import BreakerSettings, RetryPolicy

__all__ = ["defended_policy"]


def defended_policy(breaker: BreakerSettings | None = None) -> RetryPolicy:
    """Up to 3 attempts with full-jitter backoff (50 ms base, 1 s cap), a 10% retry budget,
    Retry-After honoured, behind ``breaker`` (the breaker's defaults unless given)."""
    return RetryPolicy(
        kind="backoff",
        max_attempts=3,
        base_millis=50,
        cap_millis=1000,
        budget_ratio=0.1,
        honor_retry_after=True,
        breaker=BreakerSettings() if breaker is None else breaker,
    )
