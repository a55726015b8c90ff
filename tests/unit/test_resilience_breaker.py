"""The circuit breaker's states and every transition between them, on a fake clock."""

from __future__ import annotations

import pytest

from loadgen.resilience.breaker import BreakerState, CircuitBreaker
from tests.support.clock import FakeClock


def breaker(
    clock: FakeClock,
    *,
    failure_ratio: float = 0.5,
    min_calls: int = 4,
    open_seconds: float = 5.0,
    probes: int = 2,
    window: int | None = None,
) -> CircuitBreaker:
    return CircuitBreaker(
        clock,
        failure_ratio=failure_ratio,
        min_calls=min_calls,
        open_seconds=open_seconds,
        probes=probes,
        window=window,
    )


def call(b: CircuitBreaker, success: bool) -> None:
    assert b.allow()
    b.record(success)


def trip(b: CircuitBreaker) -> None:
    for _ in range(b.min_calls):
        call(b, False)
    assert b.state is BreakerState.OPEN


def test_states_read_as_the_spec_writes_them() -> None:
    assert [state.value for state in BreakerState] == ["closed", "open", "half-open"]
    assert BreakerState.HALF_OPEN == "half-open"


def test_a_closed_breaker_lets_calls_go() -> None:
    b = breaker(FakeClock())
    assert b.state is BreakerState.CLOSED
    for _ in range(10):
        call(b, True)
    assert (b.state, b.transitions, b.rejected) == (BreakerState.CLOSED, 0, 0)


def test_it_opens_when_the_failure_ratio_reaches_the_threshold() -> None:
    b = breaker(FakeClock(), failure_ratio=0.5, min_calls=4)
    call(b, True)
    call(b, False)
    call(b, True)
    assert b.state is BreakerState.CLOSED  # 3 calls: fewer than min_calls
    call(b, False)  # 2 of 4 failed: 0.5
    assert b.state is BreakerState.OPEN
    assert b.transitions == 1


def test_below_the_threshold_it_stays_closed() -> None:
    b = breaker(FakeClock(), failure_ratio=0.5, min_calls=4)
    for success in (True, False, True, True, True, False, True, True):
        call(b, success)  # never more than 1 failure in the last 4
    assert b.state is BreakerState.CLOSED


def test_min_calls_holds_it_closed_however_many_of_the_first_calls_fail() -> None:
    b = breaker(FakeClock(), failure_ratio=0.5, min_calls=5)
    for _ in range(4):
        call(b, False)
    assert b.state is BreakerState.CLOSED
    call(b, False)
    assert b.state is BreakerState.OPEN


def test_only_the_last_window_outcomes_count() -> None:
    b = breaker(FakeClock(), failure_ratio=0.75, min_calls=2, window=4)
    for success in (True, True, False, False):
        call(b, success)
    assert b.state is BreakerState.CLOSED  # 2 of 4 failed
    call(b, False)  # the last 4 are T F F F: 3 of 4 (over all 5 calls it would be 3 of 5)
    assert b.state is BreakerState.OPEN


def test_an_open_breaker_rejects_and_counts_the_rejections() -> None:
    clock = FakeClock()
    b = breaker(clock, open_seconds=5.0)
    trip(b)
    clock.advance(4.99)
    assert [b.allow() for _ in range(3)] == [False, False, False]
    assert b.rejected == 3
    assert b.state is BreakerState.OPEN


def test_outcomes_arriving_while_open_are_dropped() -> None:
    clock = FakeClock()
    b = breaker(clock)
    trip(b)
    b.record(True)  # a call let go before it opened, answering late
    b.record(True)
    assert b.state is BreakerState.OPEN
    assert b.transitions == 1


def test_after_open_seconds_it_is_half_open_and_admits_only_the_probes() -> None:
    clock = FakeClock()
    b = breaker(clock, open_seconds=5.0, probes=2)
    trip(b)
    clock.advance(5.0)
    assert b.state is BreakerState.HALF_OPEN
    assert b.transitions == 2
    assert [b.allow() for _ in range(3)] == [True, True, False]
    assert b.rejected == 1


def test_successful_probes_close_it_with_a_fresh_window() -> None:
    clock = FakeClock()
    b = breaker(clock, min_calls=4, probes=2)
    trip(b)
    clock.advance(5.0)
    call(b, True)
    assert b.state is BreakerState.HALF_OPEN  # one of two probes back
    call(b, True)
    assert b.state is BreakerState.CLOSED
    assert b.transitions == 3
    # The failures that opened it are forgotten: min_calls must come in again.
    for _ in range(3):
        call(b, False)
    assert b.state is BreakerState.CLOSED
    call(b, False)
    assert b.state is BreakerState.OPEN


def test_a_failed_probe_reopens_it_for_another_open_seconds() -> None:
    clock = FakeClock()
    b = breaker(clock, open_seconds=5.0, probes=2)
    trip(b)
    clock.advance(5.0)
    call(b, True)
    call(b, False)
    assert b.state is BreakerState.OPEN
    assert b.transitions == 3  # closed -> open -> half-open -> open
    clock.advance(4.99)  # timed from the reopening, not the first opening
    assert not b.allow()
    clock.advance(0.01)
    assert b.state is BreakerState.HALF_OPEN
    assert [b.allow(), b.allow(), b.allow()] == [True, True, False]  # a fresh set of probes


def test_a_breaker_that_opens_again_and_again_counts_every_transition() -> None:
    clock = FakeClock()
    b = breaker(clock, probes=1)
    for _ in range(3):
        trip(b)
        clock.advance(5.0)
        call(b, True)
        assert b.state is BreakerState.CLOSED
    assert b.transitions == 9


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"failure_ratio": 0.0}, "failure_ratio"),
        ({"failure_ratio": 1.5}, "failure_ratio"),
        ({"failure_ratio": float("nan")}, "failure_ratio"),
        ({"min_calls": 0}, "min_calls"),
        ({"open_seconds": 0.0}, "open_seconds"),
        ({"open_seconds": float("inf")}, "open_seconds"),
        ({"probes": 0}, "probes"),
        ({"min_calls": 5, "window": 4}, "window"),
    ],
)
def test_bad_arguments_name_the_parameter(kwargs: dict[str, float], named: str) -> None:
    with pytest.raises(ValueError, match=rf"^{named} "):
        breaker(FakeClock(), **kwargs)  # type: ignore[arg-type]
