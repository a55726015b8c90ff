"""Each balancing strategy's choice, on fake outstanding counts, latencies and a fake clock."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest

from loadgen.balancing import (
    PENALTY_S,
    STRATEGIES,
    LeastOutstanding,
    PeakEwma,
    PowerOfTwoChoices,
    RandomChoice,
    RoundRobin,
    StrategyError,
    parse_strategy,
)
from tests.support.clock import FakeClock


def load(balancer: LeastOutstanding | PowerOfTwoChoices | PeakEwma, counts: list[int]) -> None:
    """Put ``counts[i]`` requests out on target ``i``."""
    for index, count in enumerate(counts):
        for _ in range(count):
            balancer.started(index)


def test_the_registry_names_every_strategy_and_builds_it() -> None:
    assert list(STRATEGIES) == ["round-robin", "random", "least-outstanding", "p2c", "peak-ewma"]
    for name, factory in STRATEGIES.items():
        balancer = factory(3, random.Random(1), FakeClock())
        assert balancer.name == name
        assert balancer.outstanding == [0, 0, 0]
        assert 0 <= balancer.pick() < 3


def test_parse_strategy_accepts_the_names_and_names_the_flag_on_a_bad_one() -> None:
    assert parse_strategy("p2c") == "p2c"
    with pytest.raises(StrategyError) as caught:
        parse_strategy("least-connections")
    assert caught.value.field == "--balance"
    assert "least-outstanding" in str(caught.value) and "'least-connections'" in str(caught.value)
    with pytest.raises(ValueError, match=r"^load\.balance: "):
        parse_strategy(None, field="load.balance")


def test_a_balancer_needs_a_target_and_matched_starts_and_finishes() -> None:
    with pytest.raises(ValueError, match="at least one target"):
        RoundRobin(0, random.Random(1), FakeClock())
    balancer = LeastOutstanding(2, random.Random(1), FakeClock())
    balancer.started(1)
    balancer.finished(1, 0.01, True)
    assert balancer.outstanding == [0, 0]
    with pytest.raises(ValueError, match="never started"):
        balancer.finished(1, 0.01, True)


def test_round_robin_cycles_through_the_targets() -> None:
    balancer = RoundRobin(3, random.Random(1), FakeClock())
    balancer.started(0)  # outstanding requests do not change the order
    assert [balancer.pick() for _ in range(7)] == [0, 1, 2, 0, 1, 2, 0]


def test_random_spreads_uniformly() -> None:
    balancer = RandomChoice(3, random.Random(42), FakeClock())
    picks = Counter(balancer.pick() for _ in range(30_000))
    assert set(picks) == {0, 1, 2}
    for count in picks.values():
        assert abs(count - 10_000) <= 200  # within 2% of an equal share


def test_random_is_replayed_by_its_seed() -> None:
    first = RandomChoice(5, random.Random(7), FakeClock())
    second = RandomChoice(5, random.Random(7), FakeClock())
    assert [first.pick() for _ in range(50)] == [second.pick() for _ in range(50)]


def test_least_outstanding_always_picks_the_minimum() -> None:
    rng = random.Random(3)
    balancer = LeastOutstanding(5, random.Random(1), FakeClock())
    for _ in range(500):
        index = rng.randrange(5)
        if balancer.outstanding[index] and rng.random() < 0.5:
            balancer.finished(index, 0.01, True)
        else:
            balancer.started(index)
        choice = balancer.pick()
        assert balancer.outstanding[choice] == min(balancer.outstanding)


def test_least_outstanding_breaks_ties_round_robin() -> None:
    balancer = LeastOutstanding(4, random.Random(1), FakeClock())
    assert [balancer.pick() for _ in range(6)] == [0, 1, 2, 3, 0, 1]
    load(balancer, [0, 2, 0, 2])
    assert [balancer.pick() for _ in range(4)] == [2, 0, 2, 0]


def test_least_outstanding_levels_the_counts_as_requests_start() -> None:
    balancer = LeastOutstanding(3, random.Random(1), FakeClock())
    load(balancer, [4, 0, 1])
    for _ in range(5):
        balancer.started(balancer.pick())
    assert balancer.outstanding == [4, 3, 3]


def test_p2c_never_picks_the_busiest_when_counts_differ() -> None:
    balancer = PowerOfTwoChoices(3, random.Random(11), FakeClock())
    load(balancer, [1, 5, 2])
    picks = Counter(balancer.pick() for _ in range(3_000))
    assert picks[1] == 0
    # Target 0 wins both pairs it is drawn in (2 of 3 pairs); target 2 only the pair {1, 2}.
    assert abs(picks[0] - 2_000) <= 120 and abs(picks[2] - 1_000) <= 120


def test_p2c_draws_two_distinct_targets() -> None:
    # With two targets both are always drawn, so p2c is exactly least-outstanding.
    balancer = PowerOfTwoChoices(2, random.Random(5), FakeClock())
    load(balancer, [3, 2])
    assert {balancer.pick() for _ in range(200)} == {1}


def test_p2c_with_equal_counts_spreads_like_random() -> None:
    balancer = PowerOfTwoChoices(3, random.Random(8), FakeClock())
    picks = Counter(balancer.pick() for _ in range(30_000))
    assert all(abs(count - 10_000) <= 200 for count in picks.values())


def test_p2c_over_one_target_picks_it() -> None:
    assert PowerOfTwoChoices(1, random.Random(1), FakeClock()).pick() == 0


def feed(
    balancer: PeakEwma, index: int, latency_s: float, clock: FakeClock, *, ok: bool = True
) -> None:
    balancer.started(index)
    clock.advance(latency_s)
    balancer.finished(index, latency_s, ok)


def test_peak_ewma_tries_every_new_node_once_before_flooding_any() -> None:
    clock = FakeClock()
    balancer = PeakEwma(3, random.Random(1), clock)
    first = balancer.pick()
    balancer.started(first)
    # The probed node has a request out and no latency: it costs the penalty.
    assert balancer.cost(first) == PENALTY_S + 1
    second = balancer.pick()
    balancer.started(second)
    third = balancer.pick()
    assert sorted([first, second, third]) == [0, 1, 2]


def test_peak_ewma_prefers_the_faster_node() -> None:
    clock = FakeClock()
    balancer = PeakEwma(3, random.Random(1), clock)
    for _ in range(5):
        feed(balancer, 0, 0.050, clock)
        feed(balancer, 1, 0.010, clock)
        feed(balancer, 2, 0.030, clock)
    assert [balancer.pick() for _ in range(3)] == [1, 1, 1]
    # Outstanding requests raise the cost: 0.010 * (4 + 1) > 0.030 * 1.
    load(balancer, [0, 4, 0])
    assert balancer.pick() == 2


def test_peak_ewma_reacts_at_once_to_a_spike_and_decays_over_tau() -> None:
    clock = FakeClock()
    balancer = PeakEwma(2, random.Random(1), clock, tau_s=10.0)
    for _ in range(10):
        feed(balancer, 0, 0.010, clock)
        feed(balancer, 1, 0.020, clock)
    assert balancer.pick() == 0
    feed(balancer, 0, 1.0, clock)
    assert balancer.latency_estimate(0) == pytest.approx(1.0)
    assert balancer.pick() == 1  # from the first slow answer on
    # Left alone for one time constant, the estimate read for a pick is 1/e of the spike.
    clock.advance(10.0)
    assert balancer.latency_estimate(0) == pytest.approx(math.exp(-1.0))
    # A fast answer after tau moves it by 1 - 1/e of the way.
    balancer.started(0)
    balancer.finished(0, 0.010, True)
    assert balancer.latency_estimate(0) == pytest.approx(
        math.exp(-1.0) + 0.010 * (1 - math.exp(-1.0))
    )


def test_peak_ewma_moves_little_on_a_fast_answer_soon_after_a_slow_one() -> None:
    clock = FakeClock()
    balancer = PeakEwma(1, random.Random(1), clock, tau_s=10.0)
    feed(balancer, 0, 0.500, clock)
    feed(balancer, 0, 0.010, clock)  # 10 ms later: weight exp(-0.001)
    assert balancer.latency_estimate(0) == pytest.approx(0.5, rel=2e-3)


def test_peak_ewma_does_not_let_a_failure_make_a_node_look_faster() -> None:
    clock = FakeClock()
    balancer = PeakEwma(2, random.Random(1), clock)
    feed(balancer, 0, 0.100, clock)
    feed(balancer, 1, 0.050, clock)
    for _ in range(20):
        feed(balancer, 0, 0.001, clock, ok=False)  # refused or shed, fast
    assert balancer.latency_estimate(0) >= 0.099
    assert balancer.pick() == 1


def test_peak_ewma_refuses_a_bad_tau() -> None:
    for tau in (0, -1.0, math.inf, True):
        with pytest.raises(ValueError, match="tau_s"):
            PeakEwma(2, random.Random(1), FakeClock(), tau_s=tau)
