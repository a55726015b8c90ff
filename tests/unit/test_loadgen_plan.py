"""The load plan: defaults, validation, derived bounds."""

from __future__ import annotations

import pytest

from loadgen.plan import DEFAULT_TARGETS, LoadPlan, PlanError


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
