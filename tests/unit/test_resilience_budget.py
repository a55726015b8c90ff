"""The retry budget: retries stay within a share of first attempts over a sliding window."""

from __future__ import annotations

import pytest

from loadgen.resilience.budget import RetryBudget
from tests.support.clock import FakeClock


def spend_all(budget: RetryBudget, attempts_made: int = 1) -> int:
    """Retries the budget grants before its first refusal."""
    granted = 0
    while budget.try_spend_retry(attempts_made):
        granted += 1
        assert granted < 10_000, "the budget never refused"
    return granted


def test_a_tenth_of_the_first_attempts_may_be_retried() -> None:
    budget = RetryBudget(FakeClock(), ratio=0.1, min_per_second=0.0)
    for _ in range(100):
        budget.record_request()
    assert spend_all(budget) == 10
    assert budget.retries == 10
    assert budget.denied == 1


def test_the_floor_adds_min_per_second_times_the_window() -> None:
    budget = RetryBudget(FakeClock(), ratio=0.1, min_per_second=1.0, window_s=10)
    for _ in range(100):
        budget.record_request()
    assert budget.allowance() == pytest.approx(20.0)
    assert spend_all(budget) == 20


def test_the_floor_lets_a_quiet_client_retry_a_little() -> None:
    budget = RetryBudget(FakeClock(), ratio=0.1, min_per_second=0.5, window_s=10)
    assert spend_all(budget) == 5


def test_a_fractional_allowance_grants_only_whole_retries() -> None:
    budget = RetryBudget(FakeClock(), ratio=0.1, min_per_second=0.0)
    for _ in range(25):  # 2.5 retries' worth
        budget.record_request()
    assert spend_all(budget) == 2


def test_the_window_slides_after_its_length_of_time() -> None:
    clock = FakeClock(1000.0)
    budget = RetryBudget(clock, ratio=0.1, min_per_second=0.0, window_s=10)
    for _ in range(100):
        budget.record_request()
    assert spend_all(budget) == 10
    clock.advance(9.99)  # still the same ten one-second buckets
    assert not budget.try_spend_retry(1)
    assert budget.requests == 100
    clock.advance(0.01)  # second 1000 has left the window: its requests and retries with it
    assert budget.requests == 0
    assert budget.retries == 0
    assert not budget.try_spend_retry(1)  # no first attempts left to earn a retry
    for _ in range(30):
        budget.record_request()
    assert spend_all(budget) == 3


def test_buckets_leave_the_window_one_second_at_a_time() -> None:
    clock = FakeClock(0.0)
    budget = RetryBudget(clock, ratio=1.0, min_per_second=0.0, window_s=3)
    for _ in range(3):  # one request in each of seconds 0, 1, 2
        budget.record_request()
        clock.advance(1.0)
    assert clock.now == 3.0
    assert budget.requests == 2  # second 0 is gone, seconds 1 and 2 remain
    clock.advance(1.0)
    assert budget.requests == 1
    clock.advance(100.0)  # a long quiet spell empties every bucket
    assert budget.requests == 0


def test_retries_spent_earlier_in_the_window_count_against_it() -> None:
    clock = FakeClock(0.0)
    budget = RetryBudget(clock, ratio=0.5, min_per_second=0.0, window_s=10)
    for _ in range(4):
        budget.record_request()
    assert spend_all(budget) == 2
    clock.advance(5.0)
    for _ in range(4):
        budget.record_request()
    assert budget.allowance() == pytest.approx(4.0)
    assert spend_all(budget) == 2  # 4 allowed in the window, 2 already spent
    clock.advance(5.0)  # the first 4 requests and 2 retries leave
    assert (budget.requests, budget.retries) == (4, 2)
    assert not budget.try_spend_retry(1)


def test_max_attempts_caps_each_request_whatever_the_window_allows() -> None:
    budget = RetryBudget(FakeClock(), ratio=1.0, min_per_second=0.0, max_attempts=3)
    for _ in range(100):
        budget.record_request()
    assert budget.try_spend_retry(1)
    assert budget.try_spend_retry(2)
    assert not budget.try_spend_retry(3)  # the third attempt was the last
    assert budget.retries == 2


def test_a_clock_that_steps_back_keeps_the_current_bucket() -> None:
    clock = FakeClock(10.0)
    budget = RetryBudget(clock, ratio=0.1, min_per_second=0.0)
    for _ in range(10):
        budget.record_request()
    clock.now = 5.0
    assert budget.requests == 10


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"ratio": -0.1}, "ratio"),
        ({"ratio": float("nan")}, "ratio"),
        ({"min_per_second": -1.0}, "min_per_second"),
        ({"window_s": 0}, "window_s"),
        ({"window_s": 2.5}, "window_s"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_attempts": True}, "max_attempts"),
    ],
)
def test_bad_arguments_name_the_parameter(kwargs: dict[str, float], named: str) -> None:
    with pytest.raises(ValueError, match=rf"^{named} "):
        RetryBudget(FakeClock(), **kwargs)  # type: ignore[arg-type]
