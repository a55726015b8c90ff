"""Fleet supervisor error paths with fake node processes: every group reaped, clear messages."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from nodelab.local import common, procs
from nodelab.local.fleet import Fleet, FleetError, FleetSpec, PortInUse, check_port_free
from nodelab.local.narration import Narrator
from nodelab.local.settings import LocalSettings

from tests.support.processes import free_base_port, record_registered

SPEC = FleetSpec(lab="lab", replicas=2, workers=1, load_factor=0, io_millis=0)


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Every process the fleet registers, to check afterwards that its group is gone."""
    with record_registered() as seen:
        yield seen
    for proc in seen:  # never leave anything behind, even when an assertion failed
        procs.reap(proc, grace_s=2)


def fake_python(tmp_path: Path, body: str) -> str:
    """An executable standing in for ``python -m node_service ...`` (it ignores the flags)."""
    script = tmp_path / "fake-python"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return str(script)


def settings(tmp_path: Path, body: str, **overrides: object) -> LocalSettings:
    values: dict[str, object] = {
        "python": fake_python(tmp_path, body),
        "base_port": free_base_port(),
        "health_timeout_s": 1.5,
        "health_timeout_per_process_s": 0.0,
        "grace_s": 2.0,
    }
    values.update(overrides)
    return LocalSettings(**values)  # type: ignore[arg-type]


def assert_all_gone(started: list[subprocess.Popen[bytes]]) -> None:
    assert started, "the fleet started nothing"
    for proc in started:
        assert proc.poll() is not None
        assert procs.alive_in_group(proc.pid) == []
        assert proc.pid not in procs.live_groups()


def test_port_in_use_is_named_before_anything_starts(
    tmp_path: Path, started: list[subprocess.Popen[bytes]]
) -> None:
    config = settings(tmp_path, "sleep 30")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", config.base_port + 1))
        busy.listen()
        with pytest.raises(PortInUse, match=f"port {config.base_port + 1} .*--base-port"):
            check_port_free("127.0.0.1", config.base_port + 1)
        with Fleet(config) as fleet, pytest.raises(PortInUse):
            fleet.apply(SPEC)
    assert started == []


def test_bind_failure_of_a_node_reads_as_port_in_use(
    tmp_path: Path, started: list[subprocess.Popen[bytes]]
) -> None:
    config = settings(tmp_path, "echo 'ERROR: [Errno 98] address already in use'; exit 1")
    with Fleet(config) as fleet, pytest.raises(PortInUse, match=str(config.base_port)):
        fleet.apply(SPEC)
    assert_all_gone(started)


def test_node_exiting_early_stops_everything(
    tmp_path: Path, started: list[subprocess.Popen[bytes]]
) -> None:
    config = settings(tmp_path, "echo 'boom: bad flag'; exit 3")
    with Fleet(config) as fleet, pytest.raises(FleetError, match="exited with code 3"):
        fleet.apply(SPEC)
    assert fleet.nodes == []
    assert_all_gone(started)


def test_health_timeout_reaps_the_whole_group(
    tmp_path: Path, started: list[subprocess.Popen[bytes]]
) -> None:
    # The node forks a child (as uvicorn forks workers) and never answers /health.
    config = settings(tmp_path, "sleep 60 & sleep 60")
    with Fleet(config) as fleet, pytest.raises(FleetError, match="did not answer /health"):
        fleet.apply(SPEC)
    assert_all_gone(started)


def test_reap_escalates_to_sigkill(tmp_path: Path, started: list[subprocess.Popen[bytes]]) -> None:
    script = fake_python(tmp_path, "trap '' TERM; sleep 60 & wait")
    proc = subprocess.Popen([script], start_new_session=True)
    procs.register(proc)
    procs.reap(proc, grace_s=0.5)
    assert proc.returncode is not None
    assert procs.alive_in_group(proc.pid) == []


def test_with_fleet_turns_failures_into_exit_codes(
    tmp_path: Path, started: list[subprocess.Popen[bytes]], capsys: pytest.CaptureFixture[str]
) -> None:
    config = settings(tmp_path, "exit 4")

    def body(fleet: Fleet) -> int:
        fleet.apply(SPEC)
        return 0

    assert common.with_fleet(config, Narrator(quiet=True), "nodelab run", body) == 1
    err = capsys.readouterr().err
    assert "exited with code 4" in err and "every node it started is stopped" in err

    def interrupted(fleet: Fleet) -> int:
        raise KeyboardInterrupt

    assert common.with_fleet(config, Narrator(quiet=True), "nodelab run", interrupted) == 130
    assert_all_gone(started)
