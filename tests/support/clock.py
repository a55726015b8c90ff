"""A fake monotonic clock for the pure policies (breaker, budget, balancing, token bucket)."""

from __future__ import annotations

__all__ = ["FakeClock"]


class FakeClock:
    """Seconds that move only when a test says so; call it as the policies call their clock."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds``."""
        self.now += seconds
