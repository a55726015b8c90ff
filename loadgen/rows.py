"""The report's rows: one per node (errors charged to it) and one per target found down."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from loadgen.accumulators import RunStats
from loadgen.health import DownTarget
from loadgen.histogram import LatencySummary, summarize

__all__ = ["NodeRow", "down_rows", "node_rows"]


@dataclass(frozen=True)
class NodeRow:
    """One line of the per-node report: a node's answers plus the errors charged to it."""

    node: str
    target: str
    successes: int
    errors: int
    latency: LatencySummary | None
    share: float = 0.0  # of the run's requests (successes and errors): 0 for an empty run

    @property
    def requests(self) -> int:
        """Successes plus errors."""
        return self.successes + self.errors


def node_rows(stats: RunStats) -> list[NodeRow]:
    """Per-node rows, errors folded in.

    A failed request has no answer, so it is charged to the node its target has always
    answered as (one pod behind one address); a target that answered as several nodes (a
    load-balanced Service) or never answered gets a row of its own, named by the target URL.
    ``share`` is the row's requests over all of them, so the rows' shares sum to 1.
    """
    successes = {node: s.successes for node, s in stats.nodes.items()}
    errors: dict[str, int] = dict.fromkeys(stats.nodes, 0)
    targets = {node: min(s.targets) if s.targets else node for node, s in stats.nodes.items()}
    histograms = {node: s.latency for node, s in stats.nodes.items()}
    for target, count in stats.target_errors.items():
        owners = [node for node, s in stats.nodes.items() if target in s.targets]
        key = owners[0] if len(owners) == 1 else target
        if key not in errors:
            errors[key] = 0
            successes.setdefault(key, 0)
            targets.setdefault(key, target)
        errors[key] += count
    total = sum(successes.values()) + sum(errors.values())
    rows = [
        NodeRow(
            node=node,
            target=targets[node],
            successes=successes[node],
            errors=errors[node],
            latency=summarize(histograms[node]) if node in histograms else None,
            share=(successes[node] + errors[node]) / total if total else 0.0,
        )
        for node in errors
    ]
    return sorted(rows, key=lambda row: _natural_key(row.node))


def down_rows(targets_down: dict[str, DownTarget]) -> list[dict[str, Any]]:
    """The report's ``targetsDown``: one row per target whose last connect failed, by URL."""
    return [
        {"target": target, "wentAway": down.went_away, "failedConnects": down.failed_connects}
        for target, down in sorted(targets_down.items())
    ]


def _natural_key(text: str) -> tuple[tuple[int, int | str], ...]:
    # "node-2" before "node-10": compare digit runs as numbers.
    parts: list[tuple[int, int | str]] = []
    digits = ""
    word = ""
    for char in text:
        if char.isdigit():
            if word:
                parts.append((1, word))
                word = ""
            digits += char
        else:
            if digits:
                parts.append((0, int(digits)))
                digits = ""
            word += char
    if digits:
        parts.append((0, int(digits)))
    if word:
        parts.append((1, word))
    return tuple(parts)
