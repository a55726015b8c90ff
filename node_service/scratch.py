"""Private scratch directories that do not outlive their owner by more than one start.

A process killed with SIGKILL runs no ``finally``, so the directory it made stays behind. Each
directory here is ``<tmp>/<prefix><pid>-<random>``, and its owner holds an exclusive ``flock``
on it while it runs; the kernel drops that lock when the process dies, however it dies. Making
a directory first removes every directory of the same prefix whose lock is free: its owner is
gone, even when its PID has been reused since (a restarted container is PID 1 again).

Only the standard library, so the node and the local runtime can both use it.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile

__all__ = ["OwnedDir", "remove_stale"]

# A directory is made under this mark and renamed once locked, so no cleanup ever sees it
# unlocked while its owner lives.
_MAKING = "."


class OwnedDir:
    """A new private directory (mode 0700) locked by this process until :meth:`remove`.

    Stale directories of the same ``prefix`` under ``root`` (default: the temporary directory,
    which honours ``TMPDIR``) are removed first.
    """

    def __init__(self, prefix: str, root: str | None = None) -> None:
        root = root or tempfile.gettempdir()
        remove_stale(prefix, root)
        making = tempfile.mkdtemp(prefix=f"{_MAKING}{prefix}{os.getpid()}-", dir=root)
        self._fd: int | None = os.open(making, os.O_RDONLY)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        self.path = os.path.join(root, os.path.basename(making)[len(_MAKING) :])
        os.rename(making, self.path)

    def remove(self) -> None:
        """Delete the directory and its contents, then let go of it."""
        shutil.rmtree(self.path, ignore_errors=True)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def remove_stale(prefix: str, root: str | None = None) -> list[str]:
    """Remove the ``<prefix><pid>-*`` directories under ``root`` whose owner is gone.

    An owner is gone when the directory's lock is free; one still being made (and so not
    locked yet) counts as gone only when its PID no longer runs. Other users' directories, and
    names this module did not make, are left alone. Returns the paths removed.
    """
    root = root or tempfile.gettempdir()
    removed: list[str] = []
    try:
        entries = list(os.scandir(root))
    except OSError:
        return removed
    for entry in entries:
        making = entry.name.startswith(_MAKING)
        name = entry.name[len(_MAKING) :] if making else entry.name
        if not name.startswith(prefix):
            continue
        pid, dash, _ = name[len(prefix) :].partition("-")
        if not (dash and pid.isdigit()) or not entry.is_dir(follow_symlinks=False):
            continue
        if making:
            stale = not _running(int(pid))
            if stale:
                shutil.rmtree(entry.path, ignore_errors=True)
        else:
            stale = _remove_if_unlocked(entry.path)
        if stale:
            removed.append(entry.path)
    return removed


def _remove_if_unlocked(path: str) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # another user's, or gone already
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held: its owner runs
            return False
        shutil.rmtree(path, ignore_errors=True)
        return True
    finally:
        os.close(fd)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
