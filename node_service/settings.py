"""The node's settings: one frozen dataclass, read once from flags and environment.

The CLI parses flags (with ``NODELAB_*`` environment fallbacks) into :class:`NodeSettings`.
Uvicorn worker processes are fresh interpreters, so the CLI hands the parsed settings to them as
environment variables (:func:`settings_to_env`) and each worker reads them back through the very
same parser (:func:`settings_from_env`): one definition of every flag, its bounds and its message.
Other components start a node with the flags :func:`node_argv` writes from the same table.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "IO_MILLIS_MAX",
    "LOAD_FACTOR_MAX",
    "SERVICE_FACTOR_MAX",
    "ConnectionLimits",
    "NodeSettings",
    "Protection",
    "StoreLimits",
    "build_parser",
    "env_var",
    "node_argv",
    "parse_settings",
    "read_fault_token",
    "settings_from_env",
    "settings_to_env",
]

# fib(40) is ~30 s on one core here: past that a "request" is no longer a request.
LOAD_FACTOR_MAX = 40
IO_MILLIS_MAX = 60_000
# A slow pool is a few times slower than the fast one; past 100 a typo would stall a node.
SERVICE_FACTOR_MAX = 100.0
WORKERS_MAX = 256
STARTED_AT_ENV = "NODELAB_STARTED_AT"
FAULT_TOKEN_MAX = 4096


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
class Protection:
    """How one worker refuses /work it should not take: a bounded queue and a rate limit.

    Zero turns a bound off (the default): the node then queues and serves whatever comes.
    """

    max_queue: int = 0
    retry_after_seconds: int = 1
    rate_limit: float = 0.0
    rate_burst: int = 0

    @property
    def burst(self) -> int:
        """The token bucket's size: ``rate_burst``, or one second's worth of ``rate_limit``."""
        return self.rate_burst or max(1, math.ceil(self.rate_limit))


@dataclass(frozen=True)
class NodeSettings:
    """Everything a node process needs, fixed at start-up."""

    host: str = "127.0.0.1"
    port: int = 5001
    node_id: str = "1"
    workers: int = 1
    load_factor: int = 30
    io_millis: int = 0
    # A slow node: each /work's CPU and I/O take this many times as long (node_service.work) ...
    service_factor: float = 1.0
    # ... and it waits this much longer, like a slow dependency.
    extra_millis: int = 0
    access_log: bool = False
    graceful_timeout: int = 25
    max_load_factor: int = LOAD_FACTOR_MAX
    max_io_millis: int = IO_MILLIS_MAX
    limits: StoreLimits = field(default_factory=StoreLimits)
    connections: ConnectionLimits = field(default_factory=ConnectionLimits)
    protection: Protection = field(default_factory=Protection)
    # The file holding the token of POST /fault (None: no such endpoint). The path, not the
    # token, so that the secret is in neither a repr nor the environment the workers inherit.
    fault_token_file: str | None = None
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


def _bounded_float(low: float, high: float) -> Callable[[str], float]:
    def convert(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not low <= value <= high:  # also refuses nan
            raise argparse.ArgumentTypeError(f"{value:g} is outside {low:g}..{high:g}")
        return value

    convert.__name__ = "float"
    return convert


def _token_file(text: str) -> str | None:
    """A readable file holding a non-empty token, or None for an empty value (no token)."""
    if not text:
        return None
    try:
        with open(text, encoding="utf-8") as handle:
            token = handle.read(FAULT_TOKEN_MAX + 1).strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise argparse.ArgumentTypeError(f"cannot read {text!r}: {exc}") from None
    if not token:
        raise argparse.ArgumentTypeError(f"{text!r} holds no token")
    if len(token) > FAULT_TOKEN_MAX:
        raise argparse.ArgumentTypeError(f"the token in {text!r} is over {FAULT_TOKEN_MAX} chars")
    return text


def read_fault_token(path: str) -> str:
    """The token in ``path`` (surrounding whitespace dropped: Secrets often end in a newline)."""
    with open(path, encoding="utf-8") as handle:
        return handle.read(FAULT_TOKEN_MAX + 1).strip()


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


@dataclass(frozen=True)
class _Option:
    """One setting: the field it fills, its flag and environment variable, how it is read."""

    field: str  # attribute of NodeSettings, or of its ``group``
    flag: str
    env: str
    convert: Callable[[str], Any]
    default: str  # as the environment would spell it
    help: str
    # "limits" (StoreLimits), "connections" (ConnectionLimits) or "protection" (Protection)
    group: str | None = None

    @property
    def switch(self) -> bool:
        """A boolean setting: ``--flag`` / ``--no-flag`` on the command line."""
        return self.convert is _flag_bool

    def spell(self, value: object) -> str:
        """``value`` as the environment spells it."""
        if self.switch:
            return "1" if value else "0"
        return "" if value is None else str(value)

    def argv(self, value: object) -> list[str]:
        """``value`` as flags."""
        if self.switch:
            return [self.flag if value else self.flag.replace("--", "--no-", 1)]
        return [self.flag, self.spell(value)]


# The node's flags, each spelled here only: the parser, the environment of the workers and the
# argv other components build (node_argv) all come from this table, in this order.
_OPTIONS: tuple[_Option, ...] = (
    _Option("host", "--host", "NODELAB_HOST", _non_empty(253), "127.0.0.1", "address to listen on"),
    _Option("port", "--port", "NODELAB_PORT", _bounded_int(1, 65535), "5001", "TCP port"),
    _Option(
        "node_id", "--id", "NODELAB_NODE_ID", _non_empty(253), "1", "node id shown in every answer"
    ),
    _Option(
        "workers",
        "--workers",
        "NODELAB_WORKERS",
        _bounded_int(1, WORKERS_MAX),
        "1",
        "uvicorn worker processes",
    ),
    _Option(
        "load_factor",
        "--load-factor",
        "NODELAB_LOAD_FACTOR",
        _bounded_int(0, LOAD_FACTOR_MAX),
        "30",
        "n of the recursive fib(n) each /work computes",
    ),
    _Option(
        "io_millis",
        "--io-millis",
        "NODELAB_IO_MILLIS",
        _bounded_int(0, IO_MILLIS_MAX),
        "0",
        "simulated I/O wait (asyncio.sleep) of each /work, ms",
    ),
    _Option(
        "service_factor",
        "--service-factor",
        "NODELAB_SERVICE_FACTOR",
        _bounded_float(1, SERVICE_FACTOR_MAX),
        "1",
        "a slow node: each /work's CPU work and I/O wait take this many times as long (a float)",
    ),
    _Option(
        "extra_millis",
        "--extra-millis",
        "NODELAB_EXTRA_MILLIS",
        _bounded_int(0, IO_MILLIS_MAX),
        "0",
        "a slow node: fixed extra wait of each /work, ms, holding its worker (a slow dependency)",
    ),
    _Option(
        "max_load_factor",
        "--max-load-factor",
        "NODELAB_MAX_LOAD_FACTOR",
        _bounded_int(0, LOAD_FACTOR_MAX),
        str(LOAD_FACTOR_MAX),
        "largest loadFactor a /work query may ask for",
    ),
    _Option(
        "max_io_millis",
        "--max-io-millis",
        "NODELAB_MAX_IO_MILLIS",
        _bounded_int(0, IO_MILLIS_MAX),
        str(IO_MILLIS_MAX),
        "largest ioMillis a /work query may ask for",
    ),
    _Option(
        "graceful_timeout",
        "--graceful-timeout",
        "NODELAB_GRACEFUL_TIMEOUT",
        _bounded_int(1, 3600),
        "25",
        "on SIGTERM, seconds in-flight requests get to finish",
    ),
    _Option(
        "header_timeout",
        "--header-timeout",
        "NODELAB_HEADER_TIMEOUT",
        _bounded_int(1, 3600),
        "10",
        "seconds a client gets to send a request's headers (from connecting or the last answer)",
        "connections",
    ),
    _Option(
        "body_timeout",
        "--body-timeout",
        "NODELAB_BODY_TIMEOUT",
        _bounded_int(1, 3600),
        "30",
        "seconds a client gets to send a POST /data body once its headers arrived",
        "connections",
    ),
    _Option(
        "keep_alive_timeout",
        "--keep-alive-timeout",
        "NODELAB_KEEP_ALIVE_TIMEOUT",
        _bounded_int(1, 3600),
        "5",
        "seconds an idle keep-alive connection stays open",
        "connections",
    ),
    _Option(
        "max_connections",
        "--max-connections",
        "NODELAB_MAX_CONNECTIONS",
        _bounded_int(1, 65535),
        "1024",
        "connections one worker serves at once; requests on more are answered 503",
        "connections",
    ),
    _Option(
        "max_header_bytes",
        "--max-header-bytes",
        "NODELAB_MAX_HEADER_BYTES",
        _bounded_int(1024, 1024 * 1024),
        str(16 * 1024),
        "largest request line + headers, bytes (431 past it)",
        "connections",
    ),
    _Option(
        "max_key_length",
        "--max-key-length",
        "NODELAB_MAX_KEY_LENGTH",
        _bounded_int(1, 4096),
        "256",
        "store limit",
        "limits",
    ),
    _Option(
        "max_value_bytes",
        "--max-value-bytes",
        "NODELAB_MAX_VALUE_BYTES",
        _bounded_int(1, 16 * 1024 * 1024),
        str(64 * 1024),
        "store limit (value as compact JSON, UTF-8)",
        "limits",
    ),
    _Option(
        "max_keys",
        "--max-keys",
        "NODELAB_MAX_KEYS",
        _bounded_int(1, 10_000_000),
        "10000",
        "store limit",
        "limits",
    ),
    _Option(
        "max_store_bytes",
        "--max-store-bytes",
        "NODELAB_MAX_STORE_BYTES",
        _bounded_int(1, 1 << 34),
        str(16 * 1024 * 1024),
        "store limit (keys + values, per worker)",
        "limits",
    ),
    _Option(
        "max_queue",
        "--max-queue",
        "NODELAB_MAX_QUEUE",
        _bounded_int(0, 1_000_000),
        "0",
        "/work requests one worker lets wait for a free worker; past it 503 (0: unbounded)",
        "protection",
    ),
    _Option(
        "retry_after_seconds",
        "--retry-after-seconds",
        "NODELAB_RETRY_AFTER_SECONDS",
        _bounded_int(0, 3600),
        "1",
        "Retry-After of a /work refused because the queue is full",
        "protection",
    ),
    _Option(
        "rate_limit",
        "--rate-limit",
        "NODELAB_RATE_LIMIT",
        _bounded_float(0, 1_000_000),
        "0",
        "/work requests per second one worker takes; past it 429 (0: no limit)",
        "protection",
    ),
    _Option(
        "rate_burst",
        "--rate-burst",
        "NODELAB_RATE_BURST",
        _bounded_int(0, 1_000_000),
        "0",
        "/work requests one worker takes at once above --rate-limit (0: one second's worth)",
        "protection",
    ),
    _Option(
        "fault_token_file",
        "--fault-token-file",
        "NODELAB_FAULT_TOKEN_FILE",
        _token_file,
        "",
        "file with the bearer token of POST /fault (unset: no /fault endpoint)",
    ),
    _Option(
        "access_log",
        "--access-log",
        "NODELAB_ACCESS_LOG",
        _flag_bool,
        "0",
        "log every request (it costs throughput)",
    ),
)
_GROUPS: dict[str, type[StoreLimits | ConnectionLimits | Protection]] = {
    "limits": StoreLimits,
    "connections": ConnectionLimits,
    "protection": Protection,
}
# A value above its bound is refused naming both flags: (value field, bound field).
_BOUNDED_BY = (("load_factor", "max_load_factor"), ("io_millis", "max_io_millis"))


def _option(field_name: str) -> _Option:
    for option in _OPTIONS:
        if option.field == field_name:
            return option
    raise KeyError(field_name)


def build_parser() -> argparse.ArgumentParser:
    """The ``nodelab node`` argument parser (without the environment fallbacks: see below)."""
    parser = argparse.ArgumentParser(
        prog="nodelab node",
        description="Run a NodeLab node: health, key-value data, simulated work, metrics.",
    )
    for option in _OPTIONS:
        # No default here: parse_settings converts the environment value itself, so that an
        # error can say it came from the environment, not from a flag nobody typed.
        if option.switch:
            default = "on" if option.convert(option.default) else "off"
            parser.add_argument(
                option.flag,
                dest=option.field,
                action=argparse.BooleanOptionalAction,
                help=f"{option.help} [env {option.env}, default {default}]",
            )
            continue
        parser.add_argument(
            option.flag,
            dest=option.field,
            type=option.convert,
            metavar=option.flag.removeprefix("--").replace("-", "_").upper(),
            help=f"{option.help} [env {option.env}, default {option.default}]",
        )
    return parser


def parse_settings(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> NodeSettings:
    """Parse flags (environment as fallback) into settings.

    Bad values raise ``SystemExit(2)`` after argparse printed a message naming the flag.
    """
    env = os.environ if environ is None else environ
    parser = build_parser()
    ns = parser.parse_args(list(argv))
    values: dict[str, Any] = {}
    for option in _OPTIONS:
        value = getattr(ns, option.field)
        if value is None:
            try:
                value = option.convert(env.get(option.env, option.default))
            except argparse.ArgumentTypeError as exc:
                parser.error(
                    f"argument {option.flag}: {exc} (from environment variable {option.env})"
                )
        values[option.field] = value
    for name, bound_name in _BOUNDED_BY:
        if values[name] > values[bound_name]:
            parser.error(
                f"argument {_option(name).flag}: {values[name]} is above "
                f"{_option(bound_name).flag} {values[bound_name]}"
            )
    if values["rate_burst"] and not values["rate_limit"]:
        parser.error("argument --rate-burst: a burst needs --rate-limit")
    fields: dict[str, Any] = {o.field: values[o.field] for o in _OPTIONS if o.group is None}
    for group, limits in _GROUPS.items():
        fields[group] = limits(**{o.field: values[o.field] for o in _OPTIONS if o.group == group})
    started_at = env.get(STARTED_AT_ENV)
    return NodeSettings(**fields, started_at=float(started_at) if started_at else time.time())


def _value(settings: NodeSettings, option: _Option) -> object:
    holder = settings if option.group is None else getattr(settings, option.group)
    return getattr(holder, option.field)


def settings_to_env(settings: NodeSettings) -> dict[str, str]:
    """The environment that makes :func:`settings_from_env` rebuild ``settings`` in a worker."""
    env = {option.env: option.spell(_value(settings, option)) for option in _OPTIONS}
    env[STARTED_AT_ENV] = repr(settings.started_at)
    return env


def node_argv(**fields: str | int | float | bool) -> list[str]:
    """``nodelab node`` flags that set the given fields, in the parser's order.

    Keys are :class:`NodeSettings` fields (``host``, ``port``, ``node_id``, ``workers``, ...)
    or those of its ``limits``, ``connections`` and ``protection`` (``max_keys``,
    ``header_timeout``, ``max_queue``, ...);
    fields not given are left to the node's environment and defaults. ``parse_settings``
    inverts it: ``node_argv(workers=2)`` is ``["--workers", "2"]``.
    """
    unknown = sorted(set(fields) - {option.field for option in _OPTIONS})
    if unknown:
        raise TypeError(f"not a node setting: {', '.join(unknown)}")
    argv: list[str] = []
    for option in _OPTIONS:
        if option.field in fields:
            argv += option.argv(fields[option.field])
    return argv


def env_var(field_name: str) -> str:
    """The environment variable that sets the node's ``field_name`` (e.g. ``node_id``)."""
    return _option(field_name).env


def settings_from_env(environ: Mapping[str, str] | None = None) -> NodeSettings:
    """Settings of a worker process, from the environment its CLI prepared."""
    return parse_settings([], environ)
