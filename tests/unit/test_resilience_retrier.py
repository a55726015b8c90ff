"""The retrier: a policy's decisions per attempt, through its backoff, budget and breaker."""

from __future__ import annotations

import random

import pytest

from loadgen.resilience.breaker import BreakerState
from loadgen.resilience.policy import BreakerSettings, RetryPolicy
from loadgen.resilience.retrier import OUTCOMES, RETRIED, Outcome, Retrier
from tests.support.clock import FakeClock


def retrier(policy: RetryPolicy, clock: FakeClock | None = None, **kwargs: float) -> Retrier:
    return Retrier(policy, clock or FakeClock(), random.Random(7), **kwargs)  # type: ignore[arg-type]


def test_every_failure_is_retried_and_success_never() -> None:
    assert frozenset({"ok", "timeout", "shed", "limited", "error"}) == OUTCOMES
    assert OUTCOMES - {"ok"} == RETRIED
    r = retrier(RetryPolicy(kind="immediate", max_attempts=2))
    assert r.decide(1, "ok") is None
    for outcome in sorted(RETRIED):
        assert r.decide(1, outcome) == 0.0  # type: ignore[arg-type]


def test_immediate_retries_at_once_up_to_max_attempts() -> None:
    r = retrier(RetryPolicy(kind="immediate", max_attempts=3))
    assert r.decide(1, "timeout") == 0.0
    assert r.decide(2, "shed") == 0.0
    assert r.decide(3, "error") is None  # the third attempt was the last
    assert (r.retries, r.exhausted) == (2, 1)


def test_a_policy_of_none_never_retries() -> None:
    r = retrier(RetryPolicy())
    assert all(r.decide(1, outcome) is None for outcome in ("timeout", "shed", "error"))
    assert r.admit()
    assert (r.budget, r.breaker) == (None, None)


def test_backoff_waits_grow_within_the_capped_full_jitter_steps() -> None:
    r = retrier(RetryPolicy(kind="backoff", max_attempts=10, base_millis=100, cap_millis=400))
    for attempt, bound in [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.4), (9, 0.4)]:
        waits = [r.decide(attempt, "timeout") for _ in range(2000)]
        assert all(w is not None and 0.0 <= w <= bound for w in waits)
        assert max(w for w in waits if w is not None) > 0.9 * bound


def test_an_exhausted_budget_gives_up() -> None:
    policy = RetryPolicy(kind="immediate", max_attempts=3, budget_ratio=0.1)
    r = retrier(policy, budget_min_per_second=0.0)
    for _ in range(20):  # 20 first attempts earn 2 retries
        assert r.decide(1, "ok") is None
    assert r.decide(1, "shed") == 0.0  # a first attempt of its own: 21 earn 2.1
    assert r.decide(1, "shed") == 0.0  # 22
    assert r.decide(1, "shed") is None  # 23 earn 2.3: no third retry
    assert r.budget is not None
    assert (r.budget.requests, r.budget.retries, r.budget.denied) == (23, 2, 1)
    assert r.retries == 2


def test_only_first_attempts_earn_retries() -> None:
    policy = RetryPolicy(kind="immediate", max_attempts=5, budget_ratio=0.5)
    r = retrier(policy, budget_min_per_second=0.0)
    assert r.decide(1, "error") is None  # half a retry's worth
    assert r.decide(1, "error") == 0.0
    assert r.decide(2, "error") is None  # a retry is no first attempt: it earns nothing
    assert r.budget is not None
    assert (r.budget.requests, r.budget.retries) == (2, 1)


def test_the_budget_refills_as_its_window_slides() -> None:
    clock = FakeClock()
    policy = RetryPolicy(kind="immediate", max_attempts=3, budget_ratio=0.5)
    r = retrier(policy, clock, budget_min_per_second=0.0, budget_window_s=10)
    assert r.decide(1, "timeout") is None  # one first attempt earns half a retry
    assert r.decide(1, "timeout") == 0.0
    assert r.decide(2, "timeout") is None
    clock.advance(10.0)
    assert r.decide(1, "timeout") is None  # the window forgot the earlier requests
    assert r.decide(1, "timeout") == 0.0


def test_retry_after_is_honoured_when_longer_than_the_backoff() -> None:
    policy = RetryPolicy(
        kind="backoff", max_attempts=5, base_millis=100, cap_millis=100, honor_retry_after=True
    )
    r = retrier(policy)
    assert r.decide(1, "limited", retry_after_s=3.0) == 3.0
    wait = r.decide(1, "shed", retry_after_s=0.0)  # shorter than the backoff: backoff wins
    assert wait is not None and 0.0 <= wait <= 0.1
    wait = r.decide(1, "shed", retry_after_s=None)
    assert wait is not None and wait <= 0.1
    nan_wait = r.decide(1, "shed", retry_after_s=float("nan"))
    assert nan_wait is not None and nan_wait <= 0.1


def test_retry_after_uses_the_max_of_backoff_and_hint() -> None:
    policy = RetryPolicy(
        kind="backoff", max_attempts=2, base_millis=1000, cap_millis=1000, honor_retry_after=True
    )
    r = retrier(policy)
    waits = [r.decide(1, "limited", retry_after_s=0.5) for _ in range(500)]
    assert all(w is not None and 0.5 <= w <= 1.0 for w in waits)
    assert any(w is not None and w > 0.5 for w in waits)  # the backoff sometimes longer
    assert any(w == 0.5 for w in waits)  # and sometimes the hint


def test_retry_after_is_capped() -> None:
    policy = RetryPolicy(kind="immediate", max_attempts=2, honor_retry_after=True)
    assert retrier(policy, retry_after_cap_s=10.0).decide(1, "shed", 3600.0) == 10.0


def test_retry_after_is_ignored_unless_the_policy_honours_it() -> None:
    r = retrier(RetryPolicy(kind="immediate", max_attempts=2))
    assert r.decide(1, "limited", retry_after_s=30.0) == 0.0


def test_the_breaker_opens_on_failures_and_admit_follows_it() -> None:
    clock = FakeClock()
    settings = BreakerSettings(failure_ratio=0.5, min_calls=4, open_seconds=5.0, probes=1)
    r = retrier(RetryPolicy(kind="immediate", max_attempts=2, breaker=settings), clock)
    assert r.breaker is not None
    for _ in range(4):
        assert r.admit()
        r.decide(1, "timeout")
    assert r.breaker.state is BreakerState.OPEN
    assert not r.admit()
    assert r.breaker.rejected == 1
    clock.advance(5.0)
    assert r.admit()  # the probe
    assert not r.admit()
    assert r.decide(1, "ok") is None
    assert r.breaker.state is BreakerState.CLOSED
    assert r.admit()


@pytest.mark.parametrize(("attempt", "outcome"), [(0, "ok"), (1, "refused"), (True, "ok")])
def test_bad_calls_are_refused(attempt: int, outcome: Outcome) -> None:
    with pytest.raises(ValueError):
        retrier(RetryPolicy()).decide(attempt, outcome)
