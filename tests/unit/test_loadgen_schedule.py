"""The open loop's schedule and its coordinated-omission correction."""

from __future__ import annotations

import pytest

from loadgen import schedule


def test_intended_starts_are_evenly_spaced_from_the_index() -> None:
    starts = [schedule.intended_start(100.0, k, 20.0) for k in range(5)]
    assert starts == pytest.approx([100.0, 100.05, 100.1, 100.15, 100.2])


def test_intended_start_does_not_drift_over_a_long_schedule() -> None:
    # Accumulating 1/3 a million times drifts; computing from the index does not.
    assert schedule.intended_start(0.0, 3_000_000, 3.0) == 1_000_000.0


def test_corrected_latency_counts_from_the_intended_start() -> None:
    # Scheduled at t=1.0, sent late at t=1.5 (the client was blocked), answered at t=1.6:
    # the user waited 600 ms, although the request itself took 100 ms.
    intended, sent, finished = 1.0, 1.5, 1.6
    assert schedule.corrected_latency_us(intended, finished) == pytest.approx(600_000, abs=1)
    assert schedule.corrected_latency_us(sent, finished) == pytest.approx(100_000, abs=1)


def test_corrected_latency_is_never_negative() -> None:
    assert schedule.corrected_latency_us(2.0, 1.9) == 0


def test_stalled_server_shows_in_corrected_latency_only() -> None:
    # 10 req/s; the server stalls 1 s on request 0, then answers instantly. A client with one
    # connection sends requests 1..9 late, right after the stall: uncorrected latency sees
    # one slow request, corrected latency sees the wait of every request behind it.
    rate, start, stall = 10.0, 0.0, 1.0
    corrected, uncorrected = [], []
    clock = start
    for k in range(10):
        intended = schedule.intended_start(start, k, rate)
        sent = max(clock, intended)
        finished = sent + (stall if k == 0 else 0.001)
        clock = finished
        corrected.append(schedule.corrected_latency_us(intended, finished))
        uncorrected.append(schedule.corrected_latency_us(sent, finished))
    assert sum(1 for us in uncorrected if us > 500_000) == 1
    assert sum(1 for us in corrected if us > 500_000) == 6  # requests 0..5 waited > 0.5 s
    assert corrected[1] == pytest.approx(901_000, abs=2)


def test_scheduled_requests_of_a_duration() -> None:
    assert schedule.scheduled_requests(100.0, 2.5) == 250
    assert schedule.scheduled_requests(0.1, 1.0) == 1  # never an empty schedule
    assert schedule.scheduled_requests(3.0, 1 / 3 * 3) == 3


def test_shards_interleave_and_cover_every_index_once() -> None:
    shards = [list(schedule.shard_indices(10, i, 3)) for i in range(3)]
    assert shards == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]
    assert sorted(k for shard in shards for k in shard) == list(range(10))


def test_split_evenly() -> None:
    assert schedule.split_evenly(10, 3) == [4, 3, 3]
    assert schedule.split_evenly(2, 2) == [1, 1]
    assert sum(schedule.split_evenly(17, 5)) == 17


@pytest.mark.parametrize(
    ("start", "stop", "stride", "slots"),
    [(0, 60, 1, 1), (3, 100, 2, 3), (1, 97, 4, 6), (7, 7, 1, 2), (5, 2, 1, 3), (2, 10**6, 3, 5)],
)
def test_count_by_slot_matches_walking_the_indices(
    start: int, stop: int, stride: int, slots: int
) -> None:
    walked = [0] * slots
    for index in range(start, stop, stride):
        walked[index % slots] += 1
    assert schedule.count_by_slot(start, stop, stride, slots) == walked
