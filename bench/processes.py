"""Processes the bench starts: servers on 127.0.0.1 and measured, bounded client runs.

Every process is started in its own session and recorded with ``nodelab.local.procs``, so it is
reaped by its process group (ours alone, by the PID we started) when its context ends, on an
exception or Ctrl-C, and by ``atexit`` as a last resort. Nothing is ever signalled by name.

With two or more CPUs, the server under test gets the first CPU of this process's affinity mask
and clients the others, so client and server never take turns on one core (which changes the
CPU each spends per request) and every client meets the same layout.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from nodelab.local import procs

from loadgen import cli as load_cli
from loadgen.plan import LoadPlan
from tests.support.errors import SupportError
from tests.support.processes import free_port, log_tail, node_command, wait_healthy

__all__ = [
    "CLIENT_CPUS",
    "HOST",
    "REPO_ROOT",
    "SERVER_CPUS",
    "Measured",
    "Server",
    "load_argv",
    "node_argv",
    "run_measured",
    "running",
    "uvicorn_argv",
]

HOST = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parents[1]
GRACE_S = 10.0
HEALTH_TIMEOUT_S = 60.0
# Poll interval of the measured child's exit: the parent's own CPU is never charged to it.
_POLL_S = 0.01


def _split_cpus() -> tuple[frozenset[int] | None, frozenset[int] | None]:
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    return frozenset(cpus[:1]), frozenset(cpus[1:])


SERVER_CPUS, CLIENT_CPUS = _split_cpus()


def _pin(cpus: frozenset[int] | None) -> Callable[[], None] | None:
    """A preexec hook that binds the child (and all it forks or spawns) to ``cpus``."""
    if cpus is None:
        return None

    def hook() -> None:
        os.sched_setaffinity(0, cpus)

    return hook


def _env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    # Servers import bench.targets from the repository, wherever the bench was started.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.update(extra or {})
    return env


def uvicorn_argv(app_factory: str, port: int) -> list[str]:
    """``uvicorn APP --factory`` with the node's settings: uvloop, httptools, no access log."""
    return [
        sys.executable, "-m", "uvicorn", app_factory, "--factory",
        "--host", HOST, "--port", str(port),
        "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip


def load_argv(plan: LoadPlan, json_path: Path) -> list[str]:
    """``nodelab load`` running ``plan`` quietly, its JSON report written to ``json_path``."""
    flags = load_cli.build_argv(plan, json_path=str(json_path), quiet=True)
    return [sys.executable, "-m", "loadgen", *flags]


def node_argv(port: int, *extra: str) -> list[str]:
    """The node as ``nodelab node`` runs it: one worker on ``port``."""
    return node_command(port, extra=extra)


@dataclass(frozen=True)
class Server:
    """A server this bench started: its name, base URL and process."""

    name: str
    url: str
    proc: subprocess.Popen[bytes]


@contextlib.contextmanager
def running(
    name: str,
    argv_for_port: Callable[[int], list[str]],
    env: Mapping[str, str] | None = None,
    cpus: frozenset[int] | None = SERVER_CPUS,
) -> Iterator[Server]:
    """Start a server on a free port (on ``cpus``), wait until ``/health`` answers, reap its
    group on exit."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="nodelab-bench-") as logs:
        log_path = Path(logs) / f"{name}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                argv_for_port(port),
                cwd=REPO_ROOT,
                env=_env(env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_pin(cpus),
            )
        procs.register(proc)
        try:
            url = f"http://{HOST}:{port}"
            try:
                wait_healthy(url, proc, timeout=HEALTH_TIMEOUT_S)
            except SupportError as exc:
                raise RuntimeError(f"{name}: {exc}\n{log_tail(log_path)}".rstrip()) from None
            yield Server(name, url, proc)
        finally:
            procs.reap(proc, GRACE_S)


@dataclass(frozen=True)
class Measured:
    """A finished client run: exit code, CPU it and its waited-for children used, its output."""

    returncode: int
    cpu_s: float
    wall_s: float
    stdout: str
    stderr: str

    def check(self, what: str) -> Measured:
        """Raise ``RuntimeError`` with the end of stderr unless the run exited 0."""
        if self.returncode != 0:
            tail = "\n".join(self.stderr.strip().splitlines()[-6:])
            raise RuntimeError(f"{what} exited with code {self.returncode}:\n{tail}".rstrip())
        return self


def run_measured(
    argv: Sequence[str],
    timeout_s: float,
    env: Mapping[str, str] | None = None,
    cpus: frozenset[int] | None = CLIENT_CPUS,
) -> Measured:
    """Run ``argv`` to completion on ``cpus`` (killed after ``timeout_s``); its CPU and output.

    The CPU is the child's own rusage from ``wait4``: its user + system time plus that of every
    child it waited for (``--processes`` workers), and nothing of this process or its servers.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(
            list(argv),
            cwd=REPO_ROOT,
            env=_env(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
            preexec_fn=_pin(cpus),
        )
        procs.register(proc)
        killed = False
        try:
            deadline = started + timeout_s
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                if time.perf_counter() > deadline:
                    killed = True
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    pid, status, usage = os.wait4(proc.pid, 0)
                    break
                time.sleep(_POLL_S)
            wall_s = time.perf_counter() - started
            # wait4 reaped it: tell Popen, so nothing waits for it again.
            proc.returncode = os.waitstatus_to_exitcode(status)
        finally:
            procs.reap(proc, GRACE_S)
        out.seek(0)
        err.seek(0)
        return Measured(
            returncode=proc.returncode,
            cpu_s=usage.ru_utime + usage.ru_stime,
            wall_s=wall_s,
            stdout=out.read().decode("utf-8", "replace"),
            stderr=err.read().decode("utf-8", "replace")
            + (f"\n(killed after {timeout_s:g} s)" if killed else ""),
        )
