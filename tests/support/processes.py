"""Real node processes on 127.0.0.1 for tests and bench: started in their own session, reaped.

Every process is started with ``start_new_session=True`` so that the node's uvicorn worker
children share its process group; teardown signals that group (ours alone, found by the PID we
started) so no worker outlives a test, also when the test fails. No pytest inside: failures are the
kit's own errors (``tests.support.errors``).
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from node_service.settings import node_argv
from tests.support.cluster import procs
from tests.support.errors import ProcessExited, SupportError, WaitTimeout

__all__ = [
    "NodeProcess",
    "free_base_port",
    "free_port",
    "log_tail",
    "node_command",
    "reap",
    "record_registered",
    "running_node",
    "wait_healthy",
]


def _ephemeral_ports() -> range:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range", encoding="ascii") as handle:
            low, high = (int(part) for part in handle.read().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    return range(low, high + 1)


def free_base_port(count: int = 4) -> int:
    """A base port whose ``count`` ports are free now, below the kernel's ephemeral range.

    Ports under the ephemeral range are never handed to outgoing connections, so nothing else a
    test does (HTTP clients, the emulated API) can take one between this check and the bind.
    """
    top = _ephemeral_ports().start - count
    bottom = 20000 if top > 21000 else 1024  # unprivileged ports under an unusually low range
    for _ in range(200):
        base = random.randrange(bottom, top)
        try:
            for port in range(base, base + count):
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise SupportError("no free range of ports below the ephemeral range")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now and that no outgoing connection will take."""
    return free_base_port(1)


@dataclass
class NodeProcess:
    """A node started by a test: its process, port and base URL."""

    proc: subprocess.Popen[bytes]
    port: int
    node_id: str
    args: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def wait_healthy(
    url: str, proc: subprocess.Popen[bytes] | None = None, timeout: float = 30.0
) -> None:
    """Poll ``url``/health until it answers 200.

    Raises :class:`ProcessExited` if ``proc`` exits first, :class:`WaitTimeout` after ``timeout``.
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ProcessExited(f"exited with code {proc.returncode} before becoming healthy")
        try:
            if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError as exc:
            last_error = exc
        time.sleep(0.05)  # poll interval of a condition wait, not a fixed sleep
    raise WaitTimeout(f"{url}/health not healthy after {timeout}s (last error: {last_error})")


def reap(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """Stop a process we started and its process group: SIGTERM, then SIGKILL after ``grace``."""
    procs.reap(proc, grace)


def log_tail(path: Path, lines: int = 8) -> str:
    """The last ``lines`` of a process's log file, for error messages (empty if unreadable)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


def node_command(port: int, *, extra: Sequence[str] = (), **fields: str | int) -> list[str]:
    """``python -m node_service`` on 127.0.0.1:``port``, as ``nodelab node`` runs it.

    ``fields`` are node settings (``node_id``, ``workers``, ``load_factor``, ...); node id "1" and
    one worker unless given, every other setting the node's default; ``extra`` flags go last.
    """
    settings: dict[str, str | int] = {"node_id": "1", "workers": 1, **fields}
    flags = node_argv(host="127.0.0.1", port=port, **settings)
    return [sys.executable, "-m", "node_service", *flags, *extra]


@contextlib.contextmanager
def running_node(
    node_id: str = "1",
    *,
    workers: int = 1,
    load_factor: int = 20,
    io_millis: int = 0,
    extra: Sequence[str] = (),
    port: int | None = None,
    env: Mapping[str, str] | None = None,
) -> Iterator[NodeProcess]:
    """Start ``python -m node_service`` on 127.0.0.1, wait until healthy, reap on exit.

    ``env`` adds to (or overrides) this process's environment for the node.
    """
    port = port or free_port()
    args = node_command(
        port,
        node_id=node_id,
        workers=workers,
        load_factor=load_factor,
        io_millis=io_millis,
        extra=extra,
    )
    proc_env = None if env is None else {**os.environ, **env}
    proc = subprocess.Popen(args, start_new_session=True, env=proc_env)
    node = NodeProcess(proc=proc, port=port, node_id=node_id, args=args)
    try:
        wait_healthy(node.url, proc)
        yield node
    finally:
        reap(proc)


@contextlib.contextmanager
def record_registered() -> Iterator[list[subprocess.Popen[bytes]]]:
    """While the block runs, the local runtime's ``procs.register`` also records each process
    it starts in the yielded list; the original is back when the block ends.

    Tests reap what the list holds at teardown, so nothing outlives a failed test.
    """
    from nodelab.local import procs as local_procs

    seen: list[subprocess.Popen[bytes]] = []
    register = local_procs.register

    def spy(proc: subprocess.Popen[bytes]) -> None:
        seen.append(proc)
        register(proc)

    local_procs.register = spy
    try:
        yield seen
    finally:
        local_procs.register = register
