"""The storm model: metastable retry storms, what stops them, and the words that explain them."""

from __future__ import annotations

from typing import Any

import pytest
from nodelab.model.storm import (
    RECOVERY_RATIO,
    RECOVERY_SECONDS,
    NodeProtection,
    StormPrediction,
    StormScenario,
    Trigger,
    amplification_at_timeout,
    fleet_capacity_rps,
    predict_storm,
    simulate,
)

from loadgen import timeline
from loadgen.resilience import BreakerSettings, RetryPolicy

IMMEDIATE = RetryPolicy(kind="immediate", max_attempts=3)
# 5 workers x 100 ms: mu = 50 req/s; the trigger holds each worker 600 ms for 5 s.
SLOW = Trigger(start_s=10, duration_s=5, mode="slow", extra_ms=500)
FAIL = Trigger(start_s=10, duration_s=5, mode="fail")


def _scenario(**overrides: Any) -> StormScenario:
    arguments: dict[str, Any] = {
        "rate_rps": 40.0,
        "duration_s": 90.0,
        "timeout_s": 1.0,
        "service_ms": 100.0,
        "workers": 5,
        "replicas": 1,
        "trigger": SLOW,
        "policy": IMMEDIATE,
    }
    arguments.update(overrides)
    return StormScenario(**arguments)


def _recovery(prediction: StormPrediction) -> float:
    """Recovery seconds, never recovering as infinitely slow."""
    return float("inf") if prediction.recovery_s is None else prediction.recovery_s


def test_capacity_is_replicas_times_workers_over_service_time_with_a_cores_bound() -> None:
    assert fleet_capacity_rps(100.0, 5) == pytest.approx(50.0)
    assert fleet_capacity_rps(100.0, 10, cores=2.0, cpu_ms=80.0) == pytest.approx(25.0)
    # I/O mode: the work is a wait, the cores do not bound it.
    assert fleet_capacity_rps(100.0, 10, cores=2.0, cpu_ms=0.0) == pytest.approx(100.0)
    p = predict_storm(_scenario())
    assert p.capacity_rps == pytest.approx(50.0)
    assert p.capacity_during_rps == pytest.approx(5 / 0.6)


def test_amplification_at_timeout_is_attempts_or_one_plus_the_budget() -> None:
    assert amplification_at_timeout(RetryPolicy(), 40.0, 1.0) == 1.0
    assert amplification_at_timeout(IMMEDIATE, 40.0, 1.0) == 3.0
    budget = RetryPolicy(kind="immediate", max_attempts=3, budget_ratio=0.1)
    assert amplification_at_timeout(budget, 40.0, 1.0) == pytest.approx(1.0 + 0.1 + 1.0 / 40)
    assert amplification_at_timeout(budget, 40.0, 0.0) == pytest.approx(1.1)
    # A budget never allows more than maxAttempts.
    assert amplification_at_timeout(budget, 0.1, 1.0) == pytest.approx(3.0)


def test_naive_immediate_retries_under_capacity_do_not_recover() -> None:
    p = predict_storm(_scenario())
    assert p.offered_rps < p.capacity_rps
    assert p.load_at_timeout_rps == pytest.approx(120.0)
    assert p.sustains
    assert p.recovery_s is None and not p.recovered
    assert p.drain_s is None
    assert p.goodput_after is not None and p.goodput_after < 0.05
    assert p.trigger_amplification is not None and p.trigger_amplification > 2.0
    # After the trigger every offered request makes all three attempts.
    last = p.timeline[80]
    assert last.attempts == pytest.approx(3 * last.offered)
    assert last.successes == pytest.approx(0.0)
    assert p.timeline[-5].backlog > p.backlog_at_trigger_end
    words = " ".join(p.reasons)
    assert "immediate retries x3 make 120 attempts/s" in words
    assert "the queue never drains" in words
    assert "does not recover" in words


def test_a_retry_budget_lets_the_same_storm_recover() -> None:
    budget = RetryPolicy(kind="immediate", max_attempts=3, budget_ratio=0.1)
    p = predict_storm(_scenario(policy=budget))
    assert not p.sustains
    assert p.load_at_timeout_rps == pytest.approx(45.0)
    assert p.recovery_s is not None
    # The closed form and the simulation agree on when latency is back under the timeout.
    assert p.drain_s is not None
    assert p.recovery_s == pytest.approx(p.drain_s, abs=12.0)
    assert p.amplification is not None and p.amplification < 1.2


def test_shedding_lets_the_same_storm_recover_at_once() -> None:
    p = predict_storm(_scenario(protection=NodeProtection(max_queue=1, retry_after_s=1.0)))
    assert not p.sustains
    assert p.recovery_s is not None and p.recovery_s <= 1
    # The queue is bounded: at most the requests in service and one waiting per worker.
    assert max(second.backlog for second in p.timeline) <= 10.0 + 1e-9
    assert p.goodput_after is not None and p.goodput_after >= RECOVERY_RATIO
    assert "keeps latency <= 200 ms < the 1 s timeout" in " ".join(p.reasons)


