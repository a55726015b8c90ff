"""The load run's progress on the terminal: a rich progress bar per level while it runs."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

__all__ = ["RichProgress"]


class RichProgress:
    """A :class:`loadgen.runner.ProgressSink` drawing one bar per level on ``console``.

    Updated from the engine's timer (a few times a second), never per request.
    """

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[done]} requests"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            auto_refresh=False,
        )
        self._task: TaskID | None = None
        self._by_time = False

    def begin(self, label: str, total: int | None, duration_s: float | None) -> None:
        """Show a bar for a level: by request count, or by seconds for a duration run."""
        self._by_time = total is None and duration_s is not None
        bar_total = duration_s if self._by_time else total
        self._progress.start()
        self._task = self._progress.add_task(label, total=bar_total, done=0)

    def update(self, done: int, elapsed_s: float) -> None:
        """Move the bar; called a few times a second."""
        if self._task is None:
            return
        completed = elapsed_s if self._by_time else done
        self._progress.update(self._task, completed=completed, done=done)
        self._progress.refresh()

    def end(self) -> None:
        """Remove the bar."""
        if self._task is not None:
            self._progress.remove_task(self._task)
            self._task = None
        self._progress.stop()
