"""nodelab.model.load_plan for phases 5 and 6: retry, trigger, balancing and the token file."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from nodelab.model import spec
from nodelab.model.load_plan import RunLength, load_plan, load_trigger

from loadgen.plan import PlanError, Trigger
from loadgen.resilience import RetryPolicy

PHASES = Path(__file__).resolve().parents[2] / "manifests" / "phases"
TARGETS = ("http://127.0.0.1:5001", "http://127.0.0.1:5002")


def _lab(name: str) -> spec.NodeLab:
    return spec.load_phase_file(PHASES / name)


def test_a_storm_lab_maps_retry_and_trigger_with_the_token_file() -> None:
    lab = _lab("phase-5a-storm.yaml")
    plan = load_plan(lab, targets=TARGETS, calibrate=5, fault_token_file="/run/token")
    assert plan.retry == RetryPolicy(kind="immediate", max_attempts=3)
    assert plan.trigger == Trigger(start_s=4.0, duration_s=3.0, mode="slow", extra_millis=300)
    assert plan.fault_token_file == "/run/token"
    assert (plan.rate, plan.duration_s, plan.timeout_s) == (64.0, 20.0, 1.0)
    assert plan.storm and plan.balancing == "round-robin"


def test_a_trigger_without_the_token_file_is_refused_by_the_plan() -> None:
    with pytest.raises(PlanError, match="fault_token_file"):
        load_plan(_lab("phase-5a-storm.yaml"), targets=TARGETS, calibrate=5)


def test_a_shorter_run_scales_the_trigger_window_with_it() -> None:
    lab = _lab("phase-5c-defended.yaml")
    length = RunLength(requests=None, duration_s=10.0, time_scale=0.5)
    plan = load_plan(lab, targets=TARGETS, calibrate=5, length=length, fault_token_file="/t")
    assert plan.trigger is not None
    assert (plan.trigger.start_s, plan.trigger.end_s, plan.duration_s) == (2.0, 3.5, 10.0)
    assert plan.trigger.extra_millis == 300  # the fault itself is not scaled


def test_time_scale_is_a_fraction() -> None:
    with pytest.raises(ValueError, match="time_scale"):
        RunLength(requests=None, duration_s=5.0, time_scale=2.0)


def test_a_fail_trigger_carries_its_status_and_no_extra_wait() -> None:
    trigger = spec.TriggerSpec(start_seconds=1, duration_seconds=2, mode="fail", status=500)
    assert load_trigger(trigger) == Trigger(start_s=1, duration_s=2, mode="fail", status=500)
    assert load_trigger(None) is None


def test_a_balancing_lab_maps_its_strategy() -> None:
    for name, strategy in (
        ("phase-6a-round-robin.yaml", "round-robin"),
        ("phase-6b-least-outstanding.yaml", "least-outstanding"),
    ):
        plan = load_plan(_lab(name), targets=TARGETS, calibrate=5)
        assert (plan.balancing, plan.retry, plan.trigger, plan.fault_token_file) == (
            strategy, None, None, None,
        )  # fmt: skip
        assert not plan.storm


def test_phases_1_to_4_plans_are_unchanged() -> None:
    lab = _lab("phase-1-overwhelm.yaml")
    plan = load_plan(lab, targets=TARGETS, calibrate=5)
    assert (plan.retry, plan.trigger, plan.balancing) == (None, None, "round-robin")
    assert dataclasses.replace(plan, calibrate=0).requests == lab.spec.load.requests
