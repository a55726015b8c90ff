"""``nodelab tour --storm --quick`` and ``--balancing --quick`` end to end on 127.0.0.1.

Real node processes and the real load generator, run as a user runs them (a subprocess, bounded
in time); the claims are about what the tours write, not about speeds.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from nodelab.local import balancing_tour, storm_tour

from loadgen.balancing import STRATEGIES
from tests.support.processes import free_base_port

PHASES = Path(__file__).resolve().parents[2] / "manifests" / "phases"
# Start-up, calibration and a few short runs on 2 loaded cores, with room to spare.
TOUR_TIMEOUT_S = 420


def _tour(tmp_path: Path, flag: str) -> subprocess.CompletedProcess[str]:
    out = tmp_path / "out"
    argv = [
        sys.executable, "-m", "nodelab.local.cli_tour", flag, "--quick",
        "--out", str(out), "--base-port", str(free_base_port(4)),
    ]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = proc.communicate(timeout=TOUR_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        # SIGTERM: the tour stops every node it started before it exits (SIGKILL could not).
        proc.terminate()
        _, stderr = proc.communicate(timeout=60)
        pytest.fail(f"{flag} did not finish in {TOUR_TIMEOUT_S} s; stderr: {stderr[-3000:]}")
    return subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr)


@pytest.mark.skipif(
    len(storm_tour.storm_files(PHASES)) < 3,
    reason="manifests/phases/phase-5a/5b/5c-*.yaml are not there yet (the local runtime's "
    "phase 5 files)",
)
def test_storm_tour_quick_prints_the_table_and_draws_three_panels(tmp_path: Path) -> None:
    done = _tour(tmp_path, "--storm")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "What the storm lab shows" in done.stdout
    for path in storm_tour.storm_files(PHASES):
        assert path.stem in done.stdout
    assert "did not recover" in done.stdout or "Recovered" in done.stdout
    for name in ("storm.png", "storm.svg"):
        assert (tmp_path / "out" / name).stat().st_size > 10_000
    document = json.loads((tmp_path / "out" / "storm.json").read_text())
    assert len(document["runs"]) == len(document["stormPredictions"]) == 3
    for run in document["runs"]:
        assert run["report"]["timeline"]["points"], run["phase"]
        assert run["report"]["storm"]["verdict"] in ("Recovered", "DidNotRecover")


@pytest.mark.skipif(
    balancing_tour.balancing_file(PHASES) is None,
    reason="manifests/phases/phase-6a-*.yaml is not there yet (the local runtime's phase 6 file)",
)
def test_balancing_tour_quick_runs_every_strategy_on_one_fleet(tmp_path: Path) -> None:
    done = _tour(tmp_path, "--balancing")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "What the balancing lab shows" in done.stdout
    for strategy in STRATEGIES:
        assert strategy in done.stdout
    for name in ("balancing.png", "balancing.svg"):
        assert (tmp_path / "out" / name).stat().st_size > 10_000
    document = json.loads((tmp_path / "out" / "balancing.json").read_text())
    assert [r["report"]["balancing"] for r in document["runs"]] == list(STRATEGIES)
    # One fleet for every strategy: the same targets each time.
    assert len({tuple(r["report"]["targets"]) for r in document["runs"]}) == 1
    for run in document["runs"]:
        assert abs(sum(row["share"] for row in run["report"]["perNode"]) - 1.0) < 0.01
