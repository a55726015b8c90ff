"""Scratch directories of processes killed with SIGKILL are removed at the next start.

A node's metrics directory (``nodelab-metrics-*``) and the local runtime's log directory
(``nodelab-fleet-*``) are made in the temporary directory (``TMPDIR``, here the test's own);
SIGKILL runs no cleanup, so each start removes those whose owner is gone
(``node_service.scratch``). Every process a test starts is reaped by its PID.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from nodelab.local.fleet import Fleet
from nodelab.local.settings import LocalSettings

from node_service.scratch import OwnedDir, remove_stale
from tests.support.processes import free_base_port, reap, running_node

# These tests count the nodelab-* directories in the machine's temp dir: nothing else may
# start nodes meanwhile, so they run alone (make test runs the serial ones after the rest).
pytestmark = pytest.mark.serial


PREFIX = "nodelab-test-"
OWNER = (
    "import sys\n"
    "from node_service.scratch import OwnedDir\n"
    "print(OwnedDir(sys.argv[1], sys.argv[2]).path, flush=True)\n"
    "sys.stdin.read()\n"
)


def dirs(root: Path, prefix: str) -> list[Path]:
    return sorted(path for path in root.iterdir() if path.name.startswith(prefix))


def wait_until(condition: Callable[[], bool], timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)  # poll interval of a condition wait
    return False


def test_a_directory_stays_while_its_owner_runs_and_goes_once_it_was_killed(
    tmp_path: Path,
) -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, PREFIX, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert owner.stdout is not None
        path = Path(owner.stdout.readline().strip())
        assert path.name.startswith(f"{PREFIX}{owner.pid}-")
        assert remove_stale(PREFIX, str(tmp_path)) == []
        assert path.exists()
        owner.kill()
        owner.wait(timeout=30)
        assert path.exists()  # SIGKILL: no cleanup ran
        assert remove_stale(PREFIX, str(tmp_path)) == [str(path)]
        assert not path.exists()
    finally:
        reap(owner)


@pytest.mark.parametrize("prefix", ["nodelab-metrics-", "nodelab-permits-"])
def test_a_sigkilled_nodes_scratch_directory_is_removed_when_the_next_node_starts(
    tmp_path: Path, prefix: str
) -> None:
    env = {"TMPDIR": str(tmp_path)}
    with running_node("1", workers=2, env=env) as node:
        (stale,) = dirs(tmp_path, prefix)
        os.killpg(node.proc.pid, signal.SIGKILL)  # the node's own group: master and workers
        node.proc.wait(timeout=30)
    assert stale.exists()
    with running_node("2", workers=2, env=env):
        (own,) = dirs(tmp_path, prefix)
        assert not stale.exists()
        assert own != stale


def _nodes_on(port: int) -> list[int]:
    """PIDs of node processes started with ``port`` (by command line; only this test uses it)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"node_service" in cmdline and str(port).encode() in cmdline:
                found.append(int(entry))
    return found


def test_a_sigkilled_runtimes_fleet_directory_is_removed_when_the_next_one_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    phase = tmp_path / "phase.yaml"
    lab = {
        "apiVersion": "lab.nodelab.dev/v1alpha1",
        "kind": "NodeLab",
        "metadata": {"name": "stale"},
        "spec": {
            "node": {"replicas": 1, "workers": 2, "work": {"loadFactor": 0, "ioMillis": 200}},
            "load": {"concurrency": 2, "requests": 400},
        },
    }
    phase.write_text(yaml.safe_dump(lab))
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    port = free_base_port(4)
    runtime = subprocess.Popen(
        [sys.executable, "-m", "nodelab.local.cli_run", str(phase), "--base-port", str(port)],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": str(scratch)},
        start_new_session=True,
    )
    try:
        assert runtime.stderr is not None
        for line in runtime.stderr:
            if "loading" in line:
                break
        (stale,) = dirs(scratch, "nodelab-fleet-")
        assert stale.name.startswith(f"nodelab-fleet-{runtime.pid}-")
        runtime.kill()
        runtime.wait(timeout=30)
        # Its nodes stop by themselves (they are told when their parent dies), cleaning up.
        assert wait_until(lambda: _nodes_on(port) == [])
        assert wait_until(lambda: dirs(scratch, "nodelab-metrics-") == [])
        assert stale.exists()
    finally:
        reap(runtime)
        for pid in _nodes_on(port):
            os.kill(pid, signal.SIGKILL)
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    fleet = Fleet(LocalSettings(base_port=port))
    try:
        assert not stale.exists()
        (own,) = dirs(scratch, "nodelab-fleet-")
        assert own.name.startswith(f"nodelab-fleet-{os.getpid()}-")
    finally:
        fleet.close()
    assert dirs(scratch, "nodelab-fleet-") == []


def test_owned_directories_honour_tmpdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    owned = OwnedDir(PREFIX)
    try:
        assert Path(owned.path).parent == tmp_path
    finally:
        owned.remove()
