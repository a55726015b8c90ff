"""``nodelab load`` flags: parsing, every kind of bad input, and build_argv round trips."""

from __future__ import annotations

from dataclasses import fields

import pytest

from loadgen.cli import FLAGS, CliOptions, UsageError, build_argv, main, parse
from loadgen.plan import DEFAULT_TARGETS, LoadPlan, Trigger
from loadgen.resilience import BreakerSettings, RetryPolicy
from tests.support.retry_policies import defended_policy


def test_no_flags_is_the_workshops_client() -> None:
    plan, options = parse([])
    assert plan == LoadPlan()
    assert plan.targets == DEFAULT_TARGETS
    assert options == CliOptions()


def test_every_flag_reaches_the_plan() -> None:
    plan, options = parse(
        [
            "-c", "20",
            "--target", "http://127.0.0.1:5002", "--target", "http://127.0.0.1:5003/",
            "--duration", "2.5", "--rate", "40", "--path", "/health", "--timeout", "3",
            "--processes", "2", "--slo-p99-ms", "250", "--calibrate", "3",
            "--generation", "4", "--expand-dns", "--fresh-connections", "--deadline", "60",
            "--json", "-", "--report-to", "labs/scaling-lab", "--quiet",
        ]
    )  # fmt: skip
    assert plan == LoadPlan(
        targets=("http://127.0.0.1:5002", "http://127.0.0.1:5003"),
        concurrency=20,
        duration_s=2.5,
        rate=40.0,
        path="/health",
        timeout_s=3.0,
        processes=2,
        slo_p99_ms=250.0,
        calibrate=3,
        generation=4,
        expand_dns=True,
        fresh_connections=True,
        deadline_s=60.0,
    )
    assert options == CliOptions(json_path="-", report_to="labs/scaling-lab", quiet=True)


def test_every_plan_field_has_a_flag() -> None:
    assert set(FLAGS) == {field.name for field in fields(LoadPlan)}


def test_sweep_levels() -> None:
    plan, _ = parse(["--sweep", "1,5,10,20"])
    assert plan.sweep == (1, 5, 10, 20)


BAD_INPUT = [
    (["--bogus"], "--bogus"),
    (["--concurrent", "0"], "--concurrent"),
    (["-c", "-3"], "--concurrent"),
    (["-c", "many"], "--concurrent"),
    (["--requests", "0"], "--requests"),
    (["--requests", "-5"], "--requests"),
    (["--duration", "0"], "--duration"),
    (["--duration", "nan"], "--duration"),
    (["--requests", "5", "--duration", "1"], "--duration"),
    (["--rate", "-1"], "--rate"),
    (["--timeout", "0"], "--timeout"),
    (["--processes", "0"], "--processes"),
    (["--processes", "9", "-c", "4"], "--processes"),
    (["--slo-p99-ms", "0"], "--slo-p99-ms"),
    (["--calibrate", "-1"], "--calibrate"),
    (["--generation", "x"], "--generation"),
    (["--target", "not a url"], "--target"),
    (["--target", "ftp://127.0.0.1:5001"], "--target"),
    (["--target", "http://127.0.0.1:notaport"], "--target"),
    (["--target", "127.0.0.1:5001"], "--target"),
    (["--path", "work"], "--path"),
    (["--sweep", "1,x"], "--sweep"),
    (["--sweep", "1,0"], "--sweep"),
    (["--sweep", ""], "--sweep"),
    (["--sweep", "1,5", "--rate", "10"], "--sweep"),
    (["--report-to", "scaling-lab"], "--report-to"),
    (["--report-to", "ns/"], "--report-to"),
    (["--report-to", "Bad_NS/lab"], "--report-to"),
    (["--report-to", "ns/lab/extra"], "--report-to"),
    (["--deadline", "0"], "--deadline"),
    (["--json"], "--json"),
]


