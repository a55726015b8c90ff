"""Full-jitter backoff: waits stay under the capped step and spread evenly across it."""

from __future__ import annotations

import random
import statistics

import pytest

from loadgen.resilience.backoff import FullJitter, immediate


@pytest.mark.parametrize("retry", [0, 1, 2, 3, 5, 8])
def test_waits_spread_uniformly_below_the_capped_step(retry: int) -> None:
    backoff = FullJitter(0.1, 2.0, random.Random(retry))
    bound = min(2.0, 0.1 * 2**retry)
    samples = [backoff(retry) for _ in range(10_000)]
    assert all(0.0 <= wait <= bound for wait in samples)
    assert statistics.fmean(samples) == pytest.approx(bound / 2, rel=0.05)
    # Full jitter: waits reach near zero and near the bound, not a band in between.
    assert min(samples) < 0.01 * bound
    assert max(samples) > 0.99 * bound


def test_the_step_doubles_until_the_cap() -> None:
    backoff = FullJitter(0.05, 1.0, random.Random(0))
    assert [backoff.bound_s(retry) for retry in range(7)] == pytest.approx(
        [0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    )


def test_the_cap_holds_however_many_retries_a_caller_counts() -> None:
    backoff = FullJitter(0.05, 1.0, random.Random(0))
    assert backoff.bound_s(10**6) == 1.0  # 2.0**1e6 would overflow
    assert all(backoff(5000) <= 1.0 for _ in range(1000))


def test_a_seeded_rng_repeats_the_same_waits() -> None:
    first = FullJitter(0.1, 5.0, random.Random(42))
    second = FullJitter(0.1, 5.0, random.Random(42))
    assert [first(n) for n in range(20)] == [second(n) for n in range(20)]


def test_cap_equal_to_base_is_a_constant_bound() -> None:
    backoff = FullJitter(0.3, 0.3, random.Random(1))
    assert {backoff.bound_s(n) for n in range(10)} == {0.3}


def test_immediate_never_waits() -> None:
    assert [immediate(n) for n in range(5)] == [0.0] * 5


@pytest.mark.parametrize(
    ("base_s", "cap_s", "named"),
    [
        (0.0, 1.0, "base_s"),
        (-0.1, 1.0, "base_s"),
        (float("nan"), 1.0, "base_s"),
        (True, 1.0, "base_s"),
        (0.5, 0.1, "cap_s"),
        (0.5, float("inf"), "cap_s"),
    ],
)
def test_bad_arguments_name_the_parameter(base_s: float, cap_s: float, named: str) -> None:
    with pytest.raises(ValueError, match=rf"^{named} "):
        FullJitter(base_s, cap_s, random.Random(0))


@pytest.mark.parametrize("retry", [-1, 1.5, True])
def test_a_retry_number_is_a_non_negative_integer(retry: int) -> None:
    with pytest.raises(ValueError, match=r"^retry "):
        FullJitter(0.1, 1.0, random.Random(0))(retry)
    with pytest.raises(ValueError, match=r"^retry "):
        immediate(retry)
