"""Fixtures of the integration tier that need pytest; the kit they use has none inside."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import kmock
import pytest

from tests.support.emulated_api import Emulator, emulating


@pytest.fixture
def emulator(kmock: kmock.KubernetesEmulator, tmp_path: Path) -> Iterator[Emulator]:
    """kmock's emulated API server (``kmock`` fixture; the module's ``pytest.mark.kmock`` picks
    its class) with NodeLab's resources, this process's Kubernetes clients pointed at it."""
    with emulating(kmock, tmp_path) as emulator:
        yield emulator
