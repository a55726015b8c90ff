"""The real load generator against real node processes on 127.0.0.1.

The workshop's phenomena in shape, never in speed: counts add up, queueing grows with
concurrency, a dying node shows up as errors, several processes merge into one report.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from loadgen.cli import main
from loadgen.histogram import summarize
from loadgen.plan import LoadPlan
from loadgen.runner import run, run_one_level
from loadgen.schema import REPORT_SCHEMA
from tests.support.processes import NodeProcess, reap, running_node


@contextlib.contextmanager
def nodes(count: int, **kwargs: Any) -> Iterator[list[NodeProcess]]:
    """``count`` one-worker nodes with ids 1..count; all reaped on exit."""
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(running_node(str(i + 1), **kwargs)) for i in range(count)]


def valid(report: dict[str, Any]) -> dict[str, Any]:
    jsonschema.validate(report, REPORT_SCHEMA, format_checker=jsonschema.FormatChecker())
    return report


def test_per_node_counts_sum_to_the_total_over_three_nodes() -> None:
    with nodes(3, load_factor=5) as fleet:
        plan = LoadPlan(targets=tuple(node.url for node in fleet), concurrency=6, requests=60)
        report = valid(run(plan))
    assert (report["requests"], report["successes"], report["errors"]["total"]) == (60, 60, 0)
    per_node = {row["node"]: row for row in report["perNode"]}
    assert set(per_node) == {"1", "2", "3"}
    assert sum(row["requests"] for row in per_node.values()) == report["requests"]
    # Round-robin over the targets: each node gets exactly its third.
    assert [per_node[n]["successes"] for n in ("1", "2", "3")] == [20, 20, 20]
    assert [per_node[n]["target"] for n in ("1", "2", "3")] == [node.url for node in fleet]
    assert report["serviceMillis"] is not None
    assert report["verdict"] == "OK"


class _Progress:
    """A progress sink that lets the test wait for "n requests done" instead of sleeping."""

    def __init__(self, threshold: int) -> None:
        self.threshold = threshold
        self.reached = threading.Event()

    def begin(self, label: str, total: int | None, duration_s: float | None) -> None:
        pass

    def update(self, done: int, elapsed_s: float) -> None:
        if done >= self.threshold:
            self.reached.set()

    def end(self) -> None:
        self.reached.set()


def test_a_node_killed_mid_run_shows_up_as_errors_and_the_report_comes_out() -> None:
    with nodes(2, load_factor=0, io_millis=20) as (first, second):
        plan = LoadPlan(targets=(first.url, second.url), concurrency=4, requests=150, timeout_s=5)
        progress = _Progress(threshold=20)
        with ThreadPoolExecutor(max_workers=1) as pool:
            running = pool.submit(run, plan, progress=progress)
            assert progress.reached.wait(timeout=30)
            reap(second.proc)
            report = valid(running.result(timeout=60))
    assert report["requests"] == 150
    assert report["successes"] + report["errors"]["total"] == 150
    assert report["errors"]["total"] > 0
    # Failed connects (few: the dead node backs off), then its requests fail without one.
    assert set(report["errors"]["byKind"]) <= {"connect", "down", "other"}
    assert "connect" in report["errors"]["byKind"]
    (down,) = report["targetsDown"]
    assert (down["target"], down["wentAway"]) == (second.url, True)
    assert 1 <= down["failedConnects"] <= report["errors"]["byKind"]["connect"]
    per_node = {row["node"]: row for row in report["perNode"]}
    # The failures are charged to the node that was behind the dead target.
    assert per_node["2"]["errors"] == report["errors"]["total"]
    assert per_node["1"]["errors"] == 0
    assert per_node["2"]["successes"] > 0
    assert report["verdict"] == "Errors"


def test_two_processes_merge_into_one_report() -> None:
    with nodes(2, load_factor=5) as fleet:
        plan = LoadPlan(
            targets=tuple(node.url for node in fleet), concurrency=4, processes=2, requests=40
        )
        report = valid(run(plan))
    assert report["processes"] == 2
    assert (report["requests"], report["successes"]) == (40, 40)
    assert {row["node"]: row["successes"] for row in report["perNode"]} == {"1": 20, "2": 20}
    histogram = summarize_encoded(report["histogram"])
    assert histogram == 40


def summarize_encoded(encoded: str) -> int:
    from loadgen.histogram import decode_histogram

    count: int = decode_histogram(encoded).get_total_count()
    return count


def test_closed_loop_on_one_cpu_bound_worker_queues() -> None:
    # fib(21) is a few ms: one worker serves one at a time, so 6 clients wait for each other.
    with running_node("1", load_factor=21) as node:
        plan = LoadPlan(targets=(node.url,), sweep=(1, 6), requests=24, calibrate=3)
        report = valid(run(plan))
    one, six = report["sweep"]
    assert [one["verdict"], six["verdict"]] == ["OK", "OK"]
    assert report["breakingConcurrency"] is None
    assert report["concurrency"] == 6
    # Theory says about 6x; assert the shape with room for a busy machine.
    assert six["p50Millis"] > 2.5 * one["p50Millis"]
    assert six["p99Millis"] > one["p99Millis"]
    calibration = report["calibration"]
    assert calibration["requests"] == 3
    assert 0 < calibration["serviceMillis"] <= calibration["latencyMillis"]


def test_a_sweep_stops_at_the_first_level_past_the_slo() -> None:
    # 10 ms of I/O per request, one at a time: 30 clients wait ~300 ms, past a 150 ms SLO.
    with running_node("1", load_factor=0, io_millis=10) as node:
        plan = LoadPlan(targets=(node.url,), sweep=(1, 30, 60), requests=30, slo_p99_ms=150)
        report = valid(run(plan))
    assert [level["concurrency"] for level in report["sweep"]] == [1, 30]  # 60 never ran
    assert [level["verdict"] for level in report["sweep"]] == ["OK", "Crashed"]
    assert report["breakingConcurrency"] == 30
    assert (report["concurrency"], report["verdict"]) == (30, "Crashed")


def test_open_loop_above_capacity_corrects_latency() -> None:
    # Capacity ~50/s (20 ms each, one at a time), scheduled at 150/s.
    with running_node("1", load_factor=0, io_millis=20) as node:
        plan = LoadPlan(targets=(node.url,), concurrency=4, requests=45, rate=150.0)
        result = run_one_level(plan)
    corrected = summarize(result.stats.latency())
    uncorrected = summarize(result.stats.uncorrected)
    assert corrected is not None and uncorrected is not None
    assert corrected.count == uncorrected.count == 45
    assert corrected.p99 > uncorrected.p99
    assert corrected.p50 > uncorrected.p50


def test_json_file_is_a_valid_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report.json"
    with running_node("1", load_factor=5) as node:
        argv = ["--target", node.url, "-c", "2", "--requests", "10", "--generation", "3"]
        assert main([*argv, "--json", str(out)]) == 0
        assert main([*argv, "--json", "-", "--quiet", "--path", "/health"]) == 0
    report = valid(json.loads(out.read_text()))
    assert (report["requests"], report["generation"], report["path"]) == (10, 3, "/work")
    printed = capsys.readouterr()
    assert "Load report" in printed.out  # the table, beside the file
    # With --json -, stdout is the report alone.
    health = valid(json.loads(printed.out[printed.out.index("{\n") :]))
    assert health["path"] == "/health"
    assert health["serviceMillis"] is None


def test_python_dash_m_loadgen(tmp_path: Path) -> None:
    with running_node("1", load_factor=5) as node:
        finished = subprocess.run(
            [sys.executable, "-m", "loadgen", "--target", node.url, "--requests", "6",
             "-c", "2", "--json", "-", "--quiet"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert finished.returncode == 0, finished.stderr
    assert valid(json.loads(finished.stdout))["successes"] == 6
