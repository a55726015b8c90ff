"""The load plan: defaults, validation, derived bounds."""

from __future__ import annotations

import pytest

from loadgen.plan import DEFAULT_TARGETS, LoadPlan, PlanError, Trigger
from loadgen.resilience import RetryPolicy


def test_defaults_are_the_workshops() -> None:
    plan = LoadPlan()
    assert (
        plan.targets
        == DEFAULT_TARGETS
        == (
            "http://127.0.0.1:5001",
            "http://127.0.0.1:5002",
            "http://127.0.0.1:5003",
        )
    )
    assert (plan.concurrency, plan.requests, plan.duration_s, plan.path) == (5, 50, None, "/work")
    assert (plan.timeout_s, plan.processes, plan.slo_p99_ms) == (30.0, 1, 5000.0)
    assert plan.mode == "closed"


def test_a_duration_replaces_the_default_count() -> None:
    plan = LoadPlan(duration_s=10)
    assert plan.requests is None
    assert plan.duration_s == 10


def test_rate_makes_an_open_loop() -> None:
    assert LoadPlan(rate=10.0).mode == "open"


def test_lists_become_tuples_and_trailing_slashes_go() -> None:
    plan = LoadPlan(targets=["http://127.0.0.1:5001/"], sweep=[1, 2])  # type: ignore[arg-type]
    assert plan.targets == ("http://127.0.0.1:5001",)
    assert plan.sweep == (1, 2)
    hash(plan)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"targets": ()}, "targets"),
        ({"targets": ("ftp://127.0.0.1:5001",)}, "targets"),
        ({"targets": ("127.0.0.1:5001",)}, "targets"),
        ({"targets": ("http://",)}, "targets"),
        ({"targets": ("http://127.0.0.1:99999",)}, "targets"),
        ({"targets": ("http://127.0.0.1:5001/work",)}, "targets"),
        ({"path": "work"}, "path"),
        ({"concurrency": 0}, "concurrency"),
        ({"concurrency": -1}, "concurrency"),
        ({"requests": 0}, "requests"),
        ({"requests": 5, "duration_s": 1.0}, "duration_s"),
        ({"duration_s": -1.0}, "duration_s"),
        ({"rate": 0.0}, "rate"),
        ({"rate": float("inf")}, "rate"),
        ({"timeout_s": 0}, "timeout_s"),
        ({"processes": 0}, "processes"),
        ({"processes": 6}, "processes"),  # more processes than clients
        ({"processes": 3, "concurrency": 3, "requests": 2}, "processes"),
        ({"slo_p99_ms": 0}, "slo_p99_ms"),
        ({"sweep": ()}, "sweep"),
        ({"sweep": (1, 0)}, "sweep"),
        ({"sweep": (1, 5), "rate": 10.0}, "sweep"),
        ({"calibrate": -1}, "calibrate"),
        ({"deadline_s": 0}, "deadline_s"),
    ],
)
def test_bad_plans_name_the_field(changes: dict[str, object], field: str) -> None:
    with pytest.raises(PlanError) as caught:
        LoadPlan(**changes)  # type: ignore[arg-type]
    assert caught.value.field == field


def test_a_sweep_allows_processes_up_to_its_largest_level() -> None:
    plan = LoadPlan(sweep=(1, 5, 10, 20), processes=8)
    level = plan.with_concurrency(5)
    assert (level.concurrency, level.processes, level.sweep) == (5, 5, None)
    assert plan.with_concurrency(20).processes == 8


def test_every_run_has_the_documented_deadline() -> None:
    # The longest the stop condition allows, plus one timeout (docs/load-report.md).
    assert LoadPlan(duration_s=10, timeout_s=5).run_deadline_s() == 10 + 5.0
    assert LoadPlan(duration_s=3, rate=20.0, timeout_s=2).run_deadline_s() == 3 + 2.0
    assert LoadPlan(requests=10, concurrency=5, timeout_s=2).run_deadline_s() == 2 * 2 + 2.0
    assert LoadPlan(requests=100, rate=50.0, timeout_s=1).run_deadline_s() == 2 + 1.0
    assert LoadPlan(deadline_s=3.0).run_deadline_s() == 3.0


