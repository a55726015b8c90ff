"""Per-target backoff after failed connects: the delays and the one-probe-at-a-time protocol."""

from __future__ import annotations

import pytest

from loadgen.health import BACKOFF_BASE_S, BACKOFF_CAP_S, DownTarget, TargetHealth, backoff_s


def lowest(low: float, high: float) -> float:
    return low


def highest(low: float, high: float) -> float:
    return high


@pytest.mark.parametrize(
    ("failures", "step"),
    [
        (1, BACKOFF_BASE_S),
        (2, 2 * BACKOFF_BASE_S),
        (3, 4 * BACKOFF_BASE_S),
        (50, BACKOFF_CAP_S),
        (10**6, BACKOFF_CAP_S),  # no overflow however long a target stays down
    ],
)
def test_backoff_doubles_up_to_the_cap_and_jitters_within_its_upper_half(
    failures: int, step: float
) -> None:
    assert backoff_s(failures, lowest) == pytest.approx(step / 2)
    assert backoff_s(failures, highest) == pytest.approx(step)


def test_a_failed_target_lets_one_probe_through_once_its_delay_has_passed() -> None:
    health = TargetHealth(2, uniform=highest)
    assert health.claim(0, now=10.0) == 0.0  # up: go
    health.connect_failed(0, now=10.0)
    assert health.retry_at[0] == pytest.approx(10.0 + BACKOFF_BASE_S)
    assert health.any_up()  # target 1 still is
    # Before the delay: not yet, and when.
    assert health.claim(0, now=10.01) == pytest.approx(10.0 + BACKOFF_BASE_S)
    # After it: one probe, and the next request has to wait for the probe's own delay.
    assert health.claim(0, now=10.1) == 0.0
    assert health.claim(0, now=10.1) == pytest.approx(10.1 + 2 * BACKOFF_BASE_S)
    health.connect_failed(0, now=10.12)
    assert health.down() == {0: DownTarget(went_away=False, failed_connects=2)}


def test_an_answer_clears_the_backoff_and_marks_a_later_failure_as_went_away() -> None:
    health = TargetHealth(1, uniform=lowest)
    health.connect_failed(0, now=1.0)
    assert not health.any_up()
    health.answered_by(0)
    assert health.any_up() and health.down() == {}
    assert health.claim(0, now=1.0) == 0.0
    health.connect_failed(0, now=2.0)
    health.connect_failed(0, now=2.0)
    assert health.down() == {0: DownTarget(went_away=True, failed_connects=2)}
    assert health.retry_at[0] == pytest.approx(2.0 + BACKOFF_BASE_S)  # step 2 x base, lowest half
