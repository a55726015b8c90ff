"""Fast and slow nodes (issue 12, phase 6): three real one-worker nodes on 127.0.0.1, one five
times slower, loaded by the real load generator in a closed loop under each strategy.

I/O mode (each /work is a pure wait of ``--io-millis`` while it holds the node's one worker),
so the service times hold on a busy 2-core machine. Asserted in shape only, on ratios between
strategies measured side by side: least-outstanding and p2c send the slow node clearly fewer
requests than round-robin (which gives it its third exactly) and get a lower p99.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest

from loadgen.balancing import StrategyName
from loadgen.plan import LoadPlan
from loadgen.runner import run
from loadgen.schema import REPORT_SCHEMA
from tests.support.processes import NodeProcess, running_node

FAST_IO_MS = 20
SLOW_IO_MS = 5 * FAST_IO_MS
CONCURRENCY = 12  # 4 per node: enough that round-robin's slow node queues
SECONDS = 3.0
SLOW = "3"
STRATEGIES_RUN: tuple[StrategyName, ...] = ("round-robin", "least-outstanding", "p2c")


@contextlib.contextmanager
def fleet() -> Iterator[list[NodeProcess]]:
    """Nodes "1" and "2" at FAST_IO_MS, node "3" at SLOW_IO_MS; all reaped on exit."""
    with contextlib.ExitStack() as stack:
        yield [
            stack.enter_context(
                running_node(
                    str(i), load_factor=0, io_millis=SLOW_IO_MS if str(i) == SLOW else FAST_IO_MS
                )
            )
            for i in (1, 2, 3)
        ]


@pytest.fixture(scope="module")
def reports() -> dict[str, dict[str, Any]]:
    """One report per strategy, run one after another against the same three nodes."""
    with fleet() as nodes:
        targets = tuple(node.url for node in nodes)
        run(LoadPlan(targets=targets, concurrency=3, requests=9))  # first answers pay imports
        return {
            name: run(
                LoadPlan(
                    targets=targets,
                    concurrency=CONCURRENCY,
                    duration_s=SECONDS,
                    timeout_s=10.0,
                    balancing=name,
                )
            )
            for name in STRATEGIES_RUN
        }


def slow_row(report: dict[str, Any]) -> dict[str, Any]:
    rows = {row["node"]: row for row in report["perNode"]}
    assert set(rows) == {"1", "2", "3"}
    row: dict[str, Any] = rows[SLOW]
    return row


def test_reports_name_the_strategy_and_shares_add_up(reports: dict[str, dict[str, Any]]) -> None:
    for name, report in reports.items():
        jsonschema.validate(report, REPORT_SCHEMA)
        assert report["balancing"] == name
        assert report["errors"]["total"] == 0, report["errors"]
        assert sum(row["share"] for row in report["perNode"]) == pytest.approx(1.0, abs=1e-3)
        for row in report["perNode"]:
            assert row["share"] == pytest.approx(row["requests"] / report["requests"], abs=1e-4)


def test_round_robin_gives_the_slow_node_its_third(reports: dict[str, dict[str, Any]]) -> None:
    report = reports["round-robin"]
    # A closed loop by duration: index mod 3, so the counts differ by at most one.
    assert abs(slow_row(report)["requests"] - report["requests"] / 3) <= 1


@pytest.mark.parametrize("name", ["least-outstanding", "p2c"])
def test_a_load_aware_strategy_spares_the_slow_node(
    reports: dict[str, dict[str, Any]], name: str
) -> None:
    blind, aware = reports["round-robin"], reports[name]
    assert slow_row(aware)["share"] < 0.8 * slow_row(blind)["share"]
    assert aware["latencyMillis"]["p99"] < blind["latencyMillis"]["p99"]
    # The fast nodes take the slack: more answers in the same time.
    assert aware["successes"] > blind["successes"]
