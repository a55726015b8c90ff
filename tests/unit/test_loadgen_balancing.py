"""The balancing strategy as a plan field and as the ``--balancing`` flag of the one table."""

from __future__ import annotations

import pytest

from loadgen.balancing import STRATEGIES
from loadgen.cli import FLAGS, UsageError, build_argv, build_parser, parse
from loadgen.plan import LoadPlan, PlanError
from loadgen.resilience import RetryPolicy


def test_a_plan_balances_round_robin_unless_told() -> None:
    assert LoadPlan().balancing == "round-robin"


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_every_strategy_is_a_plan_value(name: str) -> None:
    assert LoadPlan(balancing=name).balancing == name  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["least-connections", "", "P2C", 2, None])
def test_an_unknown_strategy_is_a_plan_error_naming_the_field_and_the_choices(bad: object) -> None:
    with pytest.raises(PlanError) as caught:
        LoadPlan(balancing=bad)  # type: ignore[arg-type]
    assert caught.value.field == "balancing"
    assert "round-robin, random, least-outstanding, p2c, peak-ewma" in caught.value.message


def test_a_storm_run_refuses_a_strategy_it_would_not_follow() -> None:
    storm = {"rate": 10.0, "duration_s": 5.0, "retry": RetryPolicy("immediate", 3)}
    assert LoadPlan(**storm).storm  # type: ignore[arg-type]
    with pytest.raises(PlanError) as caught:
        LoadPlan(balancing="p2c", **storm)  # type: ignore[arg-type]
    assert caught.value.field == "balancing"


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_the_flag_sets_the_field(name: str) -> None:
    plan, _ = parse(["--balancing", name])
    assert plan.balancing == name


def test_an_unknown_strategy_is_a_usage_error_naming_the_flag() -> None:
    with pytest.raises(UsageError) as caught:
        parse(["--balancing", "fastest"])
    message = str(caught.value)
    assert "--balancing" in message
    assert "least-outstanding" in message
    assert "'fastest'" in message


def test_plan_errors_on_the_field_name_the_flag() -> None:
    assert FLAGS["balancing"] == "--balancing"


@pytest.mark.parametrize("name", [name for name in STRATEGIES if name != "round-robin"])
def test_build_argv_writes_a_strategy_and_parse_reads_it_back(name: str) -> None:
    plan = LoadPlan(targets=("http://127.0.0.1:5001", "http://127.0.0.1:5002"), balancing=name)  # type: ignore[arg-type]
    argv = build_argv(plan)
    assert argv[argv.index("--balancing") + 1] == name
    assert parse(argv)[0] == plan


def test_the_default_strategy_adds_no_flag_so_existing_commands_stay_as_they_were() -> None:
    argv = build_argv(LoadPlan())
    assert "--balancing" not in argv
    assert parse(argv)[0] == LoadPlan()


def test_the_help_lists_the_strategies_and_the_default() -> None:
    text = build_parser().format_help()
    assert "--balancing STRATEGY" in text
    assert "default round-robin" in " ".join(text.split())
