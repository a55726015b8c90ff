"""The node's flags and environment: one settings object, bad values exit 2 naming the flag."""

from __future__ import annotations

from dataclasses import fields as fields_of
from pathlib import Path
from typing import Any

import pytest

from node_service import cli
from node_service.settings import (
    ConnectionLimits,
    NodeSettings,
    Protection,
    StoreLimits,
    env_var,
    node_argv,
    parse_settings,
    settings_from_env,
    settings_to_env,
)


def test_defaults_follow_the_contract() -> None:
    settings = parse_settings([], environ={})
    assert (settings.host, settings.port, settings.node_id) == ("127.0.0.1", 5001, "1")
    assert (settings.workers, settings.load_factor, settings.io_millis) == (1, 30, 0)
    assert settings.access_log is False


def test_workshop_flags() -> None:
    argv = ["--port", "5001", "--id", "1", "--load-factor", "35", "--workers", "10"]
    settings = parse_settings(argv, environ={})
    assert (settings.port, settings.node_id, settings.load_factor, settings.workers) == (
        5001,
        "1",
        35,
        10,
    )


def test_environment_is_the_fallback_and_flags_win() -> None:
    env = {"NODELAB_PORT": "6000", "NODELAB_NODE_ID": "pod-a", "NODELAB_WORKERS": "3"}
    settings = parse_settings(["--workers", "4"], environ=env)
    assert (settings.port, settings.node_id, settings.workers) == (6000, "pod-a", 4)


def test_settings_are_frozen() -> None:
    settings = parse_settings([], environ={})
    with pytest.raises(AttributeError):
        settings.port = 1  # type: ignore[misc]


def test_round_trip_through_the_environment_of_a_worker() -> None:
    argv = ["--port", "7000", "--id", "n-2", "--workers", "3", "--load-factor", "25"]
    argv += ["--io-millis", "5", "--max-keys", "7", "--access-log", "--max-load-factor", "30"]
    argv += ["--max-io-millis", "9", "--header-timeout", "3", "--body-timeout", "4"]
    argv += ["--keep-alive-timeout", "6", "--max-connections", "8", "--max-header-bytes", "2048"]
    settings = parse_settings(argv, {})
    assert settings_from_env(settings_to_env(settings)) == settings
    assert (settings.max_load_factor, settings.max_io_millis) == (30, 9)
    connections = settings.connections
    assert (connections.header_timeout, connections.body_timeout) == (3, 4)
    assert (connections.keep_alive_timeout, connections.max_connections) == (6, 8)
    assert connections.max_header_bytes == 2048


def test_node_argv_renders_only_the_fields_given_in_the_parsers_order() -> None:
    argv = node_argv(io_millis=0, workers=2, host="0.0.0.0", port=8080)
    assert argv == ["--host", "0.0.0.0", "--port", "8080", "--workers", "2", "--io-millis", "0"]
    assert node_argv(access_log=True) == ["--access-log"]
    assert node_argv(access_log=False) == ["--no-access-log"]
    assert node_argv() == []


