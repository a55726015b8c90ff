"""Progress lines on stderr, so a one-minute run never looks hung and stdout stays the result."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

__all__ = ["Narrator", "wide_console"]

# Tables are for slides and logs: when stdout is not a terminal, do not wrap them at 80 columns.
_FILE_WIDTH = 180


def wide_console() -> Console:
    """A stdout console; as wide as the terminal, or 180 columns when writing to a file."""
    probe = Console()
    return Console(highlight=False, width=None if probe.is_terminal else _FILE_WIDTH)


class Narrator:
    """Prints each step (``say``) and shows load progress (the load generator's ProgressSink)."""

    def __init__(self, console: Console | None = None, *, quiet: bool = False) -> None:
        self.console = console or Console(stderr=True, highlight=False)
        self.quiet = quiet
        self._started = time.monotonic()
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def say(self, message: str) -> None:
        """One step, stamped with the seconds since the command started."""
        if not self.quiet:
            elapsed = time.monotonic() - self._started
            self.console.print(f"[dim]{elapsed:6.1f}s[/dim] {message}")

    # loadgen.runner.ProgressSink -------------------------------------------------------------

    def begin(self, label: str, total: int | None, duration_s: float | None) -> None:
        """A load level starts."""
        what = f"{total} requests" if total is not None else f"{duration_s:g} s"
        self.say(f"loading {label}: {what}")
        if self.quiet or not self.console.is_terminal:
            return
        self._progress = Progress(
            TextColumn(f"  {label}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
        )
        self._progress.start()
        self._task = self._progress.add_task(label, total=total)

    def update(self, done: int, elapsed_s: float) -> None:
        """Requests finished so far in this level."""
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=done)

    def end(self) -> None:
        """The level is over."""
        if self._progress is not None:
            self._progress.stop()
        self._progress = None
        self._task = None
