"""The capacity model: the bottleneck law, Little's law, and the words that explain them."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from nodelab.model import capacity

# fib(35) on one core, as measured on these machines: the workshop's phase 1-4 service time.
FIB35_MS = 2690.0


def _predict(**overrides: Any) -> capacity.Prediction:
    arguments: dict[str, Any] = {
        "service_ms": FIB35_MS,
        "cpu_ms": FIB35_MS,
        "workers": 1,
        "replicas": 1,
        "concurrency": 5,
        "cores": 8.0,
    }
    arguments.update(overrides)
    return capacity.predict(**arguments)


def test_phase_one_queues_behind_one_worker() -> None:
    p = _predict()
    assert p.bottleneck == "workers"
    assert p.throughput_rps == pytest.approx(1000 / FIB35_MS)
    # Little's law: five clients, one served at a time -> five service times in the system.
    assert p.latency_ms == pytest.approx(5 * FIB35_MS)
    assert p.capacity == 1
    assert "4 requests wait in a queue" in p.explanation
    assert "5 clients for 1 worker:" in p.explanation


def test_phase_two_serves_every_client_at_once() -> None:
    p = _predict(workers=10)
    assert p.bottleneck == "clients"
    assert p.latency_ms == pytest.approx(FIB35_MS)
    assert p.throughput_rps == pytest.approx(5 * 1000 / FIB35_MS)
    assert "never fill 10 workers" in p.explanation
    assert "latency is the service time" in p.explanation


def test_phase_three_is_capped_by_the_cores() -> None:
    p = _predict(workers=10, concurrency=20, cores=5.0)
    assert p.bottleneck == "cores"
    assert p.throughput_rps == pytest.approx(5 * 1000 / FIB35_MS)
    assert p.latency_ms == pytest.approx(20 / 5 * FIB35_MS)
    assert "on 5 cores" in p.explanation and "capped by the hardware" in p.explanation


def test_phase_four_names_the_fleet_as_replicas_times_workers() -> None:
    p = _predict(workers=10, replicas=3, concurrency=20, cores=64.0)
    assert p.bottleneck == "clients"
    assert p.capacity == 30
    assert "3 x 10 workers" in p.explanation


def test_ties_go_to_the_clients_then_the_workers() -> None:
    # C == W*R == cores: nothing queues, so the answer is "clients".
    assert _predict(workers=4, concurrency=4, cores=4.0).bottleneck == "clients"
    # W*R == cores < C: the queue forms at the workers first.
    assert _predict(workers=4, concurrency=8, cores=4.0).bottleneck == "workers"


def test_pure_waiting_ignores_the_cores() -> None:
    p = _predict(cpu_ms=0.0, service_ms=100.0, workers=50, concurrency=40, cores=1.0)
    assert p.bottleneck == "clients"
    assert p.throughput_rps == pytest.approx(400.0)
    assert p.latency_ms == pytest.approx(100.0)


def test_mixed_work_counts_only_the_cpu_part_against_the_cores() -> None:
    # 100 ms per request of which 10 ms compute: 2 cores serve 200 requests/s of CPU,
    # but 8 workers only 80 requests/s: the workers are the bottleneck.
    p = _predict(service_ms=100.0, cpu_ms=10.0, workers=8, concurrency=16, cores=2.0)
    assert p.bottleneck == "workers"
    assert p.throughput_rps == pytest.approx(80.0)
    assert p.latency_ms == pytest.approx(200.0)


def test_cpu_time_is_clamped_into_the_service_time() -> None:
    assert _predict(service_ms=100.0, cpu_ms=500.0).cpu_ms == 100.0
    assert _predict(service_ms=100.0, cpu_ms=-5.0).cpu_ms == 0.0


def test_latency_never_drops_below_the_service_time() -> None:
    p = _predict(workers=10, concurrency=1)
    assert p.latency_ms == pytest.approx(FIB35_MS)


def test_more_workers_never_hurt_and_more_cores_never_hurt() -> None:
    base = _predict(workers=4, concurrency=20, cores=2.0)
    assert _predict(workers=8, concurrency=20, cores=2.0).throughput_rps >= base.throughput_rps
    assert _predict(workers=4, concurrency=20, cores=8.0).throughput_rps >= base.throughput_rps


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"service_ms": 0.0}, "service_ms must be positive"),
        ({"service_ms": -1.0}, "service_ms must be positive"),
        ({"workers": 0}, "must be positive"),
        ({"replicas": 0}, "must be positive"),
        ({"concurrency": 0}, "must be positive"),
        ({"cores": 0.0}, "must be positive"),
    ],
)
def test_invalid_inputs_are_refused(overrides: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        _predict(**overrides)


def test_to_status_is_camel_case_and_rounded() -> None:
    status = _predict(service_ms=100.0 / 3, cpu_ms=100.0 / 3).to_status()
    assert {
        "throughputRps",
        "latencyMillis",
        "bottleneck",
        "explanation",
        "serviceMillis",
        "cpuMillis",
        "cores",
        "capacity",
    } <= set(status)
    assert status["serviceMillis"] == 33.33
    assert status["throughputRps"] == round(1000 / (100 / 3), 3)
    assert all("_" not in key for key in status)


def test_prediction_is_frozen() -> None:
    p = _predict()
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.bottleneck = "cores"  # type: ignore[misc]


def test_queue_rounds_set_p99_when_workers_only_wait() -> None:
    # 5 clients on 4 workers that compute nothing themselves: the last client waits a round.
    p = _predict(service_ms=100.0, cpu_ms=0.0, work_ms=0.0, workers=4, concurrency=5)
    assert p.p99_ms == pytest.approx(200.0)
    assert (p.p99_cause, p.rounds, p.stack_depth) == ("queue", 2, 1)
    assert p.latency_ms == pytest.approx(125.0)


def test_one_worker_queues_every_client() -> None:
    # Phase 1: a single worker is one queue; its stack and its FIFO are the same C rounds.
    p = _predict(service_ms=30.0, cpu_ms=30.0, workers=1, concurrency=5, cores=2.0)
    assert p.p99_ms == pytest.approx(150.0)
    assert p.p99_cause == "queue" and p.rounds == 5 and p.sharing == 1.0


def test_sharing_counts_only_the_time_requests_compute() -> None:
    # 10 requests in service, each computing 10% of its time: 1 computes on average, 2 cores.
    waiting = _predict(service_ms=100.0, cpu_ms=10.0, work_ms=0.0, workers=10, concurrency=10,
                       cores=2.0)  # fmt: skip
    assert waiting.sharing == 1.0
    # All CPU: 10 computing on 5 cores take twice as long each.
    computing = _predict(service_ms=100.0, cpu_ms=100.0, workers=10, concurrency=10, cores=5.0)
    assert computing.sharing == pytest.approx(2.0)
    assert capacity.sharing_factor(1.0, 2.0) == 1.0
    assert capacity.sharing_factor(5.0, 2.0) == pytest.approx(2.5)


def test_accept_spread_is_one_worker_per_core_at_most_w() -> None:
    assert capacity.accept_spread(10, 1, 2.0, shared_cores=True) == 2
    assert capacity.accept_spread(10, 3, 2.0, shared_cores=True) == 2  # one machine's cores
    assert capacity.accept_spread(10, 3, 15.0, shared_cores=False) == 5  # 5 cores per pod
    assert capacity.accept_spread(1, 1, 8.0, shared_cores=True) == 1
    assert capacity.accept_spread(4, 1, 0.5, shared_cores=True) == 1


def test_a_burst_stacks_on_one_worker_per_core_and_the_sharing_ramps() -> None:
    # Phase 2 on 2 cores: 5 connections land on 2 workers (3 + 2). The deepest worker's three
    # computations run while 2, then 4, then all 5 requests compute: x1, x2, x2.5.
    p = _predict(service_ms=30.0, cpu_ms=30.0, workers=10, concurrency=5, cores=2.0,
                 shared_cores=True)  # fmt: skip
    assert (p.p99_cause, p.stack_depth) == ("stack", 3)
    assert p.p99_ms == pytest.approx(30.0 * (1 + 2 + 2.5))
    # The part outside the worker's own computation is paid once, not per stacked request.
    q = _predict(service_ms=30.0, cpu_ms=30.0, work_ms=25.0, workers=10, concurrency=5,
                 cores=2.0, shared_cores=True)  # fmt: skip
    assert q.p99_ms == pytest.approx(5.0 + 25.0 * (1 + 2 + 2.5))


def test_replicas_start_with_one_stack_per_core_each() -> None:
    # 3 replicas, 20 clients: 7 per node over 2 workers each -> depth 4; 6 workers start.
    p = _predict(service_ms=30.0, cpu_ms=30.0, workers=10, replicas=3, concurrency=20,
                 cores=2.0, shared_cores=True)  # fmt: skip
    assert p.stack_depth == 4
    # Computing at once: 6, 12, 18, then all 20 -> x3, x6, x9, x10.
    assert p.p99_ms == pytest.approx(30.0 * (3 + 6 + 9 + 10))


def test_no_stack_when_the_worker_only_waits() -> None:
    p = _predict(service_ms=40.0, cpu_ms=4.0, work_ms=0.0, workers=10, concurrency=5, cores=2.0,
                 shared_cores=True)  # fmt: skip
    assert p.stack_depth == 1 and p.p99_cause != "stack"


def test_the_first_rounds_cpu_competes_for_the_cores() -> None:
    # 20 requests of 40 ms, 5 of them CPU, on 30 workers and 2 cores: the last one's CPU is
    # done after 20 x 5 / 2 = 50 ms; its 35 ms of waiting comes on top.
    p = _predict(service_ms=40.0, cpu_ms=5.0, work_ms=1.0, workers=10, replicas=3,
                 concurrency=20, cores=2.0, shared_cores=True)  # fmt: skip
    assert p.p99_cause == "burst"
    assert p.p99_ms == pytest.approx(35.0 + 20 * 5.0 / 2)


def test_later_rounds_of_the_queue_follow_the_first_rounds_cpu() -> None:
    # Phase 3 in I/O mode: 20 clients on 10 workers, 30 ms of which 3 ms CPU (1 ms in the
    # worker). The first round's CPU: 10 in service x 3 ms + 10 queued x 2 ms over 2 cores
    # = 25 ms; after its 27 ms of waiting, the second round takes one more service time.
    p = _predict(service_ms=30.0, cpu_ms=3.0, work_ms=1.0, workers=10, concurrency=20,
                 cores=2.0, shared_cores=True)  # fmt: skip
    assert p.p99_cause == "burst" and p.rounds == 2
    assert p.p99_ms == pytest.approx(30.0 + 27.0 + (10 * 3.0 + 10 * 2.0) / 2)
    # A single worker computing: only it computes in the first round, so nothing piles up
    # beyond its own queue of 5 rounds.
    one = _predict(service_ms=30.0, cpu_ms=30.0, work_ms=25.0, workers=1, concurrency=5,
                   cores=2.0, shared_cores=True)  # fmt: skip
    assert one.p99_ms == pytest.approx(150.0) and one.p99_cause == "queue"


def test_no_request_outlasts_the_run() -> None:
    # Phase 3 on 2 cores: a stack of 10 would take 40 computations' time, but 40 requests at
    # 2 cores / 30 ms are done after 600 ms.
    unbounded = _predict(service_ms=30.0, cpu_ms=30.0, workers=10, concurrency=20, cores=2.0,
                         shared_cores=True)  # fmt: skip
    assert unbounded.p99_cause == "stack" and unbounded.p99_ms == pytest.approx(30.0 * 40)
    assert unbounded.run_ms is None
    p = _predict(service_ms=30.0, cpu_ms=30.0, workers=10, concurrency=20, cores=2.0,
                 shared_cores=True, requests=40)  # fmt: skip
    assert p.p99_cause == "run"
    assert p.run_ms == pytest.approx(600.0) and p.p99_ms == pytest.approx(600.0)


def test_p99_is_never_below_the_mean_or_one_service_time() -> None:
    for concurrency in (1, 2, 5, 20, 30):
        for workers in (1, 2, 10):
            p = _predict(service_ms=30.0, cpu_ms=30.0, workers=workers, concurrency=concurrency,
                         cores=2.0, shared_cores=True, requests=concurrency)  # fmt: skip
            assert p.p99_ms >= p.latency_ms >= p.service_ms


def test_predicted_verdict_is_p99_against_the_slo() -> None:
    p = _predict(service_ms=100.0, cpu_ms=0.0, work_ms=0.0, workers=4, concurrency=5)
    assert p.verdict(200.0) == "OK" and p.verdict(199.9) == "Crashed"


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"workers": 1, "concurrency": 5, "cpu_ms": 0.0, "work_ms": 0.0}, "5 rounds of service"),
        ({"workers": 10, "concurrency": 5, "shared_cores": True}, "pile 3 requests on one worker"),
        ({"workers": 10, "concurrency": 20, "shared_cores": True, "requests": 40}, "end of the"),
        ({"workers": 10, "concurrency": 2, "cpu_ms": 0.0, "work_ms": 0.0}, "one service time"),
        (
            {"service_ms": 40.0, "cpu_ms": 5.0, "work_ms": 1.0, "workers": 10, "replicas": 3,
             "concurrency": 20, "shared_cores": True},
            "need a core at once",
        ),
    ],
)  # fmt: skip
def test_p99_words_name_the_cause(overrides: dict[str, Any], words: str) -> None:
    arguments: dict[str, Any] = {"service_ms": 30.0, "cpu_ms": 30.0, "cores": 2.0}
    arguments.update(overrides)
    assert words in capacity.p99_words(_predict(**arguments))


def test_requests_must_be_positive() -> None:
    with pytest.raises(ValueError, match="requests must be positive"):
        _predict(requests=0)


def test_a_cores_limit_of_waiting_workers_names_the_requests_handling() -> None:
    p = _predict(service_ms=40.0, cpu_ms=5.0, work_ms=0.0, workers=10, replicas=3,
                 concurrency=20, cores=2.0, shared_cores=True)  # fmt: skip
    assert p.bottleneck == "cores"
    assert "the workers mostly wait" in p.explanation and "needs a core" in p.explanation
