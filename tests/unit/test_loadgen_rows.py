"""The report's per-node rows: errors charged to nodes, natural order."""

from __future__ import annotations

from loadgen.accumulators import RunStats
from loadgen.health import DownTarget
from loadgen.rows import down_rows, node_rows


def _answers(stats: RunStats, node: str, target: str, successes: int, errors: int = 0) -> None:
    for _ in range(successes):
        stats.record_success(target, node, 10_000)
    if errors:
        stats.record_error(target, "connect", errors)


def test_node_rows_charge_errors_to_the_node_behind_a_target() -> None:
    stats = RunStats()
    _answers(stats, "1", "http://a", 4)
    _answers(stats, "2", "http://b", 3, errors=2)
    rows = {row.node: row for row in node_rows(stats)}
    assert set(rows) == {"1", "2"}
    assert (rows["2"].successes, rows["2"].errors, rows["2"].requests) == (3, 2, 5)
    assert rows["2"].target == "http://b"
    assert sum(row.requests for row in rows.values()) == stats.requests


def test_node_rows_keep_a_target_that_never_answered_under_its_url() -> None:
    stats = RunStats()
    _answers(stats, "1", "http://a", 1)
    stats.record_error("http://dead", "connect")
    rows = node_rows(stats)
    assert [(row.node, row.successes, row.errors) for row in rows] == [
        ("1", 1, 0),
        ("http://dead", 0, 1),
    ]
    assert rows[1].latency is None


def test_node_rows_keep_errors_of_a_load_balanced_target_apart() -> None:
    # One Service address answering as two pods: a failure there belongs to neither pod.
    stats = RunStats()
    _answers(stats, "pod-a", "http://svc", 1)
    _answers(stats, "pod-b", "http://svc", 1, errors=1)
    assert [row.node for row in node_rows(stats)] == ["http://svc", "pod-a", "pod-b"]


def test_node_rows_sort_numbers_naturally() -> None:
    stats = RunStats()
    for node in ("node-10", "node-2", "node-1"):
        _answers(stats, node, "http://a", 1)
    assert [row.node for row in node_rows(stats)] == ["node-1", "node-2", "node-10"]


def test_down_rows_are_sorted_by_target() -> None:
    rows = down_rows(
        {
            "http://b": DownTarget(went_away=True, failed_connects=2),
            "http://a": DownTarget(went_away=False, failed_connects=1),
        }
    )
    assert rows == [
        {"target": "http://a", "wentAway": False, "failedConnects": 1},
        {"target": "http://b", "wentAway": True, "failedConnects": 2},
    ]