def test_scheduled_requests() -> None:
    assert LoadPlan(requests=40).scheduled == 40
    assert LoadPlan(rate=20.0, duration_s=3).scheduled == 60
    assert LoadPlan(rate=20.0, requests=7).scheduled == 7
    assert LoadPlan(duration_s=3).scheduled is None  # a closed loop for a while: no count


SLOW = Trigger(start_s=3, duration_s=4, mode="slow", extra_millis=300)
STORM = {"rate": 50.0, "duration_s": 20.0, "fault_token_file": "/run/token"}


def test_a_trigger_is_a_fault_body_and_a_report_window() -> None:
    assert SLOW.end_s == 7
    assert SLOW.fault_body() == {
        "startsInSeconds": 3,
        "durationSeconds": 4,
        "mode": "slow",
        "extraMillis": 300,
    }
    fail = Trigger(start_s=1.5, duration_s=2, mode="fail")
    assert fail.fault_body() == {"startsInSeconds": 1.5, "durationSeconds": 2, "mode": "fail"}
    assert fail.to_report() == {
        "startSeconds": 1.5, "endSeconds": 3.5, "durationSeconds": 2, "mode": "fail", "status": 503
    }  # fmt: skip
    assert Trigger(start_s=0, duration_s=1, mode="fail", status=500).fault_body()["status"] == 500


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"start_s": -1}, "trigger.start_s"),
        ({"duration_s": 0}, "trigger.duration_s"),
        ({"duration_s": float("nan")}, "trigger.duration_s"),
        ({"mode": "crash"}, "trigger.mode"),
        ({"extra_millis": None}, "trigger.extra_millis"),
        ({"extra_millis": 0}, "trigger.extra_millis"),
        ({"extra_millis": 60_001}, "trigger.extra_millis"),
        ({"status": 503}, "trigger.status"),  # status is for mode fail
        ({"mode": "fail"}, "trigger.extra_millis"),  # extraMillis is for mode slow
        ({"mode": "fail", "extra_millis": None, "status": 404}, "trigger.status"),
    ],
)
def test_bad_triggers_name_the_field(changes: dict[str, object], field: str) -> None:
    values: dict[str, object] = {"start_s": 1, "duration_s": 2, "mode": "slow", "extra_millis": 5}
    with pytest.raises(PlanError) as caught:
        Trigger(**{**values, **changes})  # type: ignore[arg-type]
    assert caught.value.field == field


def test_a_plan_that_retries_or_triggers_is_a_storm() -> None:
    assert not LoadPlan(rate=5.0).storm
    assert not LoadPlan(retry=RetryPolicy()).storm  # never retries: the usual loops
    assert LoadPlan(rate=5.0, retry=RetryPolicy(kind="immediate", max_attempts=2)).storm
    assert LoadPlan(trigger=SLOW, **STORM).storm  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"rate": None}, "trigger"),
        ({"duration_s": None, "requests": 100}, "trigger"),
        ({"duration_s": 7.0}, "trigger.duration_s"),  # the window must end before the run
        ({"fault_token_file": None}, "fault_token_file"),
        ({"fault_token_file": ""}, "fault_token_file"),
        ({"trigger": None, "rate": None, "retry": RetryPolicy(kind="backoff", max_attempts=3)},
         "retry"),
        ({"retry": {"kind": "immediate"}}, "retry"),
        ({"trigger": {"start_s": 1}}, "trigger"),
    ],
)  # fmt: skip
def test_bad_storm_plans_name_the_field(changes: dict[str, object], field: str) -> None:
    values: dict[str, object] = {**STORM, "trigger": SLOW}
    with pytest.raises(PlanError) as caught:
        LoadPlan(**{**values, **changes})  # type: ignore[arg-type]
    assert caught.value.field == field
