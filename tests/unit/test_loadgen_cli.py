"""``nodelab load`` flags: parsing, every kind of bad input, and build_argv round trips."""

from __future__ import annotations

from dataclasses import fields

import pytest

from loadgen.cli import FLAGS, CliOptions, UsageError, build_argv, main, parse
from loadgen.plan import DEFAULT_TARGETS, LoadPlan


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
