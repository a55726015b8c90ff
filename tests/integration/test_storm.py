"""Phase 5 on real nodes on 127.0.0.1: a naive client turns a short slowdown into a storm that
outlives it; a defended client and shedding nodes recover.

Two one-worker nodes in I/O mode (each /work a pure 20 ms wait, no CPU work), so the fleet's
capacity hardly moves with CPU noise; it is measured first by a short closed loop, and the
storm runs at 80% of it. The trigger slows every /work by 300 ms for 3 s: the fleet serves a
sixteenth of the arrivals, queues build, the clients' 1 s timeouts fire. The node keeps
serving a request its client gave up on, so a naive client's immediate retries (3 attempts)
keep the queues longer than the timeout after the trigger: the storm sustains itself. The
defended client (full-jitter backoff, a 10% retry budget, a circuit breaker, Retry-After
honored) and nodes that shed past a queue of 5 recover within seconds of the trigger's end.
Assertions are on shape and ratios, never on speed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loadgen import runner
from loadgen.plan import LoadPlan, Trigger
from loadgen.resilience import BreakerSettings, RetryPolicy
from node_service.settings import node_argv
from tests.support.processes import running_node
from tests.support.retry_policies import defended_policy

TOKEN = "integration-storm-token"
IO_MILLIS = 20
DURATION_S = 18.0
TRIGGER = Trigger(start_s=3, duration_s=3, mode="slow", extra_millis=300)
TIMEOUT_S = 1.0


@contextlib.contextmanager
def fleet(token_file: Path, *, max_queue: int) -> Iterator[tuple[str, ...]]:
    # A node drains its queue before it exits; after a storm that queue is long, so the
    # shortest grace keeps the teardown short.
    extra = node_argv(
        fault_token_file=str(token_file),
        max_queue=max_queue,
        retry_after_seconds=1,
        graceful_timeout=1,
    )
    with contextlib.ExitStack() as stack:
        nodes = [
            stack.enter_context(
                running_node(str(index), load_factor=0, io_millis=IO_MILLIS, extra=extra)
            )
            for index in (1, 2)
        ]
        yield tuple(node.url for node in nodes)


def capacity_rps(targets: tuple[str, ...]) -> float:
    """The fleet's throughput with every worker kept busy: a short closed loop."""
    report = runner.run(LoadPlan(targets=targets, concurrency=6, duration_s=2.0, timeout_s=5.0))
    assert report["errors"]["total"] == 0, report["errors"]
    rps = float(report["rps"])
    # I/O mode: one worker per node serves at most 1000 / IO_MILLIS a second.
    assert 0 < rps <= len(targets) * 1000 / IO_MILLIS * 1.05
    return rps


def storm_run(targets: tuple[str, ...], token_file: Path, policy: RetryPolicy) -> dict[str, Any]:
    plan = LoadPlan(
        targets=targets,
        rate=round(0.8 * capacity_rps(targets), 1),
        duration_s=DURATION_S,
        timeout_s=TIMEOUT_S,
        retry=policy,
        trigger=TRIGGER,
        fault_token_file=str(token_file),
    )
    report = runner.run(plan)
    storm = report["storm"]
    # Every offered request ended exactly once; attempts = first attempts + retries sent.
    ends = report["errors"]["byKind"]
    assert storm["offered"] == report["scheduled"] == report["requests"]
    assert report["successes"] + sum(ends.values()) == storm["offered"]
    assert set(ends) <= {"gave_up", "breaker_open", "refused"}
    assert storm["attempts"] == report["successes"] + sum(storm["attemptErrors"].values())
    assert storm["attempts"] <= storm["offered"] + storm["retries"]
    assert storm["triggerWindow"] == {"startSeconds": 3, "endSeconds": 6}
    return report


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "fault-token"
    path.write_text(TOKEN + "\n")
    return path


def test_a_naive_client_turns_the_trigger_into_a_storm(token_file: Path) -> None:
    with fleet(token_file, max_queue=0) as targets:
        report = storm_run(targets, token_file, RetryPolicy(kind="immediate", max_attempts=3))
    storm = report["storm"]
    assert storm["amplification"] >= 2.0, storm
    assert storm["goodputAfterTrigger"] < 0.5, storm
    assert storm["recovered"] is False and storm["verdict"] == "DidNotRecover", storm
    # Before the trigger the fleet kept up: the storm is the retries', not the load's.
    before = report["timeline"]["points"][: int(TRIGGER.start_s)]
    assert sum(p["successes"] for p in before) >= 0.9 * sum(p["offered"] for p in before)


def test_a_defended_client_and_shedding_nodes_recover(token_file: Path) -> None:
    policy = defended_policy(
        BreakerSettings(failure_ratio=0.5, min_calls=20, open_seconds=1.0, probes=3)
    )
    with fleet(token_file, max_queue=5) as targets:
        report = storm_run(targets, token_file, policy)
    storm = report["storm"]
    assert storm["recovered"] is True and storm["verdict"] == "Recovered", storm
    assert storm["recoverySeconds"] is not None
    assert storm["goodputAfterTrigger"] >= 0.8, storm
    # The budget holds retries to 10% of first attempts plus one a second per 10 s window.
    assert storm["retries"] <= 0.1 * storm["offered"] + 2 * 10 + 1, storm
    assert storm["amplification"] < 1.3, storm
    assert "breaker" in storm and storm["breaker"]["transitions"] >= 1, storm
