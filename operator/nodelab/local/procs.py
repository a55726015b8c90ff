"""Process groups this runtime started, and the guarantee that none outlives it.

Every node is started in a new session, so its uvicorn workers share the node's process group
and one ``killpg`` reaches them all. Groups are recorded here as they start; the context manager
that started them stops them, and ``atexit`` plus SIGTERM/SIGHUP handlers stop whatever is left
when the runtime itself is told to quit. Only groups recorded here are ever signalled.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from types import FrameType

__all__ = [
    "alive_in_group",
    "exit_on_termination",
    "live_groups",
    "reap",
    "reap_all",
    "register",
    "unregister",
]

_lock = threading.Lock()
_groups: dict[int, subprocess.Popen[bytes]] = {}
_atexit_installed = False


def register(proc: subprocess.Popen[bytes]) -> None:
    """Record a process started with ``start_new_session=True`` (its PID is its group id)."""
    global _atexit_installed
    with _lock:
        _groups[proc.pid] = proc
        if not _atexit_installed:
            # Last resort: a path that skipped the context managers still stops the nodes.
            atexit.register(reap_all)
            _atexit_installed = True


def unregister(proc: subprocess.Popen[bytes]) -> None:
    """Forget a process group once it is reaped."""
    with _lock:
        _groups.pop(proc.pid, None)


def live_groups() -> list[int]:
    """Process group ids started by this runtime and not reaped yet."""
    with _lock:
        return list(_groups)


def alive_in_group(pgid: int) -> list[int]:
    """PIDs still in process group ``pgid`` (from /proc; empty where /proc is missing)."""
    found: list[int] = []
    with contextlib.suppress(FileNotFoundError):
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            # After the command name: state, ppid, pgrp. Zombies are already dead.
            if int(fields[2]) == pgid and fields[0] != "Z":
                found.append(int(entry))
    return found


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _wait_group_empty(pgid: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while alive_in_group(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)  # poll interval of a condition wait


def reap(proc: subprocess.Popen[bytes], grace_s: float = 10.0) -> None:
    """Stop ``proc``'s process group: SIGTERM, then SIGKILL after ``grace_s``; wait for it."""
    pgid = proc.pid
    if proc.poll() is None:
        _signal_group(pgid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            _signal_group(pgid, signal.SIGKILL)
            proc.wait(timeout=grace_s)
    # The leader may be gone while a worker of its group still runs (it was killed, or it
    # crashed): the group id stays ours until every member is gone.
    if alive_in_group(pgid):
        _signal_group(pgid, signal.SIGTERM)
        _wait_group_empty(pgid, grace_s / 2)
        _signal_group(pgid, signal.SIGKILL)
        _wait_group_empty(pgid, grace_s / 2)
    unregister(proc)


def reap_all(grace_s: float = 5.0) -> None:
    """Reap every group this runtime started and has not reaped yet."""
    with _lock:
        procs = list(_groups.values())
    for proc in procs:
        # Signal all first so they shut down in parallel, then wait for each.
        if proc.poll() is None:
            _signal_group(proc.pid, signal.SIGTERM)
    for proc in procs:
        reap(proc, grace_s)


class Terminated(SystemExit):
    """Raised in the main thread when SIGTERM or SIGHUP asks the runtime to stop."""


def _raise_terminated(signum: int, _frame: FrameType | None) -> None:
    raise Terminated(128 + signum)


@contextlib.contextmanager
def exit_on_termination() -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into an exception so every ``finally`` (and reaping) runs.

    SIGINT already raises KeyboardInterrupt. Only installed from the main thread.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {
        sig: signal.signal(sig, _raise_terminated) for sig in (signal.SIGTERM, signal.SIGHUP)
    }
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sys.stdout.flush()
