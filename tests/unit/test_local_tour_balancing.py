"""The balancing tour's table, verdict lines and chart, from fixed reports and the model."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from nodelab.local import balancing_chart, balancing_tour
from nodelab.local.phase_run import PhaseResult
from nodelab.local.workload import Workload
from nodelab.model import balancing, capacity, prediction, spec
from nodelab.model.prediction import Calibration
from rich.console import Console

from loadgen.balancing import STRATEGIES

TARGETS = ["http://127.0.0.1:5001", "http://127.0.0.1:5002", "http://127.0.0.1:5003"]
# Measured shares per strategy: blind ones even, the others away from the slow node.
SHARES: dict[str, tuple[float, float, float]] = {
    "round-robin": (0.3333, 0.3333, 0.3334),
    "random": (0.35, 0.3, 0.35),
    "least-outstanding": (0.44, 0.45, 0.11),
    "p2c": (0.42, 0.41, 0.17),
    "peak-ewma": (0.46, 0.46, 0.08),
}


def balancing_lab() -> spec.NodeLab:
    return spec.parse_nodelab(
        {
            "apiVersion": "lab.nodelab.dev/v1alpha1",
            "kind": "NodeLab",
            "metadata": {"name": "balancing-lab"},
            "spec": {
                "node": {
                    "replicas": 3,
                    "workers": 2,
                    "work": {"loadFactor": 0, "ioMillis": 40},
                    "slowPool": {"replicas": 1, "serviceFactor": 5},
                },
                "load": {"concurrency": 12, "requests": 120},
                "slo": {"p99Millis": 300},
            },
        }
    )


def balancing_report(strategy: str, p99: float, verdict: str) -> dict[str, Any]:
    shares = SHARES[strategy]
    rows = [
        {
            "node": f"balancing-lab-{i}",
            "target": TARGETS[i],
            "requests": round(share * 120),
            "successes": round(share * 120),
            "errors": 0,
            "share": share,
        }
        for i, share in enumerate(shares)
    ]
    return {
        "targets": TARGETS,
        "balancing": strategy,
        "rps": 90.0,
        "latencyMillis": {"p50": 45.0, "p99": p99},
        "verdict": verdict,
        # Reversed, as a report need not order its rows by replica.
        "perNode": rows[::-1],
    }


def phase_result(strategy: Any, report: dict[str, Any]) -> PhaseResult:
    lab = balancing_tour.with_strategy(balancing_lab(), strategy)
    return PhaseResult(
        source="manifests/phases/phase-6a-round-robin.yaml",
        lab=lab,
        workload=Workload(0, 40, 120, None, 0, 40, 0, True, "io"),
        calibration=Calibration(5, 44.0, 41.0),
        slo_ms=300.0,
        slo_scale=1.0,
        cores=2,
        report=report,
        prediction=capacity.predict(
            service_ms=44.0, cpu_ms=4.0, workers=2, replicas=3, concurrency=12, cores=2
        ),
    )


def tour_runs() -> list[balancing_tour.BalancingRun]:
    p99 = {"round-robin": 620.0, "random": 700.0}
    return [
        balancing_tour.balancing_run(
            phase_result(s, balancing_report(s, p99.get(s, 250.0), "Crashed" if s in p99 else "OK"))
        )
        for s in STRATEGIES
    ]


def text_of(table: object) -> str:
    buffer = io.StringIO()
    Console(file=buffer, width=300, color_system=None).print(table)
    return buffer.getvalue()


def test_only_the_strategy_changes() -> None:
    lab = balancing_lab()
    variant = balancing_tour.with_strategy(lab, "p2c")
    assert variant.spec.load.balancing == "p2c"
    assert variant.spec.node == lab.spec.node and variant.name == lab.name
    assert variant.spec.load.concurrency == lab.spec.load.concurrency


def test_the_slow_node_is_the_last_replica_as_the_model_orders_them() -> None:
    lab = balancing_lab()
    assert balancing_tour.slow_replicas(lab) == (2,)
    result = phase_result("p2c", balancing_report("p2c", 250.0, "OK"))
    profiles = prediction.node_profiles(result.calibration, result.lab, result.where, io_millis=40)
    assert profiles[2].service_ms > 4 * profiles[0].service_ms
    expected = balancing.predict_balancing("p2c", profiles, 12)
    assert balancing_tour.balancing_run(result).prediction == expected


def test_the_model_sends_the_slow_node_less_than_a_third_unless_blind() -> None:
    runs = {run.strategy: run for run in tour_runs()}
    assert runs["round-robin"].prediction.shares[2] == pytest.approx(1 / 3, abs=0.02)
    assert runs["least-outstanding"].prediction.shares[2] < 0.2


def test_rows_are_in_replica_order() -> None:
    run = tour_runs()[0]
    assert [row["node"] for row in run.nodes] == [f"balancing-lab-{i}" for i in range(3)]


def test_the_table_has_every_strategy_with_shares_p99_rps_and_verdict() -> None:
    runs = tour_runs()
    text = text_of(balancing_tour.balancing_table(runs, "balancing tour"))
    for strategy in STRATEGIES:
        assert strategy in text
    assert "share balancing-lab-2 (slow)" in text and "share balancing-lab-0 (fast)" in text
    assert "11% / " in text and "44% / " in text  # least-outstanding's measured shares
    assert "620.0 / " in text and "250.0 / " in text
    assert "90.0 / " in text
    assert "Crashed / " in text and "OK / " in text
    p = runs[3].prediction
    assert f"{p.p99_ms:,.1f}" in text and f"{p.shares[2]:.0%}" in text


def test_verdict_lines_name_the_slow_nodes_share() -> None:
    lines = balancing_tour.verdict_lines(tour_runs())
    assert len(lines) == len(STRATEGIES)
    assert lines[2].startswith("least-outstanding: OK")
    assert "the slow node took 11% of the requests" in lines[2]


def test_intro_says_what_the_fleet_is() -> None:
    text = "\n".join(balancing_tour.intro_lines(balancing_lab()))
    assert "3 replicas of 2 worker(s), 1 of them slow (5x the work)" in text
    assert "peak-ewma" in text


def test_chart_has_two_panels_and_is_written(tmp_path: Path) -> None:
    runs = tour_runs()
    figure = balancing_chart.balancing_figure(runs, title="balancing")
    assert len(figure.axes) == 2
    share_labels = figure.axes[0].get_legend_handles_labels()[1]
    assert "balancing-lab-2 (slow)" in share_labels and "balancing model" in share_labels
    assert len(figure.axes[1].patches) == len(STRATEGIES)  # one p99 bar per strategy
    paths = balancing_chart.save_balancing_chart(runs, tmp_path / "out", title="balancing")
    assert [p.name for p in paths] == ["balancing.png", "balancing.svg"]
    for path in paths:
        assert path.stat().st_size > 10_000
    assert paths[0].read_bytes()[:4] == b"\x89PNG"


def test_balancing_file_is_phase_6a(tmp_path: Path) -> None:
    assert balancing_tour.balancing_file(tmp_path) is None
    for name in ("phase-6b-least-outstanding", "phase-6a-round-robin"):
        (tmp_path / f"{name}.yaml").write_text("")
    found = balancing_tour.balancing_file(tmp_path)
    assert found is not None and found.stem == "phase-6a-round-robin"
