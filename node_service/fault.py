"""The fault window: for a few seconds the node's /work is slow or fails, as if a dependency went.

``POST /fault`` (authenticated, present only when the node has a fault token) schedules one
window, replacing any earlier one; every /work that meets it is slowed or refused.

The window must reach every worker process, but a POST lands in one of them. So the window is
a small JSON file in a private directory the CLI makes for the node (:class:`FaultBoard`): the
worker that takes the POST writes a temporary file next to it and renames it over the old one,
which is atomic on POSIX, so a reader sees the old window or the new one, never half of either.
Each /work ``stat``s the file and reads it only when it changed (another inode after a rename):
a microsecond or two, against a /work's milliseconds, and every worker applies a new window
from the next /work it serves, with no message to deliver and none to lose.

A window is kept as wall-clock epoch seconds: Python leaves ``time.monotonic``'s reference
point undefined, so it means nothing in another process, while every worker of a node reads the
same system clock; a clock step during a window moves the window by the step, which a lab's few
seconds can bear.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError
from pydantic.alias_generators import to_camel

from loadgen.timestamps import rfc3339
from node_service.settings import IO_MILLIS_MAX

__all__ = [
    "FAULT_BOARD_ENV",
    "FaultBoard",
    "FaultInvalid",
    "FaultWindow",
    "authorize",
    "fault_body_schema",
    "parse_fault",
    "stamp",
]

FAULT_BOARD_ENV = "NODELAB_FAULT_BOARD"
Mode = Literal["slow", "fail"]
# A lab window is seconds long; these bounds only keep a typo from breaking a node for a day.
_STARTS_IN_MAX = 3600.0
_DURATION_MAX = 3600.0


class _FaultBody(BaseModel):
    """The body of ``POST /fault`` as it arrives (cross-field rules: :func:`parse_fault`)."""

    model_config = ConfigDict(alias_generator=to_camel, extra="forbid", strict=True)

    starts_in_seconds: float = Field(default=0.0, ge=0, le=_STARTS_IN_MAX, allow_inf_nan=False)
    duration_seconds: float = Field(gt=0, le=_DURATION_MAX, allow_inf_nan=False)
    mode: Mode
    extra_millis: int | None = Field(default=None, ge=1, le=IO_MILLIS_MAX)
    status: Literal[500, 503] | None = None


class FaultInvalid(ValueError):
    """A ``POST /fault`` body that is not a window; ``errors`` as pydantic spells them."""

    def __init__(self, errors: Sequence[Any]) -> None:
        super().__init__(errors[0].get("msg") if errors else "invalid fault")
        self.errors = list(errors)


@dataclass(frozen=True)
class FaultWindow:
    """One scheduled window, in wall-clock epoch seconds: ``starts_at <= now < ends_at``."""

    mode: Mode
    starts_at: float
    ends_at: float
    extra_millis: int = 0  # slow: the wait each /work gets on top of its own
    status: int = 503  # fail: what each /work is answered

    def active(self, now: float) -> bool:
        """Whether ``now`` (epoch seconds) is inside the window."""
        return self.starts_at <= now < self.ends_at

    def state(self, now: float) -> Literal["scheduled", "active", "over"]:
        """Where ``now`` is relative to the window."""
        if now < self.starts_at:
            return "scheduled"
        return "active" if now < self.ends_at else "over"

    def to_json(self, now: float) -> dict[str, JsonValue]:
        """The window as ``GET /fault`` shows it, seen at ``now``."""
        body: dict[str, JsonValue] = {"mode": self.mode}
        if self.mode == "slow":
            body["extraMillis"] = self.extra_millis
        else:
            body["status"] = self.status
        return {
            **body,
            "state": self.state(now),
            "startsAt": stamp(self.starts_at),
            "endsAt": stamp(self.ends_at),
            "durationSeconds": round(self.ends_at - self.starts_at, 3),
            "startsInSeconds": round(self.starts_at - now, 3),
            "endsInSeconds": round(self.ends_at - now, 3),
        }

    def to_record(self) -> bytes:
        """The window as the board's file holds it."""
        return json.dumps(
            {
                "mode": self.mode,
                "startsAt": self.starts_at,
                "endsAt": self.ends_at,
                "extraMillis": self.extra_millis,
                "status": self.status,
            }
        ).encode()

    @classmethod
    def from_record(cls, record: bytes) -> FaultWindow:
        """The window a board's file holds (written by :meth:`to_record`)."""
        data = json.loads(record)
        mode = data["mode"]
        if mode not in ("slow", "fail"):
            raise ValueError(f"not a fault mode: {mode!r}")
        return cls(
            mode=mode,
            starts_at=float(data["startsAt"]),
            ends_at=float(data["endsAt"]),
            extra_millis=int(data["extraMillis"]),
            status=int(data["status"]),
        )


