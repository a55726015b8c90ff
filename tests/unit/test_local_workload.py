"""Quick and I/O modes: what the local fleet runs instead of the file's figures, and the SLO."""

from __future__ import annotations

from pathlib import Path

import pytest
from nodelab.local import workload
from nodelab.model import spec

PHASES = Path(__file__).resolve().parents[2] / "manifests" / "phases"


@pytest.fixture
def phase1() -> spec.NodeLab:
    return spec.load_phase_file(PHASES / "phase-1-overwhelm.yaml")


def test_fib_calls_is_the_recursive_call_count() -> None:
    assert [workload.fib_calls(n) for n in range(5)] == [1, 1, 3, 5, 9]
    assert workload.fib_calls(35) / workload.fib_calls(27) == pytest.approx(47, rel=0.01)


def test_full_mode_keeps_the_file(phase1: spec.NodeLab) -> None:
    plan = workload.plan_workload(phase1, quick=False, mode="cpu")
    assert (plan.load_factor, plan.io_millis, plan.requests) == (35, 0, 20)
    assert plan.work_ratio == 1.0
    assert plan.notes == ()


def test_quick_lowers_the_load_factor_and_says_so(phase1: spec.NodeLab) -> None:
    plan = workload.plan_workload(phase1, quick=True, mode="cpu")
    assert plan.load_factor == workload.QUICK_LOAD_FACTOR
    assert plan.work_ratio == pytest.approx(47, rel=0.01)
    assert any("loadFactor 35 -> 27" in note for note in plan.notes)


def test_quick_caps_requests() -> None:
    lab = spec.parse_nodelab(
        {
            "apiVersion": "lab.nodelab.dev/v1alpha1",
            "kind": "NodeLab",
            "metadata": {"name": "big"},
            "spec": {"node": {"work": {"loadFactor": 20}}, "load": {"requests": 500}},
        }
    )
    plan = workload.plan_workload(lab, quick=True, mode="cpu")
    assert plan.requests == workload.QUICK_MAX_REQUESTS
    assert plan.load_factor == 20  # already small: unchanged
    assert plan.work_ratio == 1.0


def test_io_mode_turns_cpu_work_into_an_equal_wait(
    phase1: spec.NodeLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(workload, "fib_millis", lambda n: {27: 20.4, 35: 960.0}[n])
    quick = workload.plan_workload(phase1, quick=True, mode="io")
    assert (quick.load_factor, quick.io_millis, quick.work_load_factor) == (0, 20, 27)
    full = workload.plan_workload(phase1, quick=False, mode="io")
    assert (full.load_factor, full.io_millis) == (0, 960)
    assert any("io mode" in note for note in quick.notes)


def test_slo_scales_with_the_service_time(phase1: spec.NodeLab) -> None:
    plan = workload.plan_workload(phase1, quick=True, mode="cpu")
    # 20 ms of fib(27) + 2 ms of HTTP: the full request is 2 + 20 x 47 ms.
    factor = workload.slo_factor(plan, latency_ms=22.0, service_ms=20.0)
    expected = 22.0 / (2.0 + 20.0 * plan.work_ratio)
    assert factor == pytest.approx(expected)
    assert (
        workload.slo_factor(
            workload.plan_workload(phase1, quick=False, mode="cpu"), latency_ms=900, service_ms=890
        )
        == 1.0
    )


def test_fib_millis_extrapolates_past_the_timed_size() -> None:
    small = workload.fib_millis(20)
    assert small > 0
    assert workload.fib_millis(0) == 0.0
