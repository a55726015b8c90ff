"""The capacity model: the bottleneck law, Little's law, and the words that explain them."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from nodelab import capacity

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


def _has_p99() -> bool:
    return "p99_ms" in {f.name for f in dataclasses.fields(capacity.Prediction)}


@pytest.mark.skipif(not _has_p99(), reason="the model predicts no p99 (yet)")
def test_p99_is_the_unluckiest_requests_rounds_of_service() -> None:
    # 5 clients on 4 workers with cores to spare: the last request waits a whole round.
    p = _predict(service_ms=100.0, cpu_ms=100.0, workers=4, concurrency=5, cores=8.0)
    assert getattr(p, "p99_ms") == pytest.approx(200.0)  # noqa: B009
    assert p.latency_ms == pytest.approx(125.0)
    # 10 requests computing at once on 5 cores run at half speed, twice over for 20 clients.
    q = _predict(service_ms=100.0, cpu_ms=100.0, workers=10, concurrency=20, cores=5.0)
    assert getattr(q, "p99_ms") == pytest.approx(400.0)  # noqa: B009
    assert q.to_status()["p99Millis"] == 400.0
