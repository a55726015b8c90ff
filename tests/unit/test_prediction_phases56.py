"""prediction.storm and prediction.balancing: the storm and balancing models fed by a run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from nodelab.model import prediction, run_status, spec
from nodelab.model.history import history_row
from nodelab.model.prediction import Calibration, Placement

PHASES = Path(__file__).resolve().parents[2] / "manifests" / "phases"
CALIBRATION = {"requests": 5, "latencyMillis": 104.0, "serviceMillis": 101.0}
ONE_MACHINE = Placement.one_machine(2)


def _lab(name: str) -> spec.NodeLab:
    return spec.load_phase_file(PHASES / name)


def _report(lab: spec.NodeLab, **extra: Any) -> dict[str, Any]:
    load = lab.spec.load
    return {
        "generation": 1,
        "concurrency": load.concurrency,
        "rate": load.rate,
        "scheduled": int(load.rate * (load.duration_seconds or 0)) if load.rate else None,
        "sloP99Millis": lab.spec.slo.p99_millis,
        "latencyMillis": {"p50": 100.0, "p99": 900.0},
        "successes": 10,
        "requests": 20,
        "rps": 10.0,
        "verdict": "Errors",
        "calibration": CALIBRATION,
        **extra,
    }


def test_the_naive_storm_is_predicted_to_sustain_itself() -> None:
    lab = _lab("phase-5a-storm.yaml")
    predicted = prediction.prediction(lab, _report(lab), ONE_MACHINE)
    assert predicted is not None
    storm = predicted["storm"]
    assert storm["recovered"] is False and storm["sustains"] is True
    assert storm["amplification"] >= 2
    assert storm["amplificationAtTimeout"] == 3.0
    assert "balancing" not in predicted


def test_the_defended_storm_is_predicted_to_recover() -> None:
    lab = _lab("phase-5c-defended.yaml")
    predicted = prediction.prediction(lab, _report(lab), ONE_MACHINE)
    assert predicted is not None
    assert predicted["storm"]["recovered"] is True
    assert predicted["storm"]["recoverySeconds"] <= 3


def test_the_storm_scenario_takes_the_run_window_and_length_of_the_report() -> None:
    lab = _lab("phase-5a-storm.yaml")
    report = _report(
        lab,
        scheduled=640,
        trigger={"startSeconds": 2, "durationSeconds": 1.5, "mode": "slow", "extraMillis": 300},
    )
    calibration = Calibration.from_report(CALIBRATION)
    assert calibration is not None
    scenario = prediction.storm_scenario(calibration, lab, ONE_MACHINE, report)
    assert scenario is not None and scenario.trigger is not None
    assert (scenario.duration_s, scenario.trigger.start_s, scenario.trigger.end_s) == (10, 2, 3.5)
    assert (scenario.rate_rps, scenario.timeout_s, scenario.fleet_workers) == (64, 1, 8)
    assert scenario.cpu_ms == pytest.approx(104.0 - 100)  # all but the configured wait
    assert scenario.policy == lab.spec.load.retry


def test_no_storm_or_balancing_prediction_for_phases_1_to_4() -> None:
    lab = _lab("phase-4-horizontal.yaml")
    predicted = prediction.prediction(lab, _report(lab), ONE_MACHINE)
    assert predicted is not None and "storm" not in predicted and "balancing" not in predicted


def test_the_slow_pool_is_the_last_replicas_and_five_times_slower_inside_the_worker() -> None:
    lab = _lab("phase-6a-round-robin.yaml")
    calibration = Calibration(requests=5, latency_ms=60.0, service_ms=51.0)
    nodes = prediction.node_profiles(calibration, lab, Placement.pods(lab))
    assert [n.service_ms for n in nodes] == [60.0, 60.0, 60.0 + 4 * 51.0]
    assert {n.workers for n in nodes} == {2}


@pytest.mark.parametrize("name", ["phase-6a-round-robin.yaml", "phase-6b-least-outstanding.yaml"])
def test_balancing_prediction_shares_and_p99(name: str) -> None:
    lab = _lab(name)
    predicted = prediction.prediction(lab, _report(lab), Placement.pods(lab))
    assert predicted is not None and "storm" not in predicted
    balancing = predicted["balancing"]
    assert balancing["strategy"] == lab.spec.load.balancing
    shares = [node["share"] for node in balancing["nodes"]]
    assert [node["slow"] for node in balancing["nodes"]] == [False, False, True]
    assert sum(shares) == pytest.approx(1.0, abs=1e-3)
    assert balancing["slowShare"] == pytest.approx(shares[2], abs=1e-4)
    by_strategy = {row["strategy"]: row for row in balancing["strategies"]}
    assert by_strategy[lab.spec.load.balancing]["p99Millis"] == balancing["p99Millis"]
    # Round-robin gives the slow node a third and its queue the fleet's p99; least-outstanding
    # levels the outstanding requests: the slow node's share falls, and p99 with it.
    assert by_strategy["round-robin"]["slowShare"] == pytest.approx(1 / 3, abs=1e-3)
    assert by_strategy["least-outstanding"]["slowShare"] < 0.2
    assert by_strategy["least-outstanding"]["p99Millis"] <= by_strategy["round-robin"][
        "p99Millis"
    ] / 2  # fmt: skip


def _storm_report(recovered: bool) -> dict[str, Any]:
    figures: dict[str, Any] = {
        "recovered": recovered,
        "amplification": 0.9 if recovered else 2.56,
        "goodputDuringTrigger": 0.21 if recovered else 0.15,
        "goodputAfterTrigger": 0.97 if recovered else 0.0,
        "verdict": "Recovered" if recovered else "DidNotRecover",
    }
    if recovered:
        figures["recoverySeconds"] = 1
    return {"verdict": "Errors", "storm": figures, "latencyMillis": {"p99": 964.1}}


def test_slo_met_of_a_storm_run_is_its_storm_verdict() -> None:
    status, reason, message = run_status.run_slo_condition(_storm_report(recovered=False))
    assert (status, reason) == ("False", "DidNotRecover")
    assert "amplification 2.56x" in message and "0.00 after it" in message
    status, reason, message = run_status.run_slo_condition(_storm_report(recovered=True))
    assert (status, reason) == ("True", "Recovered")
    assert "back 1 s after the trigger" in message and "amplification 0.90x" in message


def test_slo_met_without_a_trigger_is_p99_against_the_slo() -> None:
    report = {"verdict": "OK", "latencyMillis": {"p99": 10}, "sloP99Millis": 20}
    assert run_status.run_slo_condition(report)[:2] == ("True", "WithinSLO")
    no_trigger = {**report, "storm": {"verdict": "NoTrigger", "amplification": 1.4}}
    assert run_status.run_slo_condition(no_trigger)[:2] == ("True", "WithinSLO")


def test_history_rows_carry_the_storm_and_the_strategy() -> None:
    storm_lab = _lab("phase-5a-storm.yaml")
    row = history_row(storm_lab, {**_report(storm_lab), **_storm_report(recovered=True)})
    assert (row["amplification"], row["recoverySeconds"], row["stormVerdict"]) == (
        0.9, 1, "Recovered",
    )  # fmt: skip
    assert "balancing" not in row
    row = history_row(storm_lab, {**_report(storm_lab), **_storm_report(recovered=False)})
    assert "recoverySeconds" not in row and row["stormVerdict"] == "DidNotRecover"
    balancing_lab = _lab("phase-6b-least-outstanding.yaml")
    row = history_row(balancing_lab, {**_report(balancing_lab), "balancing": "least-outstanding"})
    assert row["balancing"] == "least-outstanding" and "amplification" not in row
    assert "balancing" not in history_row(_lab("phase-1-overwhelm.yaml"), _report(storm_lab))
