"""The node's settings: one frozen dataclass, read once from flags and environment.

The CLI parses flags (with ``NODELAB_*`` environment fallbacks) into :class:`NodeSettings`.
Uvicorn worker processes are fresh interpreters, so the CLI hands the parsed settings to them as
environment variables (:func:`settings_to_env`) and each worker reads them back through the very
same parser (:func:`settings_from_env`): one definition of every flag, its bounds and its message.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

__all__ = [
    "IO_MILLIS_MAX",
    "LOAD_FACTOR_MAX",
    "ConnectionLimits",
    "NodeSettings",
    "StoreLimits",
    "build_parser",
    "parse_settings",
    "settings_from_env",
    "settings_to_env",
]

# fib(40) is ~30 s on one core here: past that a "request" is no longer a request.
LOAD_FACTOR_MAX = 40
IO_MILLIS_MAX = 60_000
WORKERS_MAX = 256
STARTED_AT_ENV = "NODELAB_STARTED_AT"


@dataclass(frozen=True)
class StoreLimits:
    """Bounds of one worker's key-value store."""

    max_key_length: int = 256
    max_value_bytes: int = 64 * 1024
    max_keys: int = 10_000
    max_store_bytes: int = 16 * 1024 * 1024

    @property
    def max_body_bytes(self) -> int:
        """Largest ``POST /data`` body read into memory.

        A JSON ``\\uXXXX`` escape spends up to 6 body bytes per stored byte, so a body within this
        bound can still hold a value within ``max_value_bytes``; anything larger is refused unread.
        """
        return 6 * (self.max_value_bytes + self.max_key_length) + 1024


@dataclass(frozen=True)
class ConnectionLimits:
    """Bounds of one worker's HTTP connections: how long and how much a client may take."""

    header_timeout: int = 10
    body_timeout: int = 30
    keep_alive_timeout: int = 5
    max_connections: int = 1024
    max_header_bytes: int = 16 * 1024


@dataclass(frozen=True)
class NodeSettings:
    """Everything a node process needs, fixed at start-up."""

    host: str = "127.0.0.1"
    port: int = 5001
    node_id: str = "1"
    workers: int = 1
    load_factor: int = 30
    io_millis: int = 0
    access_log: bool = False
    graceful_timeout: int = 25
    max_load_factor: int = LOAD_FACTOR_MAX
    max_io_millis: int = IO_MILLIS_MAX
    limits: StoreLimits = field(default_factory=StoreLimits)
    connections: ConnectionLimits = field(default_factory=ConnectionLimits)
    # Wall-clock start of the node, not the worker: uptime is the node's, whichever worker answers.
    started_at: float = field(default_factory=time.time)


def _bounded_int(low: int, high: int) -> Callable[[str], int]:
    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is outside {low}..{high}")
        return value

    convert.__name__ = "int"
    return convert


def _non_empty(limit: int) -> Callable[[str], str]:
    def convert(text: str) -> str:
        if not text.strip():
            raise argparse.ArgumentTypeError("must not be empty")
        if len(text) > limit:
            raise argparse.ArgumentTypeError(f"longer than {limit} characters")
        return text

    convert.__name__ = "str"
    return convert


def _flag_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"", "0", "false", "no", "off"}:
        return False
    raise argparse.ArgumentTypeError(f"not a boolean: {text!r}")


