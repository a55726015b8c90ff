"""The support kit's own errors: what tests turn into a failure or a skip, and bench into a row.

The kit never imports pytest, so it cannot fail or skip a test itself. It raises these instead;
a test that lets one escape fails with its message, a fixture that meets :class:`Unavailable`
skips with its ``reason``, and the bench reports any :class:`SupportError` as a failed row.
"""

from __future__ import annotations

__all__ = ["ProcessExited", "SupportError", "Unavailable", "WaitTimeout"]


class SupportError(RuntimeError):
    """Something the kit was asked to do did not happen; the message says what."""


class Unavailable(SupportError):
    """What the kit needs is missing on this machine (Go, a built binary, root)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class WaitTimeout(SupportError, TimeoutError):
    """A condition the kit waited for did not hold before its deadline."""


class ProcessExited(SupportError):
    """A process the kit started exited while it was expected to keep running."""
