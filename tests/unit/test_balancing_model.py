"""The balancing model: each strategy's shares and p99 on a fleet of unequal nodes."""

from __future__ import annotations

import pytest
from nodelab.model.balancing import (
    NodeProfile,
    compare_strategies,
    predict_balancing,
    service_rates,
)
from nodelab.model.capacity import predict

from loadgen.balancing import STRATEGIES, StrategyError

# Three nodes of 5 workers, the third five times slower (module 1, phase 4's slow node).
FLEET = (NodeProfile(10, 5), NodeProfile(10, 5), NodeProfile(50, 5))


def test_service_rate_is_workers_over_service_time() -> None:
    assert service_rates(FLEET) == pytest.approx((0.5, 0.5, 0.1))


@pytest.mark.parametrize("strategy", ["round-robin", "random"])
@pytest.mark.parametrize("concurrency", [1, 3, 15, 30, 60])
def test_blind_strategies_give_every_node_an_equal_share(strategy: str, concurrency: int) -> None:
    outcome = predict_balancing(strategy, FLEET, concurrency)
    assert outcome.shares == pytest.approx((1 / 3, 1 / 3, 1 / 3))
    assert sum(node.clients for node in outcome.nodes) == pytest.approx(concurrency)


def test_round_robin_piles_the_clients_on_the_slow_node() -> None:
    outcome = predict_balancing("round-robin", FLEET, 30)
    # The slow node saturates at 0.1 requests/ms; each fast node holds 0.1 * 10 ms = 1 client.
    assert [node.clients for node in outcome.nodes] == pytest.approx([1, 1, 28])
    assert outcome.throughput_rps == pytest.approx(300)
    assert outcome.p99_node == 2
    # 28 clients for 5 workers: 6 rounds of 50 ms.
    assert outcome.p99_ms == pytest.approx(300)


@pytest.mark.parametrize("concurrency", [3, 15, 30, 60])
def test_least_outstanding_shares_follow_the_service_rates(concurrency: int) -> None:
    outcome = predict_balancing("least-outstanding", FLEET, concurrency)
    assert outcome.shares == pytest.approx((5 / 11, 5 / 11, 1 / 11))
    assert [node.clients for node in outcome.nodes] == pytest.approx([concurrency / 3] * 3)


def test_least_outstanding_shares_are_per_service_rate_once_workers_are_full() -> None:
    # Unequal workers: proportional to mu = W / S only when C / n fills every node.
    fleet = (NodeProfile(10, 10), NodeProfile(10, 2))
    saturated = predict_balancing("least-outstanding", fleet, 40)
    assert saturated.shares == pytest.approx((10 / 12, 2 / 12))
    light = predict_balancing("least-outstanding", fleet, 4)
    assert light.shares == pytest.approx((0.5, 0.5))


def test_peak_ewma_shares_stay_close_to_the_service_rates() -> None:
    outcome = predict_balancing("peak-ewma", FLEET, 30)
    assert outcome.shares == pytest.approx((5 / 11, 5 / 11, 1 / 11), abs=0.01)
    # It holds fewer clients on the slow node than least-outstanding's equal 10.
    assert outcome.nodes[2].clients < 10 < outcome.nodes[0].clients
    assert sum(node.clients for node in outcome.nodes) == pytest.approx(30)


def test_p2c_matches_least_outstanding_when_its_caps_allow() -> None:
    lo = predict_balancing("least-outstanding", FLEET, 30)
    p2c = predict_balancing("p2c", FLEET, 30)
    assert p2c.shares == pytest.approx(lo.shares)


def test_p2c_sits_between_random_and_least_outstanding_when_a_node_is_much_faster() -> None:
    fleet = (NodeProfile(5, 5), NodeProfile(50, 5), NodeProfile(50, 5))
    rr, lo, p2c = (
        predict_balancing(name, fleet, 30) for name in ("random", "least-outstanding", "p2c")
    )
    # The least busy node is drawn in 2 of 3 pairs: p2c can send it at most 2/3.
    assert p2c.shares[0] == pytest.approx(2 / 3)
    assert rr.shares[0] < p2c.shares[0] < lo.shares[0]
    assert rr.throughput_rps < p2c.throughput_rps < lo.throughput_rps
    assert lo.p99_ms <= p2c.p99_ms <= rr.p99_ms


@pytest.mark.parametrize("concurrency", [15, 30, 60])
def test_the_best_strategy_beats_round_robin_on_p99(concurrency: int) -> None:
    outcomes = {o.strategy: o for o in compare_strategies(FLEET, concurrency)}
    assert list(outcomes) == list(STRATEGIES)
    best = min(outcomes.values(), key=lambda o: o.p99_ms)
    assert best.p99_ms < outcomes["round-robin"].p99_ms
    assert best.throughput_rps > outcomes["round-robin"].throughput_rps


def test_each_node_p99_is_the_capacity_model_for_its_clients() -> None:
    outcome = predict_balancing("least-outstanding", FLEET, 30)
    slow = outcome.nodes[2]
    expected = predict(service_ms=50, cpu_ms=50, workers=5, replicas=1, concurrency=10, cores=5)
    assert slow.prediction == expected
    assert slow.p99_ms == pytest.approx(100)  # 10 clients, 5 workers: 2 rounds of 50 ms
    assert outcome.p99_ms == pytest.approx(100) and outcome.p99_node == 2


def test_a_node_with_under_one_percent_of_requests_does_not_set_the_fleet_p99() -> None:
    # A hundredfold slower node gets ~0.5% of least-outstanding's requests.
    fleet = (NodeProfile(10, 1), NodeProfile(10, 1), NodeProfile(1000, 1))
    outcome = predict_balancing("least-outstanding", fleet, 3)
    assert outcome.nodes[2].share < 0.01
    assert outcome.p99_node != 2
    assert outcome.p99_ms == pytest.approx(10)


def test_a_fleet_of_equal_nodes_gets_equal_shares_from_every_strategy() -> None:
    fleet = (NodeProfile(20, 4),) * 3
    for outcome in compare_strategies(fleet, 24):
        assert outcome.shares == pytest.approx((1 / 3,) * 3), outcome.strategy
        assert outcome.p99_ms == pytest.approx(40), outcome.strategy


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(StrategyError, match=r"^strategy: "):
        predict_balancing("fastest", FLEET, 3)
    with pytest.raises(ValueError, match="at least one node"):
        predict_balancing("p2c", (), 3)
    with pytest.raises(ValueError, match="concurrency"):
        predict_balancing("p2c", FLEET, 0)
    with pytest.raises(ValueError, match="service_ms"):
        NodeProfile(0, 1)
    with pytest.raises(ValueError, match="workers"):
        NodeProfile(10, 0)