# flag, environment variable, converter, default (as the environment would spell it), help.
_OPTIONS: list[tuple[str, str, Callable[[str], object], str, str]] = [
    ("--host", "NODELAB_HOST", _non_empty(253), "127.0.0.1", "address to listen on"),
    ("--port", "NODELAB_PORT", _bounded_int(1, 65535), "5001", "TCP port"),
    ("--id", "NODELAB_NODE_ID", _non_empty(253), "1", "node id shown in every answer"),
    ("--workers", "NODELAB_WORKERS", _bounded_int(1, WORKERS_MAX), "1", "uvicorn worker processes"),
    (
        "--load-factor",
        "NODELAB_LOAD_FACTOR",
        _bounded_int(0, LOAD_FACTOR_MAX),
        "30",
        "n of the recursive fib(n) each /work computes",
    ),
    (
        "--io-millis",
        "NODELAB_IO_MILLIS",
        _bounded_int(0, IO_MILLIS_MAX),
        "0",
        "simulated I/O wait (asyncio.sleep) of each /work, ms",
    ),
    (
        "--max-load-factor",
        "NODELAB_MAX_LOAD_FACTOR",
        _bounded_int(0, LOAD_FACTOR_MAX),
        str(LOAD_FACTOR_MAX),
        "largest loadFactor a /work query may ask for",
    ),
    (
        "--max-io-millis",
        "NODELAB_MAX_IO_MILLIS",
        _bounded_int(0, IO_MILLIS_MAX),
        str(IO_MILLIS_MAX),
        "largest ioMillis a /work query may ask for",
    ),
    (
        "--graceful-timeout",
        "NODELAB_GRACEFUL_TIMEOUT",
        _bounded_int(1, 3600),
        "25",
        "on SIGTERM, seconds in-flight requests get to finish",
    ),
    (
        "--header-timeout",
        "NODELAB_HEADER_TIMEOUT",
        _bounded_int(1, 3600),
        "10",
        "seconds a client gets to send a request's headers (from connecting or the last answer)",
    ),
    (
        "--body-timeout",
        "NODELAB_BODY_TIMEOUT",
        _bounded_int(1, 3600),
        "30",
        "seconds a client gets to send a POST /data body once its headers arrived",
    ),
    (
        "--keep-alive-timeout",
        "NODELAB_KEEP_ALIVE_TIMEOUT",
        _bounded_int(1, 3600),
        "5",
        "seconds an idle keep-alive connection stays open",
    ),
    (
        "--max-connections",
        "NODELAB_MAX_CONNECTIONS",
        _bounded_int(1, 65535),
        "1024",
        "connections one worker serves at once; requests on more are answered 503",
    ),
    (
        "--max-header-bytes",
        "NODELAB_MAX_HEADER_BYTES",
        _bounded_int(1024, 1024 * 1024),
        str(16 * 1024),
        "largest request line + headers, bytes (431 past it)",
    ),
    ("--max-key-length", "NODELAB_MAX_KEY_LENGTH", _bounded_int(1, 4096), "256", "store limit"),
    (
        "--max-value-bytes",
        "NODELAB_MAX_VALUE_BYTES",
        _bounded_int(1, 16 * 1024 * 1024),
        str(64 * 1024),
        "store limit (value as compact JSON, UTF-8)",
    ),
    ("--max-keys", "NODELAB_MAX_KEYS", _bounded_int(1, 10_000_000), "10000", "store limit"),
    (
        "--max-store-bytes",
        "NODELAB_MAX_STORE_BYTES",
        _bounded_int(1, 1 << 34),
        str(16 * 1024 * 1024),
        "store limit (keys + values, per worker)",
    ),
]


def build_parser() -> argparse.ArgumentParser:
    """The ``nodelab node`` argument parser (without the environment fallbacks: see below)."""
    parser = argparse.ArgumentParser(
        prog="nodelab node",
        description="Run a NodeLab node: health, key-value data, simulated work, metrics.",
    )
    for flag, env_name, convert, default, help_ in _OPTIONS:
        # No default here: parse_settings converts the environment value itself, so that an
        # error can say it came from the environment, not from a flag nobody typed.
        parser.add_argument(flag, type=convert, help=f"{help_} [env {env_name}, default {default}]")
    parser.add_argument(
        "--access-log",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="log every request (off by default: it costs throughput) [env NODELAB_ACCESS_LOG]",
    )
    return parser


