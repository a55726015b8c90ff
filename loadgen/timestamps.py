"""RFC 3339 timestamps as Kubernetes writes them: UTC with a ``Z``.

The one helper every component writes its times with: the load report (``startedAt``), the
operator's conditions and history, the local runtime's status document and the bench. It lives
in ``loadgen`` because every package may import it without a cycle (``nodelab`` imports
``loadgen``, never the reverse) and it imports nothing but the standard library.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

__all__ = ["rfc3339"]


def rfc3339(
    moment: datetime | None = None,
    *,
    timespec: Literal["seconds", "milliseconds", "microseconds"] = "seconds",
) -> str:
    """``moment`` (default: now) in UTC: ``2026-01-02T03:04:05Z`` by default, or with
    ``timespec="milliseconds"`` ``2026-01-02T03:04:05.678Z`` (the load report's)."""
    when = datetime.now(UTC) if moment is None else moment.astimezone(UTC)
    return when.isoformat(timespec=timespec).replace("+00:00", "Z")