def test_node_argv_is_inverted_by_the_parser(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    fields: dict[str, Any] = {
        "host": "0.0.0.0", "port": 7000, "node_id": "n-2", "workers": 3, "load_factor": 25,
        "io_millis": 5, "access_log": True, "graceful_timeout": 7, "max_load_factor": 30,
        "max_io_millis": 9, "fault_token_file": str(token), "service_factor": 2.75,
        "extra_millis": 40,
    }  # fmt: skip
    limits = {"max_key_length": 8, "max_value_bytes": 32, "max_keys": 2, "max_store_bytes": 99}
    connections = {
        "header_timeout": 3, "body_timeout": 4, "keep_alive_timeout": 6, "max_connections": 8,
        "max_header_bytes": 2048,
    }  # fmt: skip
    protection: dict[str, Any] = {
        "max_queue": 4, "retry_after_seconds": 2, "rate_limit": 2.5, "rate_burst": 3,
    }  # fmt: skip
    groups = (NodeSettings, StoreLimits, ConnectionLimits, Protection)
    every = {f.name for cls in groups for f in fields_of(cls)}
    assert {*fields, *limits, *connections, *protection} == every - {
        "limits",
        "connections",
        "protection",
        "started_at",
    }
    argv = node_argv(**fields, **limits, **connections, **protection)
    settings = parse_settings(argv, environ={})
    assert settings == NodeSettings(
        **fields,
        limits=StoreLimits(**limits),
        connections=ConnectionLimits(**connections),
        protection=Protection(**protection),
        started_at=settings.started_at,
    )
    assert settings_from_env(settings_to_env(settings)) == settings


def test_a_node_is_fast_by_default() -> None:
    settings = parse_settings([], environ={})
    assert (settings.service_factor, settings.extra_millis) == (1.0, 0)


def test_a_slow_node_travels_to_its_workers() -> None:
    argv = ["--service-factor", "2.5", "--extra-millis", "30", "--workers", "3"]
    settings = parse_settings(argv, environ={})
    assert (settings.service_factor, settings.extra_millis) == (2.5, 30)
    env = settings_to_env(settings)
    assert (env["NODELAB_SERVICE_FACTOR"], env["NODELAB_EXTRA_MILLIS"]) == ("2.5", "30")
    assert settings_from_env(env) == settings
    assert node_argv(service_factor=1.1, extra_millis=0) == [
        "--service-factor",
        "1.1",
        "--extra-millis",
        "0",
    ]
    # A factor no float spells short survives the trip too.
    odd = parse_settings(node_argv(service_factor=1 / 3 + 1), environ={})
    assert odd.service_factor == 1 / 3 + 1
    assert settings_from_env(settings_to_env(odd)) == odd


def test_a_slow_node_from_the_environment() -> None:
    env = {env_var("service_factor"): "3", env_var("extra_millis"): "7"}
    settings = parse_settings([], environ=env)
    assert (settings.service_factor, settings.extra_millis) == (3.0, 7)
    assert env_var("service_factor") == "NODELAB_SERVICE_FACTOR"
    assert env_var("extra_millis") == "NODELAB_EXTRA_MILLIS"


def test_protection_and_fault_are_off_by_default() -> None:
    settings = parse_settings([], environ={})
    assert settings.protection == Protection(0, 1, 0.0, 0)
    assert settings.fault_token_file is None
    assert settings_from_env(settings_to_env(settings)) == settings


def test_burst_defaults_to_one_seconds_worth_of_the_rate() -> None:
    assert parse_settings(["--rate-limit", "7.5"], environ={}).protection.burst == 8
    assert parse_settings(["--rate-limit", "0.2"], environ={}).protection.burst == 1
    argv = ["--rate-limit", "7.5", "--rate-burst", "2"]
    assert parse_settings(argv, environ={}).protection.burst == 2


def test_the_fault_token_file_comes_from_the_environment_too(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("tok-9f2c")
    settings = parse_settings([], environ={env_var("fault_token_file"): str(token)})
    assert settings.fault_token_file == str(token)
    assert env_var("fault_token_file") == "NODELAB_FAULT_TOKEN_FILE"
    # The path travels to the workers, never the token.
    assert not any("tok-9f2c" in value for value in settings_to_env(settings).values())


def test_node_argv_refuses_what_the_node_has_no_flag_for() -> None:
    with pytest.raises(TypeError, match="not a node setting: id, limits"):
        node_argv(id="1", limits=3)


def test_env_var_names_the_variable_of_a_field() -> None:
    assert env_var("node_id") == "NODELAB_NODE_ID"
    assert parse_settings([], environ={env_var("max_keys"): "5"}).limits.max_keys == 5


def test_connection_defaults_bound_a_slow_client() -> None:
    connections = parse_settings([], environ={}).connections
    assert (connections.header_timeout, connections.body_timeout) == (10, 30)
    assert (connections.keep_alive_timeout, connections.max_connections) == (5, 1024)
    assert connections.max_header_bytes == 16 * 1024


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--workers", "0"], "--workers"),
        (["--workers", "many"], "--workers"),
        (["--port", "70000"], "--port"),
        (["--load-factor", "-1"], "--load-factor"),
        (["--load-factor", "41"], "--load-factor"),
        (["--io-millis", "x"], "--io-millis"),
        (["--id", ""], "--id"),
        (["--max-keys", "0"], "--max-keys"),
        (["--graceful-timeout", "0"], "--graceful-timeout"),
        (["--header-timeout", "0"], "--header-timeout"),
        (["--body-timeout", "0"], "--body-timeout"),
        (["--keep-alive-timeout", "0"], "--keep-alive-timeout"),
        (["--max-connections", "0"], "--max-connections"),
        (["--max-header-bytes", "100"], "--max-header-bytes"),
        (["--max-load-factor", "41"], "--max-load-factor"),
        (["--load-factor", "20", "--max-load-factor", "10"], "--load-factor"),
        (["--io-millis", "20", "--max-io-millis", "10"], "--io-millis"),
        (["--max-queue", "-1"], "--max-queue"),
        (["--retry-after-seconds", "3601"], "--retry-after-seconds"),
        (["--rate-limit", "nan"], "--rate-limit"),
        (["--rate-limit", "-1"], "--rate-limit"),
        (["--rate-burst", "5"], "--rate-burst"),  # a burst without a rate
        (["--fault-token-file", "/nonexistent/token"], "--fault-token-file"),
        (["--service-factor", "0.5"], "--service-factor"),
        (["--service-factor", "0"], "--service-factor"),
        (["--service-factor", "nan"], "--service-factor"),
        (["--service-factor", "inf"], "--service-factor"),
        (["--service-factor", "101"], "--service-factor"),
        (["--service-factor", "slow"], "--service-factor"),
        (["--extra-millis", "-1"], "--extra-millis"),
        (["--extra-millis", "1.5"], "--extra-millis"),
        (["--extra-millis", "60001"], "--extra-millis"),
        (["--no-such-flag"], "--no-such-flag"),
    ],
)
def test_bad_flags_exit_2_naming_the_flag(
    argv: list[str], flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        parse_settings(argv, environ={})
    assert info.value.code == 2
    assert flag in capsys.readouterr().err


def test_an_empty_token_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "token"
    empty.write_text("  \n")
    with pytest.raises(SystemExit) as info:
        parse_settings(["--fault-token-file", str(empty)], environ={})
    assert info.value.code == 2
    assert "--fault-token-file" in capsys.readouterr().err


def test_bad_environment_names_flag_and_variable(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        parse_settings([], environ={"NODELAB_LOAD_FACTOR": "abc"})
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--load-factor" in err and "NODELAB_LOAD_FACTOR" in err


def test_main_returns_2_instead_of_raising(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def must_not_serve(_: NodeSettings) -> int:
        raise AssertionError("a bad flag must not start a server")

    monkeypatch.setattr(cli, "serve", must_not_serve)
    assert cli.main(["--workers", "-3"]) == 2
    assert "--workers" in capsys.readouterr().err


def test_main_help_returns_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    assert "nodelab node" in capsys.readouterr().out


def test_main_serves_the_parsed_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[NodeSettings] = []

    def fake_serve(settings: NodeSettings) -> int:
        seen.append(settings)
        return 0

    monkeypatch.setattr(cli, "serve", fake_serve)
    assert cli.main(["--port", "5009", "--id", "x"]) == 0
    assert (seen[0].port, seen[0].node_id) == (5009, "x")
