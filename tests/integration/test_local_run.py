"""Phase files on this machine, real nodes and the real load generator: shapes, not speeds.

Shape claims use I/O-wait work (loadFactor 0, ioMillis N) so that two loaded cores do not decide
them. Tolerance of model vs measurement: throughput within +-35%, for replicas of one worker and
for a node of several workers alike (its workers share one queue: docs/node.md).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from nodelab.local import cli_run
from nodelab.local.fleet import Fleet
from nodelab.local.narration import Narrator
from nodelab.local.phase_run import PhaseResult, run_phase
from nodelab.local.settings import LocalSettings
from nodelab.model import crd, spec, validation

from tests.support.processes import free_base_port

PHASES = Path(__file__).resolve().parents[2] / "manifests" / "phases"
RPS_TOLERANCE = 0.35


def lab_document(
    replicas: int, workers: int, concurrency: int, *, io_millis: int = 40, requests: int = 24
) -> dict[str, Any]:
    return {
        "apiVersion": "lab.nodelab.dev/v1alpha1",
        "kind": "NodeLab",
        "metadata": {"name": "shape"},
        "spec": {
            "node": {
                "replicas": replicas,
                "workers": workers,
                "work": {"loadFactor": 0, "ioMillis": io_millis},
            },
            "load": {"concurrency": concurrency, "requests": requests},
        },
    }


def base_port() -> int:
    """A base port for a fleet of up to 4 replicas (free, below the ephemeral range)."""
    return free_base_port(4)


def run(fleet: Fleet, settings: LocalSettings, document: dict[str, Any]) -> PhaseResult:
    return run_phase("shape", spec.parse_nodelab(document), settings, fleet, Narrator(quiet=True))


def p50(result: PhaseResult) -> float:
    return float(result.report["latencyMillis"]["p50"])


def test_shapes_and_model_in_io_mode(started: list[subprocess.Popen[bytes]]) -> None:
    settings = LocalSettings(base_port=base_port(), mode="io", quick=True, grace_s=5)
    with Fleet(settings) as fleet:
        alone = run(fleet, settings, lab_document(1, 1, 1))
        queued = run(fleet, settings, lab_document(1, 1, 4))
        spread = run(fleet, settings, lab_document(3, 1, 3))
        workers = run(fleet, settings, lab_document(1, 4, 4))
    # More concurrency on the same capacity: requests queue, latency rises (~4x).
    assert p50(queued) > 2.5 * p50(alone)
    # More workers for the same load: latency falls.
    assert p50(workers) < 0.8 * p50(queued)
    assert float(workers.report["rps"]) > 1.3 * float(queued.report["rps"])
    # The model agrees: a node's workers share one queue, whichever worker took a connection.
    for result in (alone, queued, spread, workers):
        measured = float(result.report["rps"])
        predicted = result.prediction.throughput_rps
        assert abs(measured / predicted - 1) <= RPS_TOLERANCE, (measured, predicted)
    assert queued.prediction.bottleneck == "workers"
    assert spread.prediction.bottleneck == "clients"
    assert [r.report["errors"]["total"] for r in (alone, queued, spread, workers)] == [0] * 4


def test_real_phase_files_validate_and_run_quick(
    tmp_path: Path, started: list[subprocess.Popen[bytes]], capsys: pytest.CaptureFixture[str]
) -> None:
    # One lab per journey: the scaling phases (1-4, the challenge), the storm, the balancing.
    labs = {"phase-5": "storm-lab", "phase-6": "balancing-lab"}
    for path in sorted(PHASES.glob("*.yaml")):
        assert spec.load_phase_file(path).name == labs.get(path.name[:7], "scaling-lab")
    status_out = tmp_path / "status.json"
    argv = [
        str(PHASES / "phase-1-overwhelm.yaml"), "--quick", "--mode", "io",
        "--base-port", str(base_port()), "--status-out", str(status_out),
    ]  # fmt: skip
    assert cli_run.main(argv) == 0
    out = capsys.readouterr()
    assert "capacity model" in out.out and "quick: loadFactor 35 -> 27" in out.err
    status = json.loads(status_out.read_text())
    assert status["phase"] == "Completed"
    assert status["lastRun"]["successes"] == 20
    assert status["prediction"]["bottleneck"] == "workers"
    schema = crd.spec_schema()
    document = {**yaml.safe_load((PHASES / "phase-1-overwhelm.yaml").read_text()), "status": status}
    assert validation.validate_object(validation.apply_defaults(document, schema), schema) == []
    assert len(started) == 1 and started[0].poll() is not None


def test_node_crash_mid_run_stops_everything(
    tmp_path: Path, started: list[subprocess.Popen[bytes]], capsys: pytest.CaptureFixture[str]
) -> None:
    phase = tmp_path / "crash.yaml"
    phase.write_text(yaml.safe_dump(lab_document(2, 1, 2, io_millis=50, requests=200)))

    def kill_first_node() -> None:
        deadline = time.monotonic() + 30
        while not started and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.5)  # health, calibration, then into the load
        os.killpg(started[0].pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_first_node, daemon=True)
    killer.start()
    code = cli_run.main([str(phase), "--base-port", str(base_port())])
    killer.join(timeout=30)
    assert code == 1
    assert "was killed by signal 9" in capsys.readouterr().err
    assert len(started) == 2


def test_port_in_use_is_reported_and_nothing_starts(
    tmp_path: Path, started: list[subprocess.Popen[bytes]], capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    port = base_port()
    phase = tmp_path / "two.yaml"
    phase.write_text(yaml.safe_dump(lab_document(2, 1, 1)))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port + 1))
        busy.listen()
        assert cli_run.main([str(phase), "--base-port", str(port)]) == 1
    err = capsys.readouterr().err
    assert f"port {port + 1} on 127.0.0.1 is in use" in err
    assert started == []


def _groups_with_port(port: int) -> list[int]:
    """PIDs of node processes listening on ``port`` (by command line; ours alone use it)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"node_service" in cmdline and str(port).encode() in cmdline:
                found.append(int(entry))
    return found


def test_ctrl_c_leaves_no_process(tmp_path: Path) -> None:
    phase = tmp_path / "slow.yaml"
    phase.write_text(yaml.safe_dump(lab_document(1, 2, 2, io_millis=200, requests=400)))
    port = base_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "nodelab.local.cli_run", str(phase), "--base-port", str(port)],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if "loading" in line:
                break
        nodes = _groups_with_port(port)
        assert nodes, "the node should be running during the load"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 130
        assert "interrupted; every node it started is stopped" in err
        assert [pid for pid in nodes if Path(f"/proc/{pid}").exists()] == []
        assert _groups_with_port(port) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
