"""The storm tour's table, why-lines and chart, from fixed lastRun reports and the storm model."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path
from typing import Any

import pytest
from nodelab.local import storm_chart, storm_tour
from nodelab.local.phase_run import PhaseResult
from nodelab.local.workload import Workload
from nodelab.model import capacity, prediction, spec
from nodelab.model.prediction import Calibration
from rich.console import Console

TRIGGER = {"startSeconds": 4, "durationSeconds": 3, "mode": "slow", "extraMillis": 1500}
LOAD = {"rate": 40, "durationSeconds": 16, "timeoutSeconds": 1}
NODE = {"replicas": 1, "workers": 4, "work": {"loadFactor": 0, "ioMillis": 40}}
POLICIES: dict[str, dict[str, Any]] = {
    "phase-5a-storm": {"retry": {"kind": "immediate", "maxAttempts": 3}},
    "phase-5b-backoff": {
        "retry": {"kind": "backoff", "maxAttempts": 3, "baseMillis": 100, "capMillis": 2000}
    },
    "phase-5c-defended": {
        "retry": {
            "kind": "backoff",
            "maxAttempts": 3,
            "budgetRatio": 0.1,
            "honorRetryAfter": True,
            "breaker": {"minCalls": 10},
        },
        "protection": {"maxQueue": 2, "retryAfterSeconds": 1},
    },
}


def storm_lab(name: str) -> spec.NodeLab:
    extra = POLICIES[name]
    node = {**NODE, **({"protection": extra["protection"]} if "protection" in extra else {})}
    return spec.parse_nodelab(
        {
            "apiVersion": "lab.nodelab.dev/v1alpha1",
            "kind": "NodeLab",
            "metadata": {"name": "storm-lab"},
            "spec": {
                "node": node,
                "load": {**LOAD, "retry": extra["retry"]},
                "trigger": TRIGGER,
                "slo": {"p99Millis": 1000},
            },
        }
    )


def storm_report(
    *, down_after: bool, breaker_open: tuple[int, ...] = (), recovery: int | None = None
) -> dict[str, Any]:
    """A 16 s run at 40 req/s, the trigger in [4, 7): goodput falls; it returns or not."""
    points = []
    for t in range(16):
        inside = 4 <= t < 7
        down = inside or (down_after and t >= 7)
        point: dict[str, Any] = {
            "t": t,
            "offered": 40.0,
            "attempts": 120.0 if down else 40.0,
            "successes": 2.0 if down else 40.0,
        }
        if t in breaker_open:
            point["breaker"] = "open"
        elif breaker_open:
            point["breaker"] = "closed"
        points.append(point)
    figures: dict[str, Any] = {
        "recovered": recovery is not None,
        "amplification": 2.5 if down_after else 1.4,
        "triggerAmplification": 3.0,
        "goodputDuringTrigger": 0.05,
        "goodputAfterTrigger": 0.05 if down_after else 0.9,
        "verdict": "DidNotRecover" if recovery is None else "Recovered",
        "triggerWindow": {"startSeconds": 4, "endSeconds": 7},
    }
    if recovery is not None:
        figures["recoverySeconds"] = recovery
    return {
        "rate": 40,
        "scheduled": 640,
        "timeline": {"secondsPerPoint": 1, "points": points},
        "storm": figures,
        "trigger": {
            "startSeconds": 4,
            "endSeconds": 7,
            "durationSeconds": 3,
            "mode": "slow",
            "extraMillis": 1500,
        },
    }


def phase_result(name: str, report: dict[str, Any]) -> PhaseResult:
    lab = storm_lab(name)
    return PhaseResult(
        source=f"manifests/phases/{name}.yaml",
        lab=lab,
        workload=Workload(0, 40, None, 16.0, 0, 40, 0, True, "io"),
        calibration=Calibration(5, 42.0, 40.0),
        slo_ms=1000.0,
        slo_scale=1.0,
        cores=2,
        report=report,
        prediction=capacity.predict(
            service_ms=42.0, cpu_ms=2.0, workers=4, replicas=1, concurrency=1, cores=2
        ),
    )


def tour_phases() -> list[storm_tour.StormPhase]:
    return [
        storm_tour.storm_phase(phase_result("phase-5a-storm", storm_report(down_after=True))),
        storm_tour.storm_phase(
            phase_result("phase-5b-backoff", storm_report(down_after=False, recovery=4))
        ),
        storm_tour.storm_phase(
            phase_result(
                "phase-5c-defended",
                storm_report(down_after=False, breaker_open=(5, 6, 9), recovery=1),
            )
        ),
    ]


def text_of(table: object) -> str:
    buffer = io.StringIO()
    Console(file=buffer, width=400, color_system=None).print(table)
    return buffer.getvalue()


def test_the_prediction_is_the_one_storm_feeds() -> None:
    result = phase_result("phase-5c-defended", storm_report(down_after=False, recovery=1))
    expected = prediction.predict_storm(
        result.calibration, result.lab, result.where, result.report, io_millis=40
    )
    assert storm_tour.storm_phase(result).prediction == expected


def test_a_run_that_is_no_storm_is_refused() -> None:
    result = phase_result("phase-5a-storm", storm_report(down_after=True))
    load = dataclasses.replace(result.lab.spec.load, rate=None, requests=10, retry=None)
    lab = dataclasses.replace(
        result.lab, spec=dataclasses.replace(result.lab.spec, load=load, trigger=None)
    )
    with pytest.raises(ValueError, match="not a storm run"):
        storm_tour.storm_phase(dataclasses.replace(result, lab=lab))


def test_the_window_the_run_used_wins_over_the_spec() -> None:
    report = storm_report(down_after=True)
    report["trigger"] = {"startSeconds": 2, "endSeconds": 3.5, "mode": "slow", "extraMillis": 1500}
    lab = storm_lab("phase-5a-storm")
    assert storm_tour.trigger_window(lab, report) == (2.0, 3.5)
    assert storm_tour.trigger_window(lab, {}) == (4.0, 7.0)


def test_the_table_has_each_phase_with_its_figures_beside_the_model() -> None:
    phases = tour_phases()
    text = text_of(storm_tour.storm_table(phases, "storm tour"))
    for phase in phases:
        assert phase.label in text
    assert "immediate x3" in text and "backoff x3 (100-2000 ms, full jitter)" in text
    assert "budget 0.1, Retry-After, breaker" in text
    assert "shed past 2 queued/worker (Retry-After 1 s)" in text
    assert "40.0 / 40.0" in text  # offered: measured / model
    assert "2.50 / " in text and "3.00 / " in text  # amplification overall, in the trigger
    assert "5% / " in text and "90% / " in text  # goodput during, after
    assert "did not recover /" in text and "4 s /" in text and "1 s /" in text
    assert "did not recover / did not recover" in text  # 5a: measured / model
    # Each row carries the model's own figures, not the measured ones again.
    p = phases[0].prediction
    assert f"{p.capacity_rps:.1f} ({p.capacity_during_rps:.1f})" in text


def test_the_model_says_the_immediate_storm_stays_down_and_the_defended_one_recovers() -> None:
    phases = tour_phases()
    assert phases[0].predicted_verdict == "DidNotRecover"
    assert phases[2].predicted_verdict == "Recovered"


def test_why_lines_are_one_per_phase_from_the_models_reasons() -> None:
    phases = tour_phases()
    lines = storm_tour.why_lines(phases)
    assert len(lines) == 3 and all("\n" not in line for line in lines)
    assert lines[0].startswith("phase-5a-storm: DidNotRecover (as predicted) - immediate retries")
    assert "does not recover" in lines[0]
    assert phases[2].prediction.reasons[-1] in lines[2]
    assert "offered 40 req/s vs capacity" not in lines[0]  # the mechanism, not the preamble


def test_intro_says_what_the_lab_shows_and_each_phases_defences() -> None:
    names = list(POLICIES)
    text = "\n".join(storm_tour.intro_lines([(n, storm_lab(n)) for n in names]))
    assert "one fault" in text and "retries" in text and "metastable" in text
    for name in names:
        assert name in text
    assert "nodes: none" in text and "nodes: shed past 2" in text


def test_breaker_open_seconds_merge_into_spans() -> None:
    report = storm_report(down_after=False, breaker_open=(5, 6, 9), recovery=1)
    assert storm_chart.breaker_open_spans(report) == [(5.0, 7.0), (9.0, 10.0)]
    series = storm_chart.timeline_series(report)
    assert series["t"][:2] == [0.5, 1.5] and series["attempts"][5] == 120.0


def test_chart_has_one_panel_per_phase_and_is_written(tmp_path: Path) -> None:
    phases = tour_phases()
    figure = storm_chart.storm_figure(phases, title="storm")
    assert len(figure.axes) == 3
    labels = figure.axes[0].get_legend_handles_labels()[1]
    assert labels == [
        "trigger (the fault)", "offered", "attempts sent", "goodput", "goodput, storm model",
    ]  # fmt: skip
    assert "breaker open" in figure.axes[2].get_legend_handles_labels()[1]
    paths = storm_chart.save_storm_chart(phases, tmp_path / "out", title="storm")
    assert [p.name for p in paths] == ["storm.png", "storm.svg"]
    for path in paths:
        assert path.stat().st_size > 10_000
    assert paths[0].read_bytes()[:4] == b"\x89PNG"


def test_results_carry_the_prediction_and_its_timeline() -> None:
    extra = storm_tour.results_extra(tour_phases())["stormPredictions"]
    assert [e["phase"] for e in extra] == list(POLICIES)
    assert extra[0]["reasons"] and extra[0]["timeline"][0]["t"] == 0


def test_storm_files_are_5a_5b_5c_in_order(tmp_path: Path) -> None:
    for name in ("phase-5c-defended", "phase-5a-storm", "phase-4-horizontal", "phase-5b-backoff"):
        (tmp_path / f"{name}.yaml").write_text("")
    assert [p.stem for p in storm_tour.storm_files(tmp_path)] == [
        "phase-5a-storm", "phase-5b-backoff", "phase-5c-defended",
    ]  # fmt: skip