def test_honoring_retry_after_spreads_the_shed_retries() -> None:
    shedding = NodeProtection(max_queue=1, retry_after_s=2.0)
    naive = predict_storm(_scenario(protection=shedding))
    polite = predict_storm(
        _scenario(
            protection=shedding,
            policy=RetryPolicy(kind="immediate", max_attempts=3, honor_retry_after=True),
        )
    )
    assert naive.trigger_amplification is not None and polite.trigger_amplification is not None
    assert polite.trigger_amplification < naive.trigger_amplification


def test_a_circuit_breaker_stops_the_storm() -> None:
    policy = RetryPolicy(kind="immediate", max_attempts=3, breaker=BreakerSettings())
    p = predict_storm(_scenario(policy=policy))
    assert p.sustains  # the retry load alone would never drain...
    assert p.breaker_openings >= 1
    assert p.recovery_s is not None  # ...but no attempt goes while the breaker is open
    assert any(second.breaker_open for second in p.timeline)
    assert "the breaker stops the attempts" in " ".join(p.reasons)


def test_no_trigger_under_capacity_amplifies_nothing_and_serves_everything() -> None:
    p = predict_storm(_scenario(trigger=None))
    assert p.amplification == pytest.approx(1.0)
    assert p.goodput == pytest.approx(1.0)
    assert p.trigger_amplification is None and p.recovery_s is None
    for second in p.timeline[1:89]:
        assert second.successes == pytest.approx(40.0)
        assert second.latency_ms == pytest.approx(100.0)


def test_backoff_lowers_the_trigger_amplification() -> None:
    backoff = RetryPolicy(kind="backoff", max_attempts=3, base_millis=1000, cap_millis=4000)
    for trigger in (SLOW, FAIL):
        immediate = predict_storm(_scenario(trigger=trigger)).trigger_amplification
        spread = predict_storm(_scenario(trigger=trigger, policy=backoff)).trigger_amplification
        assert immediate is not None and spread is not None
        assert spread < immediate - 0.2, trigger.mode


def test_a_fail_trigger_fails_everything_inside_it_and_immediate_retries_triple_it() -> None:
    p = predict_storm(_scenario(trigger=FAIL))
    assert p.trigger_amplification == pytest.approx(3.0, abs=0.05)
    assert p.goodput_during is not None and p.goodput_during < 0.05
    # Failing fast builds no queue, so nothing holds latency past the timeout afterwards.
    assert p.backlog_at_trigger_end == pytest.approx(0.0)
    assert p.recovery_s == 0


@pytest.mark.parametrize("rate", [15.0, 20.0, 30.0, 40.0])
@pytest.mark.parametrize("kind", ["immediate", "backoff"])
def test_more_retries_never_predict_a_faster_recovery(rate: float, kind: str) -> None:
    recoveries = [_recovery(predict_storm(_scenario(rate_rps=rate, policy=RetryPolicy())))]
    for attempts in range(2, 7):
        policy = RetryPolicy(kind=kind, max_attempts=attempts)  # type: ignore[arg-type]
        recoveries.append(_recovery(predict_storm(_scenario(rate_rps=rate, policy=policy))))
    assert recoveries == sorted(recoveries)
    assert recoveries[0] < float("inf")  # without retries every one of these recovers


def test_the_recovery_rule_is_the_measured_timelines() -> None:
    assert (RECOVERY_RATIO, RECOVERY_SECONDS) == (
        timeline.RECOVERY_RATIO,
        timeline.RECOVERY_SECONDS,
    )


def test_the_timeline_is_per_second_and_covers_the_run_and_its_timeout() -> None:
    seconds = simulate(_scenario(duration_s=20.0, timeout_s=1.0, trigger=None))
    assert [second.t for second in seconds] == list(range(len(seconds)))
    assert len(seconds) == 22  # 20 s of load, the last timeout, and the final step
    assert sum(second.offered for second in seconds) == pytest.approx(800.0)


def test_to_status_is_camel_case_and_leaves_the_timeline_out() -> None:
    p = predict_storm(_scenario())
    status = p.to_status()
    assert status["recovered"] is False
    assert "recoverySeconds" not in status and "drainSeconds" not in status
    assert status["loadAtTimeoutRps"] == pytest.approx(120.0)
    assert status["capacityRps"] == pytest.approx(50.0)
    assert status["reasons"] == list(p.reasons)
    assert "timeline" not in status
    assert {"goodputDuringTrigger", "goodputAfterTrigger", "triggerAmplification"} <= set(status)
    points = p.timeline_points()
    assert points[0]["t"] == 0 and {"offered", "attempts", "successes"} <= set(points[0])


def test_scenarios_refuse_nonsense() -> None:
    with pytest.raises(ValueError):
        _scenario(rate_rps=0.0)
    with pytest.raises(ValueError):
        Trigger(start_s=1, duration_s=1, mode="slow")  # slow needs extra_ms
    with pytest.raises(ValueError):
        NodeProtection(max_queue=-1)