def stamp(epoch: float) -> str:
    """Epoch seconds as RFC 3339 UTC, to the millisecond."""
    return rfc3339(datetime.fromtimestamp(epoch, UTC), timespec="milliseconds")


def fault_body_schema() -> dict[str, Any]:
    """JSON Schema of a ``POST /fault`` body."""
    return _FaultBody.model_json_schema(by_alias=True)


def parse_fault(body: bytes, now: float) -> FaultWindow:
    """The window a ``POST /fault`` body asks for, seen at ``now`` (epoch seconds).

    Raises :class:`FaultInvalid` naming the first wrong field: ``extraMillis`` is required for
    ``slow`` and refused for ``fail``, ``status`` (default 503) the other way round.
    """
    try:
        asked = _FaultBody.model_validate_json(body)
    except ValidationError as exc:
        raise FaultInvalid(exc.errors()) from None
    errors: list[dict[str, Any]] = []
    if asked.mode == "slow":
        if asked.extra_millis is None:
            msg = "mode slow needs extraMillis, the wait added to each /work"
            errors.append({"loc": ("extraMillis",), "msg": msg, "type": "missing"})
        if asked.status is not None:
            msg = "status is for mode fail"
            errors.append({"loc": ("status",), "msg": msg, "type": "extra_forbidden"})
    elif asked.extra_millis is not None:
        msg = "extraMillis is for mode slow"
        errors.append({"loc": ("extraMillis",), "msg": msg, "type": "extra_forbidden"})
    if errors:
        raise FaultInvalid(errors)
    starts_at = now + asked.starts_in_seconds
    return FaultWindow(
        mode=asked.mode,
        starts_at=starts_at,
        ends_at=starts_at + asked.duration_seconds,
        extra_millis=asked.extra_millis or 0,
        status=asked.status or 503,
    )


class FaultBoard:
    """Where the workers of a node find its window: a file at ``path``, or memory when None.

    Memory is for one process alone (the app in a test); the CLI gives every node with a fault
    token a file in a private directory, so a window posted to one worker reaches them all.
    """

    def __init__(self, path: str | None = None) -> None:
        self.path = path
        self._window: FaultWindow | None = None
        self._seen: tuple[int, int, int] | None = None

    def publish(self, window: FaultWindow) -> None:
        """Make ``window`` the node's, replacing any earlier one, for every worker at once."""
        self._window = window
        if self.path is None:
            return
        folder = os.path.dirname(self.path) or "."
        fd, scratch = tempfile.mkstemp(prefix=".fault-", dir=folder)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(window.to_record())
            os.replace(scratch, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(scratch)
            raise
        self._seen = None

    def current(self) -> FaultWindow | None:
        """The node's window (perhaps scheduled or over), or None if none was ever posted."""
        if self.path is None:
            return self._window
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return None
        seen = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if seen != self._seen:
            try:
                with open(self.path, "rb") as handle:
                    self._window = FaultWindow.from_record(handle.read())
            except FileNotFoundError:
                return None
            self._seen = seen
        return self._window

    def active(self, now: float) -> FaultWindow | None:
        """The node's window if ``now`` (epoch seconds) is inside it."""
        window = self.current()
        return window if window is not None and window.active(now) else None


def authorize(header: str | None, token: str) -> Literal[200, 401, 403]:
    """200 if ``header`` (``Authorization``) is ``Bearer <token>``; 401 without bearer
    credentials, 403 with the wrong ones."""
    if header is None:
        return 401
    scheme, _, given = header.strip().partition(" ")
    given = given.strip()
    if scheme.lower() != "bearer" or not given:
        return 401
    # Constant time, so the answer's timing does not spell out the token byte by byte.
    if hmac.compare_digest(given.encode(), token.encode()):
        return 200
    return 403
