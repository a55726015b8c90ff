"""A fleet of node processes on 127.0.0.1: replicas x workers, started, checked and reaped.

Replica ``i`` is ``python -m node_service --port base+i --id <lab>-<i> --workers W ...`` in its
own session (its uvicorn workers share its process group). ``apply`` reconciles like a
Deployment: a change of replicas alone adds or removes replicas and keeps the others running;
any other change replaces the fleet. Every failure stops everything this fleet started.

Phase 5 and 6 flags go to every node as the operator's pods get them: the protection
(``--max-queue``, ``--retry-after-seconds``, ``--rate-limit``, ``--rate-burst``), the fault
token file (``--fault-token-file``: a random token the fleet writes once, mode 0600, into its
own scratch directory, which the load generator reads too), and for the slow pool, the last
``slow_replicas`` replicas, ``--service-factor`` and ``--extra-millis``.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType

import httpx

from node_service.scratch import OwnedDir
from node_service.settings import node_argv
from nodelab.local import procs
from nodelab.local.settings import LocalSettings
from nodelab.model.node_flags import node_flag_fields
from nodelab.model.spec import NodeLab, ProtectionSpec, SlowPoolSpec

__all__ = [
    "Fleet",
    "FleetError",
    "FleetSpec",
    "NodeProcess",
    "PortInUse",
    "check_port_free",
    "running_fleet",
]


class FleetError(RuntimeError):
    """The fleet could not be started or kept running; the message says which node and why."""


class PortInUse(FleetError):
    """A port a replica needs is taken by another program."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        super().__init__(
            f"port {port} on {host} is in use (another node or program listens there): "
            f"stop it, or pass --base-port N to use other ports"
        )
        self.port = port


@dataclass(frozen=True)
class FleetSpec:
    """What to run: the node part of a phase, after quick/io adjustments.

    ``protection`` goes to every node; ``fault_token`` gives every node the fleet's fault
    token file (a lab with a trigger); the last ``slow_replicas`` replicas run
    ``service_factor`` times slower and ``extra_millis`` later (phase 6's slow pool).
    """

    lab: str
    replicas: int
    workers: int
    load_factor: int
    io_millis: int
    protection: ProtectionSpec | None = None
    fault_token: bool = False
    slow_replicas: int = 0
    service_factor: float | None = None
    extra_millis: int | None = None

    @classmethod
    def of(cls, lab: NodeLab, *, load_factor: int, io_millis: int) -> FleetSpec:
        """The fleet of ``lab``'s node spec, with the run's work (quick and I/O modes')."""
        node = lab.spec.node
        pool = node.slow_pool
        return cls(
            lab=lab.name,
            replicas=node.replicas,
            workers=node.workers,
            load_factor=load_factor,
            io_millis=io_millis,
            protection=node.protection,
            fault_token=lab.spec.trigger is not None,
            slow_replicas=0 if pool is None else pool.replicas,
            service_factor=None if pool is None else pool.service_factor,
            extra_millis=None if pool is None else pool.extra_millis,
        )

    @property
    def processes(self) -> int:
        """Node processes once every worker is up: replicas x (workers + a uvicorn master)."""
        return self.replicas * (self.workers + (1 if self.workers > 1 else 0))

    def is_slow(self, index: int) -> bool:
        """Whether replica ``index`` is of the slow pool (the last ``slow_replicas``)."""
        return index >= self.replicas - self.slow_replicas

    def node_fields(self, index: int) -> dict[str, str | int | float | bool]:
        """The ``node_argv`` fields of replica ``index`` beyond its address and work: its
        protection and, in the slow pool, its factor and extra wait."""
        pool = None
        if self.slow_replicas and self.is_slow(index):
            pool = SlowPoolSpec(self.slow_replicas, self.service_factor, self.extra_millis)
        return dict(node_flag_fields(self.protection, pool))


@dataclass
class NodeProcess:
    """One replica: its process (leader of its own group), port, id and log file."""

    index: int
    node_id: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        """Base URL the load generator targets."""
        return f"http://{self.host}:{self.port}"

    def log_tail(self, lines: int = 8) -> str:
        """The last lines the node wrote (stdout and stderr), for error messages."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])


def check_port_free(host: str, port: int) -> None:
    """Raise :class:`PortInUse` when something listens on ``host:port``.

    SO_REUSEADDR as uvicorn sets it: a port in TIME_WAIT from the previous run is free.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in {errno.EADDRINUSE, errno.EACCES}:
                raise PortInUse(port, host) from None
            raise


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec hook asking Linux to SIGTERM the node if this runtime dies (even SIGKILLed)."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        return None
    parent = os.getpid()

    def hook() -> None:
        prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return hook


