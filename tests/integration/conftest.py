"""Fixtures of the integration tier that need pytest; the kit they use has none inside."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import kmock
import pytest
from nodelab.local import procs

from tests.support.emulated_api import Emulator, emulating
from tests.support.processes import record_registered


@pytest.fixture
def emulator(kmock: kmock.KubernetesEmulator, tmp_path: Path) -> Iterator[Emulator]:
    """kmock's emulated API server (``kmock`` fixture; the module's ``pytest.mark.kmock`` picks
    its class) with NodeLab's resources, this process's Kubernetes clients pointed at it."""
    with emulating(kmock, tmp_path) as emulator:
        yield emulator


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Every node process group the runtime starts; asserted empty after each test."""
    with record_registered() as seen:
        yield seen
    leftovers = {proc.pid: procs.alive_in_group(proc.pid) for proc in seen}
    for proc in seen:
        procs.reap(proc, grace_s=5)
    assert all(not pids for pids in leftovers.values()), f"processes left behind: {leftovers}"
