"""The local runtime for phases 5 and 6: the fleet's node flags, quick storm runs, the lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from nodelab.local import workload
from nodelab.local.cli_run import phase56_lines
from nodelab.local.fleet import FleetSpec
from nodelab.model import spec

from node_service.settings import node_argv, parse_settings

PHASES = Path(__file__).resolve().parents[2] / "manifests" / "phases"


def _lab(name: str) -> spec.NodeLab:
    return spec.load_phase_file(PHASES / name)


def test_the_slow_pool_is_the_last_replicas_with_the_factor() -> None:
    fleet = FleetSpec.of(_lab("phase-6a-round-robin.yaml"), load_factor=0, io_millis=50)
    assert (fleet.replicas, fleet.slow_replicas, fleet.fault_token) == (3, 1, False)
    assert [fleet.is_slow(i) for i in range(3)] == [False, False, True]
    assert fleet.node_fields(0) == {}
    assert fleet.node_fields(2) == {"service_factor": 5.0}
    slow = parse_settings(node_argv(**fleet.node_fields(2)), {})
    assert slow.service_factor == 5.0 and slow.extra_millis == 0


def test_protection_goes_to_every_node_and_a_trigger_asks_for_the_token() -> None:
    fleet = FleetSpec.of(_lab("phase-5c-defended.yaml"), load_factor=0, io_millis=100)
    assert fleet.fault_token and fleet.slow_replicas == 0
    for index in range(fleet.replicas):
        assert fleet.node_fields(index) == {"max_queue": 1, "retry_after_seconds": 1}
    settings = parse_settings(node_argv(**fleet.node_fields(0)), {})
    assert (settings.protection.max_queue, settings.protection.retry_after_seconds) == (1, 1)
    naive = FleetSpec.of(_lab("phase-5a-storm.yaml"), load_factor=0, io_millis=100)
    assert naive.fault_token and naive.node_fields(0) == {}


def test_phases_1_to_4_fleets_have_none_of_it() -> None:
    fleet = FleetSpec.of(_lab("phase-4-horizontal.yaml"), load_factor=27, io_millis=0)
    assert (fleet.protection, fleet.fault_token, fleet.slow_replicas) == (None, False, 0)
    assert fleet.node_fields(0) == {}


def test_quick_storm_run_is_shorter_and_its_trigger_scales_with_it() -> None:
    work = workload.plan_workload(_lab("phase-5a-storm.yaml"), quick=True, mode="io")
    assert work.duration_s == workload.QUICK_MAX_STORM_DURATION_S == 10
    assert work.time_scale == pytest.approx(0.5)
    assert (work.load_factor, work.io_millis) == (0, 100)  # I/O work: neither mode changes it
    assert any("2-3.5 s" in note and "rate and timeout unchanged" in note for note in work.notes)


def test_a_full_storm_run_and_a_quick_balancing_run_keep_the_clock() -> None:
    assert (
        workload.plan_workload(_lab("phase-5a-storm.yaml"), quick=False, mode="cpu").time_scale == 1
    )
    quick = workload.plan_workload(_lab("phase-6a-round-robin.yaml"), quick=True, mode="cpu")
    assert (quick.duration_s, quick.time_scale) == (workload.QUICK_MAX_DURATION_S, 1.0)


def test_phase56_lines_put_measurement_beside_the_model() -> None:
    status = {
        "lastRun": {
            "balancing": "least-outstanding",
            "latencyMillis": {"p99": 510.0},
            "perNode": [
                {"node": "lab-2", "share": 0.1, "latencyMillis": {"p99": 530.0}},
                {"node": "lab-0", "share": 0.45, "latencyMillis": {"p99": 117.0}},
                {"node": "lab-1", "share": 0.45, "latencyMillis": {"p99": 122.0}},
            ],
            "storm": {"verdict": "Recovered", "recoverySeconds": 1, "amplification": 0.88},
        },
        "prediction": {
            "storm": {"amplification": 0.9, "reasons": ["offered 64 req/s"]},
            "balancing": {
                "p99Millis": 554.0,
                "nodes": [
                    {"share": 0.44, "slow": False, "p99Millis": 143.0},
                    {"share": 0.44, "slow": False, "p99Millis": 143.0},
                    {"share": 0.11, "slow": True, "p99Millis": 554.0},
                ],
                "strategies": [{"strategy": "round-robin", "p99Millis": 1662.0}],
            },
        },
    }
    lines = phase56_lines(json.loads(json.dumps(status)))
    assert lines[0].startswith("storm: Recovered 1 s after the trigger; amplification 0.88x")
    assert "  model: offered 64 req/s" in lines
    assert "  lab-2 (slow): share 0.10 (model 0.11), p99 530.0 ms (model 554.0 ms)" in lines
    assert lines[-1] == "  model p99 by strategy: round-robin 1662.0 ms"
    assert phase56_lines({"lastRun": {}, "prediction": {}}) == []
