"""The bench's one table: a :class:`Row` per figure, rendered with rich and written as JSON.

A row module builds rows and nothing else; ``bench.__main__`` collects them, prints the table
and writes the JSON.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from rich.table import Table

__all__ = ["STATUSES", "Row", "Status", "counts", "format_ratio", "judge", "render", "within"]

Status = Literal["hit", "miss", "info", "skipped", "error"]
STATUSES: tuple[Status, ...] = ("hit", "miss", "info", "skipped", "error")

_STYLE: dict[Status, str] = {
    "hit": "green",
    "miss": "red",
    "info": "cyan",
    "skipped": "yellow",
    "error": "bold red",
}


def judge(hit: bool) -> Status:
    """``hit`` or ``miss``."""
    return "hit" if hit else "miss"


def within(value: float, low: float, high: float) -> bool:
    """``low <= value <= high``."""
    return low <= value <= high


@dataclass(frozen=True)
class Row:
    """One line of the table: a figure measured in this run against its anchor.

    ``key`` is the row's number and letter (``1a``, ``5b``); ``figure`` and ``anchor`` say what
    was measured and what it is compared to, each with its measured value; ``ratio`` is figure
    over anchor (None when the row has nothing to divide, e.g. skipped); ``target`` is the goal in
    words (``>= 0.85``, ``-`` for rows that are printed for information); ``status`` is judged by
    the row's builder; ``note`` says why a row was skipped or failed; ``data`` holds every number
    behind the row for the JSON.
    """

    key: str
    figure: str
    anchor: str
    ratio: float | None = None
    target: str = "-"
    status: Status = "info"
    note: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def skipped(cls, key: str, figure: str, anchor: str, target: str, reason: str) -> Row:
        """A row that could not be measured here (a missing tool): says why, fails nothing."""
        return cls(key, figure, anchor, None, target, "skipped", f"skipped: {reason}")

    @classmethod
    def failed(cls, key: str, figure: str, anchor: str, target: str, error: str) -> Row:
        """A row whose measurement broke: the error, never a number."""
        return cls(key, figure, anchor, None, target, "error", error)

    def to_json(self) -> dict[str, Any]:
        """The row as a JSON object (``ratio`` null when there is none)."""
        return {
            "key": self.key,
            "figure": self.figure,
            "anchor": self.anchor,
            "ratio": None if self.ratio is None else round(self.ratio, 4),
            "target": self.target,
            "status": self.status,
            "note": self.note,
            "data": dict(self.data),
        }


def format_ratio(ratio: float | None) -> str:
    """``0.973x``; three decimals below 10, one above; ``-`` for none."""
    if ratio is None:
        return "-"
    return f"{ratio:.3f}x" if abs(ratio) < 10 else f"{ratio:.1f}x"


def render(rows: Sequence[Row], title: str, caption: str | None = None) -> Table:
    """The table: #, figure, anchor, ratio, target, result (and a note column when needed)."""
    table = Table(title=title, title_justify="left", caption=caption, caption_justify="left")
    table.add_column("#", no_wrap=True)
    table.add_column("figure (measured)")
    table.add_column("anchor (measured)")
    table.add_column("ratio", justify="right", no_wrap=True)
    table.add_column("target", no_wrap=True)
    table.add_column("result", no_wrap=True)
    with_notes = any(row.note for row in rows)
    if with_notes:
        table.add_column("note")
    for row in rows:
        cells = [
            row.key,
            row.figure,
            row.anchor,
            format_ratio(row.ratio),
            row.target,
            f"[{_STYLE[row.status]}]{row.status}[/]",
        ]
        if with_notes:
            cells.append(row.note)
        table.add_row(*cells)
    return table


def counts(rows: Sequence[Row]) -> Mapping[Status, int]:
    """How many rows have each status."""
    return {status: sum(1 for row in rows if row.status == status) for status in STATUSES}