class Fleet:
    """The node processes of one lab; a context manager that always stops them."""

    def __init__(self, settings: LocalSettings, say: Callable[[str], None] = lambda _: None):
        self.settings = settings
        self.say = say
        self.spec: FleetSpec | None = None
        self.nodes: list[NodeProcess] = []
        # The nodes' logs; making it removes those of a runtime that was SIGKILLed.
        self._logs = OwnedDir("nodelab-fleet-")
        self._preexec = _die_with_parent()
        self._token_file: Path | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> Fleet:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop every node and remove the logs."""
        self.stop()
        self._logs.remove()

    def stop(self) -> None:
        """Stop every node of the fleet (SIGTERM to each group, SIGKILL after the grace)."""
        nodes, self.nodes, self.spec = self.nodes, [], None
        self._reap(nodes)

    def _reap(self, nodes: list[NodeProcess]) -> None:
        for node in nodes:  # signal all first: they shut down in parallel
            if node.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(node.proc.pid, signal.SIGTERM)
        for node in nodes:
            procs.reap(node.proc, self.settings.grace_s)

    @property
    def urls(self) -> list[str]:
        """Base URLs of the replicas, in order."""
        return [node.url for node in self.nodes]

    @property
    def fault_token_file(self) -> str | None:
        """The nodes' fault token file when the running fleet has one (a lab with a trigger)."""
        if self.spec is None or not self.spec.fault_token or self._token_file is None:
            return None
        return str(self._token_file)

    def _token_path(self) -> Path:
        """The fleet's fault token file, written once: a random token, readable by us only."""
        if self._token_file is None:
            path = Path(self._logs.path) / "fault-token"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(secrets.token_urlsafe(32) + "\n")
            self._token_file = path
        return self._token_file

    @property
    def pgids(self) -> list[int]:
        """Process groups of the replicas (each replica's leader PID)."""
        return [node.proc.pid for node in self.nodes]

    # -- reconcile ---------------------------------------------------------------------------

    def apply(self, spec: FleetSpec) -> None:
        """Make the running fleet match ``spec``; on any failure stop everything and raise."""
        try:
            self._apply(spec)
        except BaseException:
            self.stop()
            raise

    def _apply(self, spec: FleetSpec) -> None:
        current = self.spec
        # With a slow pool, which replicas are slow depends on the count: replace the fleet.
        resizable = current is not None and not current.slow_replicas and not spec.slow_replicas
        if current is not None and resizable and replace(current, replicas=spec.replicas) == spec:
            self.check_alive()
            if spec.replicas == current.replicas:
                self.say(f"nodes unchanged: reusing {self._describe(spec, range(spec.replicas))}")
                return
            if spec.replicas < current.replicas:
                self.say(f"scaling in to {spec.replicas} replicas")
                self._reap(self.nodes[spec.replicas :])
                del self.nodes[spec.replicas :]
                self.spec = spec
                return
            self.say(
                f"scaling out: {current.replicas} -> {spec.replicas} replicas "
                "(running replicas keep serving, as in a Deployment)"
            )
            new = range(current.replicas, spec.replicas)
        else:
            if current is not None:
                self.say("node spec changed: replacing the fleet")
                self.stop()
            new = range(spec.replicas)
        for index in new:
            check_port_free(self.settings.host, self.settings.base_port + index)
        self.say(f"starting {self._describe(spec, new)} on {self.settings.host}")
        started = [self._start(spec, index) for index in new]
        self.nodes.extend(started)
        self.spec = spec
        timeout = (
            self.settings.health_timeout_s
            + self.settings.health_timeout_per_process_s * spec.workers * len(started)
        )
        self._wait_healthy(started, spec.workers, timeout)

    def _describe(self, spec: FleetSpec, indexes: range) -> str:
        first = self.settings.base_port + indexes.start
        last = self.settings.base_port + indexes.stop - 1
        ports = f"{first}" + (f"-{last}" if last > first else "")
        work = f"fib({spec.load_factor})" if spec.load_factor else "no CPU work"
        if spec.io_millis:
            work += f" + {spec.io_millis} ms wait"
        extras = ""
        slow = [i for i in indexes if spec.slow_replicas and spec.is_slow(i)]
        if slow:
            how = " and ".join(
                part
                for part in (
                    f"x{spec.service_factor:g}" if spec.service_factor else "",
                    f"+{spec.extra_millis} ms" if spec.extra_millis else "",
                )
                if part
            )
            extras += f"; slow ({how}): {', '.join(f'{spec.lab}-{i}' for i in slow)}"
        if spec.protection is not None:
            extras += f"; protection: maxQueue {spec.protection.max_queue}"
            if spec.protection.rate_limit is not None:
                extras += f", rateLimit {spec.protection.rate_limit:g}/s"
        if spec.fault_token:
            extras += "; fault token file for the trigger"
        return (
            f"{len(indexes)} replica(s) x {spec.workers} worker(s) "
            f"(ports {ports}, {work} per request{extras})"
        )

    def _start(self, spec: FleetSpec, index: int) -> NodeProcess:
        port = self.settings.base_port + index
        node_id = f"{spec.lab}-{index}"
        args = [
            self.settings.python,
            "-m",
            "node_service",
            *node_argv(
                host=self.settings.host,
                port=port,
                node_id=node_id,
                workers=spec.workers,
                load_factor=spec.load_factor,
                io_millis=spec.io_millis,
                **spec.node_fields(index),
                **({"fault_token_file": str(self._token_path())} if spec.fault_token else {}),
            ),
        ]
        log_path = Path(self._logs.path) / f"{node_id}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=self._preexec,
            )
        procs.register(proc)
        return NodeProcess(index, node_id, port, proc, log_path, self.settings.host)

    # -- health ------------------------------------------------------------------------------

    def check_alive(self) -> None:
        """Raise :class:`FleetError` naming the first replica whose process has exited."""
        for node in self.nodes:
            code = node.proc.poll()
            if code is not None:
                raise self._exited(node, code)

    def _exited(self, node: NodeProcess, code: int) -> FleetError:
        tail = node.log_tail()
        lowered = tail.lower()
        if "address already in use" in lowered or "errno 98" in lowered:
            return PortInUse(node.port, node.host)
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        return FleetError(f"node {node.node_id} (port {node.port}) {how}:\n{tail}".rstrip(":\n"))

    def _wait_healthy(self, nodes: list[NodeProcess], workers: int, timeout_s: float) -> None:
        """Poll /health until each node answers, then until each of its workers has answered.

        /health answers as soon as one uvicorn worker listens; a load started then would meet
        a fraction of the capacity, so every worker's PID must have answered once.
        """
        deadline = time.monotonic() + timeout_s
        seen: dict[int, set[int]] = {node.index: set() for node in nodes}
        # No keep-alive: each request opens a connection any idle worker may accept.
        limits = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(timeout=2.0, limits=limits) as client:
            pending = list(nodes)
            while pending:
                for node in list(pending):
                    code = node.proc.poll()
                    if code is not None:
                        raise self._exited(node, code)
                    pid = self._health_pid(client, node)
                    if pid is not None:
                        seen[node.index].add(pid)
                    if len(seen[node.index]) >= workers:
                        pending.remove(node)
                if not pending:
                    break
                if time.monotonic() > deadline:
                    raise self._unhealthy(pending, seen, workers, timeout_s)
                time.sleep(0.02)  # poll interval of a condition wait
        self.say(f"healthy: {len(nodes)} replica(s), every one of {workers} worker(s) answered")

    @staticmethod
    def _health_pid(client: httpx.Client, node: NodeProcess) -> int | None:
        try:
            response = client.get(f"{node.url}/health")
        except httpx.HTTPError:
            return None
        if response.status_code != 200:
            return None
        pid = response.json().get("pid")
        return pid if isinstance(pid, int) else None

    @staticmethod
    def _unhealthy(
        pending: list[NodeProcess], seen: dict[int, set[int]], workers: int, timeout_s: float
    ) -> FleetError:
        node = pending[0]
        answered = len(seen[node.index])
        if answered == 0:
            what = "did not answer /health"
        else:
            what = f"had only {answered} of {workers} workers answering /health"
        tail = node.log_tail()
        return FleetError(
            f"node {node.node_id} (port {node.port}) {what} within {timeout_s:.0f} s"
            + (f":\n{tail}" if tail else "")
        )


@contextlib.contextmanager
def running_fleet(
    settings: LocalSettings, spec: FleetSpec, say: Callable[[str], None] = lambda _: None
) -> Iterator[Fleet]:
    """Start ``spec`` and stop it on exit, whatever happens inside."""
    with Fleet(settings, say) as fleet:
        fleet.apply(spec)
        yield fleet
