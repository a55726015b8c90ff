"""Phases 5 and 6 on this machine: `nodelab run` of the shipped files, real nodes, real load.

Quick mode (storm runs of 10 s with the trigger window scaled alike, balanced runs of 5 s); the
phase files' work is an I/O wait, so two loaded cores do not decide the shapes. Assertions are
on shape and ratios (amplification, recovered or not, shares), never on speed.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from nodelab.local import cli_run, statusdoc
from nodelab.local.fleet import Fleet
from nodelab.local.narration import Narrator
from nodelab.local.phase_run import run_phase
from nodelab.local.settings import LocalSettings
from nodelab.model import conditions, crd, spec, validation

from tests.support.processes import free_base_port

PHASES = Path(__file__).resolve().parents[2] / "manifests" / "phases"


def nodelab_run(name: str, status_out: Path) -> dict[str, Any]:
    argv = [str(PHASES / name), "--quick", "--base-port", str(free_base_port(4))]
    assert cli_run.main([*argv, "--status-out", str(status_out)]) == 0
    status: dict[str, Any] = json.loads(status_out.read_text(encoding="utf-8"))
    return status


def reasons(status: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: c["reason"] for c in status["conditions"]}


def test_the_naive_storm_does_not_recover(
    tmp_path: Path, started: list[subprocess.Popen[bytes]]
) -> None:
    status = nodelab_run("phase-5a-storm.yaml", tmp_path / "status.json")
    last_run = status["lastRun"]
    storm = last_run["storm"]
    assert storm["amplification"] >= 2.0, storm
    assert storm["recovered"] is False and storm["verdict"] == "DidNotRecover", storm
    assert storm["goodputAfterTrigger"] < 0.5, storm
    # The quick run's window is the file's scaled by 10 / 20 s, and the timeline covers the run.
    assert last_run["trigger"]["startSeconds"] == 2 and last_run["trigger"]["endSeconds"] == 3.5
    points = last_run["timeline"]["points"]
    assert last_run["timeline"]["secondsPerPoint"] == 1 and len(points) >= 10
    assert sum(p["attempts"] for p in points) > 2 * sum(p["offered"] for p in points[:4])
    assert reasons(status) == {
        "SpecValid": "Valid", "Available": "RolledOut", "LoadComplete": "Succeeded",
        "SLOMet": "DidNotRecover",
    }  # fmt: skip
    assert status["prediction"]["storm"]["sustains"] is True
    row = status["history"][-1]
    assert row["stormVerdict"] == "DidNotRecover" and "recoverySeconds" not in row
    assert row["amplification"] == storm["amplification"]
    # The CRD takes the status as the local runtime wrote it (history items are typed).
    document = yaml.safe_load((PHASES / "phase-5a-storm.yaml").read_text(encoding="utf-8"))
    schema = crd.spec_schema()
    checked = validation.apply_defaults({**document, "status": status}, schema)
    assert validation.validate_object(checked, schema) == []


def test_the_defended_storm_recovers_and_the_token_is_ours_alone(
    started: list[subprocess.Popen[bytes]],
) -> None:
    lab = spec.load_phase_file(PHASES / "phase-5c-defended.yaml")
    settings = LocalSettings(base_port=free_base_port(4), quick=True, grace_s=5)
    with Fleet(settings) as fleet:
        result = run_phase("5c", lab, settings, fleet, Narrator(quiet=True))
        token = fleet.fault_token_file
        assert token is not None and Path(token).parent.name.startswith("nodelab-fleet-")
        assert stat.S_IMODE(os.stat(token).st_mode) == 0o600
    assert not Path(token).exists()  # removed with the fleet's scratch directory
    status = statusdoc.build_status(result)
    storm = status["lastRun"]["storm"]
    assert storm["recovered"] is True and storm["verdict"] == "Recovered", storm
    assert storm["goodputAfterTrigger"] >= 0.8, storm
    assert storm["attemptErrors"].get("shed", 0) > 0 or "breaker" in storm, storm
    slo = conditions.find_condition(status["conditions"], conditions.SLO_MET)
    assert slo is not None and (slo["status"], slo["reason"]) == ("True", "Recovered")
    assert status["history"][-1]["recoverySeconds"] == storm["recoverySeconds"]


def test_least_outstanding_sends_the_slow_node_fewer_requests_than_round_robin(
    tmp_path: Path, started: list[subprocess.Popen[bytes]]
) -> None:
    status_out = tmp_path / "status.json"
    round_robin = nodelab_run("phase-6a-round-robin.yaml", status_out)
    least = nodelab_run("phase-6b-least-outstanding.yaml", status_out)

    def slow_share(status: dict[str, Any]) -> float:
        rows = {row["node"]: row for row in status["lastRun"]["perNode"]}
        assert set(rows) == {f"balancing-lab-{i}" for i in range(3)}
        return float(rows["balancing-lab-2"]["share"])  # the slow pool: the last replica

    assert slow_share(round_robin) == pytest.approx(1 / 3, abs=0.05)
    assert slow_share(least) < 0.7 * slow_share(round_robin)
    assert least["lastRun"]["latencyMillis"]["p99"] < round_robin["lastRun"]["latencyMillis"]["p99"]
    predicted = least["prediction"]["balancing"]
    assert predicted["strategy"] == "least-outstanding" and predicted["nodes"][2]["slow"]
    # One lab, one journey: both runs are in the history, each with its strategy.
    assert [row["balancing"] for row in least["history"]] == ["round-robin", "least-outstanding"]