def parse_settings(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> NodeSettings:
    """Parse flags (environment as fallback) into settings.

    Bad values raise ``SystemExit(2)`` after argparse printed a message naming the flag.
    """
    env = os.environ if environ is None else environ
    parser = build_parser()
    ns = parser.parse_args(list(argv))
    for flag, env_name, convert, default, _ in _OPTIONS:
        dest = flag.removeprefix("--").replace("-", "_")
        if getattr(ns, dest) is None:
            try:
                setattr(ns, dest, convert(env.get(env_name, default)))
            except argparse.ArgumentTypeError as exc:
                parser.error(f"argument {flag}: {exc} (from environment variable {env_name})")
    if ns.access_log is None:
        try:
            ns.access_log = _flag_bool(env.get("NODELAB_ACCESS_LOG", ""))
        except argparse.ArgumentTypeError as exc:
            parser.error(f"argument --access-log: {exc} (from environment NODELAB_ACCESS_LOG)")
    for flag, value, bound_flag, bound in (
        ("--load-factor", ns.load_factor, "--max-load-factor", ns.max_load_factor),
        ("--io-millis", ns.io_millis, "--max-io-millis", ns.max_io_millis),
    ):
        if value > bound:
            parser.error(f"argument {flag}: {value} is above {bound_flag} {bound}")
    limits = StoreLimits(
        max_key_length=ns.max_key_length,
        max_value_bytes=ns.max_value_bytes,
        max_keys=ns.max_keys,
        max_store_bytes=ns.max_store_bytes,
    )
    connections = ConnectionLimits(
        header_timeout=ns.header_timeout,
        body_timeout=ns.body_timeout,
        keep_alive_timeout=ns.keep_alive_timeout,
        max_connections=ns.max_connections,
        max_header_bytes=ns.max_header_bytes,
    )
    started_at = env.get(STARTED_AT_ENV)
    return NodeSettings(
        host=ns.host,
        port=ns.port,
        node_id=ns.id,
        workers=ns.workers,
        load_factor=ns.load_factor,
        io_millis=ns.io_millis,
        access_log=ns.access_log,
        graceful_timeout=ns.graceful_timeout,
        max_load_factor=ns.max_load_factor,
        max_io_millis=ns.max_io_millis,
        limits=limits,
        connections=connections,
        started_at=float(started_at) if started_at else time.time(),
    )


def settings_to_env(settings: NodeSettings) -> dict[str, str]:
    """The environment that makes :func:`settings_from_env` rebuild ``settings`` in a worker."""
    limits = settings.limits
    connections = settings.connections
    return {
        "NODELAB_HOST": settings.host,
        "NODELAB_PORT": str(settings.port),
        "NODELAB_NODE_ID": settings.node_id,
        "NODELAB_WORKERS": str(settings.workers),
        "NODELAB_LOAD_FACTOR": str(settings.load_factor),
        "NODELAB_IO_MILLIS": str(settings.io_millis),
        "NODELAB_GRACEFUL_TIMEOUT": str(settings.graceful_timeout),
        "NODELAB_MAX_LOAD_FACTOR": str(settings.max_load_factor),
        "NODELAB_MAX_IO_MILLIS": str(settings.max_io_millis),
        "NODELAB_HEADER_TIMEOUT": str(connections.header_timeout),
        "NODELAB_BODY_TIMEOUT": str(connections.body_timeout),
        "NODELAB_KEEP_ALIVE_TIMEOUT": str(connections.keep_alive_timeout),
        "NODELAB_MAX_CONNECTIONS": str(connections.max_connections),
        "NODELAB_MAX_HEADER_BYTES": str(connections.max_header_bytes),
        "NODELAB_ACCESS_LOG": "1" if settings.access_log else "0",
        "NODELAB_MAX_KEY_LENGTH": str(limits.max_key_length),
        "NODELAB_MAX_VALUE_BYTES": str(limits.max_value_bytes),
        "NODELAB_MAX_KEYS": str(limits.max_keys),
        "NODELAB_MAX_STORE_BYTES": str(limits.max_store_bytes),
        STARTED_AT_ENV: repr(settings.started_at),
    }


def settings_from_env(environ: Mapping[str, str] | None = None) -> NodeSettings:
    """Settings of a worker process, from the environment its CLI prepared."""
    return parse_settings([], environ)