@pytest.mark.parametrize(("argv", "flag"), BAD_INPUT)
def test_bad_input_exits_2_naming_the_flag(
    argv: list[str], flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    last_line = err.strip().splitlines()[-1]
    assert last_line.startswith("nodelab load: error:")
    assert flag in last_line


@pytest.mark.parametrize(("argv", "flag"), BAD_INPUT)
def test_parse_raises_usage_error(argv: list[str], flag: str) -> None:
    with pytest.raises(UsageError, match=flag):
        parse(argv)


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: nodelab load")
    for flag in ("--concurrent", "--rate", "--sweep", "--report-to", "--expand-dns"):
        assert flag in out


PLANS = [
    LoadPlan(),
    LoadPlan(targets=("http://10.0.0.1:5001",), concurrency=20, duration_s=12.5),
    LoadPlan(rate=33.3, requests=100, timeout_s=0.5, slo_p99_ms=250.5, path="/health"),
    LoadPlan(
        targets=("http://scaling-lab-nodes.labs.svc:5001",),
        sweep=(1, 5, 10, 20),
        processes=2,
        calibrate=3,
        generation=7,
        expand_dns=True,
        fresh_connections=True,
        deadline_s=600.0,
        timeout_s=120,
    ),
]


@pytest.mark.parametrize("plan", PLANS)
def test_build_argv_round_trips(plan: LoadPlan) -> None:
    argv = build_argv(plan)
    assert all(isinstance(arg, str) for arg in argv)
    parsed, options = parse(argv)
    assert parsed == plan
    assert options == CliOptions()


def test_build_argv_renders_output_options() -> None:
    argv = build_argv(LoadPlan(), json_path="out.json", report_to="labs/lab", quiet=True)
    assert argv[-5:] == ["--json", "out.json", "--report-to", "labs/lab", "--quiet"]
    assert parse(argv)[1] == CliOptions(json_path="out.json", report_to="labs/lab", quiet=True)


def test_build_argv_is_readable() -> None:
    argv = build_argv(LoadPlan(targets=("http://127.0.0.1:5002",), timeout_s=30.0))
    assert argv[:4] == ["--concurrent", "5", "--target", "http://127.0.0.1:5002"]
    assert "30" in argv  # whole numbers without a trailing .0


STORM_ARGV = ["--rate", "50", "--duration", "20", "--fault-token-file", "/run/token"]
SLOW_ARGV = ["--trigger-start", "3", "--trigger-duration", "4", "--trigger-extra-ms", "300"]


def test_the_storm_flags_build_the_policy_and_the_trigger() -> None:
    plan, _ = parse(
        [
            *STORM_ARGV, *SLOW_ARGV,
            "--retry-kind", "backoff", "--max-attempts", "4", "--retry-base-ms", "50",
            "--retry-cap-ms", "1500", "--retry-budget", "0.2", "--honor-retry-after",
            "--breaker-failure-ratio", "0.6", "--breaker-min-calls", "10",
            "--breaker-open-seconds", "2.5", "--breaker-probes", "2",
        ]
    )  # fmt: skip
    assert plan.retry == RetryPolicy(
        kind="backoff",
        max_attempts=4,
        base_millis=50,
        cap_millis=1500,
        budget_ratio=0.2,
        honor_retry_after=True,
        breaker=BreakerSettings(failure_ratio=0.6, min_calls=10, open_seconds=2.5, probes=2),
    )
    assert plan.trigger == Trigger(start_s=3, duration_s=4, mode="slow", extra_millis=300)
    assert plan.fault_token_file == "/run/token"
    assert plan.storm


def test_one_breaker_flag_makes_a_breaker_of_defaults_for_the_rest() -> None:
    plan, _ = parse(
        ["--rate", "5", "--retry-kind", "immediate", "--max-attempts", "2",
         "--breaker-min-calls", "7"]
    )  # fmt: skip
    assert plan.retry is not None and plan.retry.breaker == BreakerSettings(min_calls=7)


def test_a_fail_trigger_from_flags() -> None:
    plan, _ = parse(
        [*STORM_ARGV, "--trigger-start", "1", "--trigger-duration", "2", "--trigger-mode", "fail",
         "--trigger-status", "500"]
    )  # fmt: skip
    assert plan.trigger == Trigger(start_s=1, duration_s=2, mode="fail", status=500)
    assert plan.retry is None


STORM_BAD_INPUT = [
    (["--retry-kind", "sometimes"], "--retry-kind"),
    (["--retry-kind", "immediate", "--max-attempts", "2"], "--retry-kind"),  # no --rate
    (["--rate", "5", "--max-attempts", "3"], "--max-attempts"),  # kind none: exactly 1
    (["--rate", "5", "--retry-kind", "immediate"], "--max-attempts"),  # 1 attempt never retries
    (["--rate", "5", "--retry-kind", "backoff", "--max-attempts", "2", "--retry-base-ms", "500",
      "--retry-cap-ms", "100"], "--retry-cap-ms"),
    (["--retry-budget", "1.5"], "--retry-budget"),
    (["--breaker-failure-ratio", "0"], "--breaker-failure-ratio"),
    (["--breaker-min-calls", "0"], "--breaker-min-calls"),
    (["--breaker-open-seconds", "-1"], "--breaker-open-seconds"),
    ([*SLOW_ARGV, "--fault-token-file", "t"], "--trigger-start"),  # no --rate, no --duration
    (["--rate", "5", *SLOW_ARGV, "--fault-token-file", "t"], "--trigger-start"),  # no duration
    ([*STORM_ARGV, "--trigger-start", "3", "--trigger-extra-ms", "3"], "--trigger-duration"),
    ([*STORM_ARGV, "--trigger-duration", "3", "--trigger-extra-ms", "3"], "--trigger-start"),
    (["--rate", "5", "--duration", "7", *SLOW_ARGV, "--fault-token-file", "t"],
     "--trigger-duration"),  # 3 s + 4 s >= --duration 7
    (["--rate", "5", "--duration", "20", *SLOW_ARGV], "--fault-token-file"),
    ([*STORM_ARGV, "--trigger-start", "3", "--trigger-duration", "4"], "--trigger-extra-ms"),
    ([*STORM_ARGV, *SLOW_ARGV, "--trigger-status", "503"], "--trigger-status"),
    ([*STORM_ARGV, "--trigger-start", "3", "--trigger-duration", "4", "--trigger-mode", "fail",
      "--trigger-status", "404"], "--trigger-status"),
    ([*STORM_ARGV, *SLOW_ARGV, "--trigger-mode", "crash"], "--trigger-mode"),
    ([*STORM_ARGV, "--trigger-start", "-1", "--trigger-duration", "4"], "--trigger-start"),
]  # fmt: skip


@pytest.mark.parametrize(("argv", "flag"), STORM_BAD_INPUT)
def test_bad_storm_input_exits_2_naming_the_flag(
    argv: list[str], flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    last_line = capsys.readouterr().err.strip().splitlines()[-1]
    assert last_line.startswith(f"nodelab load: error: argument {flag}:"), last_line


STORM_PLANS = [
    LoadPlan(rate=40.0, duration_s=10, retry=RetryPolicy()),
    LoadPlan(rate=40.0, requests=100, retry=RetryPolicy(kind="immediate", max_attempts=3)),
    LoadPlan(
        rate=80.0,
        duration_s=20,
        timeout_s=1,
        retry=defended_policy(),
        trigger=Trigger(start_s=4, duration_s=3.5, mode="slow", extra_millis=300),
        fault_token_file="/var/run/nodelab/fault-token",
    ),
    LoadPlan(
        rate=10.0,
        duration_s=30,
        trigger=Trigger(start_s=0, duration_s=5, mode="fail", status=500),
        fault_token_file="token",
    ),
    LoadPlan(
        rate=10.0,
        duration_s=30,
        trigger=Trigger(start_s=2, duration_s=5, mode="fail"),
        fault_token_file="token",
    ),
]


@pytest.mark.parametrize("plan", STORM_PLANS)
def test_build_argv_round_trips_storm_plans(plan: LoadPlan) -> None:
    argv = build_argv(plan)
    assert parse(argv) == (plan, CliOptions())


def test_a_plan_without_storm_fields_writes_no_storm_flags() -> None:
    assert not [arg for arg in build_argv(LoadPlan()) if "retry" in arg or "trigger" in arg]
