"""Scratch directories locked by their owner, and the removal of those whose owner is gone.

The processes here are this test's own; tests/integration/test_local_stale_dirs.py kills real
owners with SIGKILL.
"""

from __future__ import annotations

import os
from pathlib import Path

from node_service.scratch import OwnedDir, remove_stale

PREFIX = "nodelab-test-"


def test_an_owned_directory_is_private_kept_while_held_and_gone_when_removed(
    tmp_path: Path,
) -> None:
    owned = OwnedDir(PREFIX, str(tmp_path))
    path = Path(owned.path)
    assert path.parent == tmp_path
    assert path.name.startswith(f"{PREFIX}{os.getpid()}-")
    assert path.stat().st_mode & 0o777 == 0o700
    (path / "node-1.log").write_text("held")
    assert remove_stale(PREFIX, str(tmp_path)) == []  # its owner (this process) holds it
    assert path.exists()
    owned.remove()
    assert list(tmp_path.iterdir()) == []


def test_an_unlocked_directory_is_stale_even_when_its_pid_runs(tmp_path: Path) -> None:
    # As after a container restart: the dead owner's PID (1, or ours) is alive again.
    stale = tmp_path / f"{PREFIX}{os.getpid()}-abc123"
    stale.mkdir()
    (stale / "counter_7.db").write_bytes(b"x")
    owned = OwnedDir(PREFIX, str(tmp_path))
    try:
        assert not stale.exists()
        assert Path(owned.path).exists()
    finally:
        owned.remove()


def test_only_this_modules_names_are_touched(tmp_path: Path) -> None:
    kept = [
        tmp_path / f"{PREFIX}abc123",  # no PID: made some other way
        tmp_path / f"{PREFIX}12x-abc",
        tmp_path / "nodelab-other-1-abc",
        tmp_path / f".{PREFIX}{os.getpid()}-abc",  # being made by a process that runs
    ]
    for path in kept:
        path.mkdir()
    (tmp_path / f"{PREFIX}1-file").write_text("a file, not a directory")
    assert remove_stale(PREFIX, str(tmp_path)) == []
    assert all(path.exists() for path in kept)
