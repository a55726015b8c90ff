"""Row 7: fast and slow nodes (issue 12, phase 6): every balancing strategy on one fleet of three
one-worker nodes, one of them five times slower, side by side with the balancing model.

I/O mode: each node's /work is a pure wait (``--io-millis``, the slow node five times the
others') while it holds the node's one worker, so service times hold on a busy machine. Each
node is calibrated alone (sequential requests, their median latency: its service time as the
client sees it), and ``nodelab.model.balancing`` predicts each strategy's share to the slow node
and p99 from those service times. Then every strategy runs the same closed loop by duration,
one after another, rounds rotating their order; a strategy's figures are the median of its
rounds. Targets: the best strategy's p99 at most half round-robin's, and its share to the slow
node within ``SHARE_TOLERANCE`` of the model's.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from nodelab.model.balancing import BalancingPrediction, NodeProfile, compare_strategies

from bench.common import Context, median, say
from bench.processes import Server, load_argv, run_measured, running
from bench.table import Row, judge
from loadgen.balancing import STRATEGIES, StrategyName
from loadgen.plan import LoadPlan
from loadgen.runner import calibrate
from tests.support.processes import node_command

__all__ = ["P99_TARGET", "SHARE_TOLERANCE", "run"]

P99_TARGET = 0.5  # the best strategy's p99 <= 0.5 x round-robin's (issue 12)
SHARE_TOLERANCE = 0.05  # its slow-node share within +-0.05 of the model's (1/11 here)
FAST_IO_MS = 20
SLOW_FACTOR = 5
CONCURRENCY = 12  # four clients per node: round-robin's slow node queues, the others do not
CALIBRATION_REQUESTS = 10
SLOW_NODE = "3"


@dataclass(frozen=True)
class _Settings:
    rounds: int
    seconds: float


def _settings(quick: bool) -> _Settings:
    return _Settings(rounds=1, seconds=4.0) if quick else _Settings(rounds=3, seconds=8.0)


@contextlib.contextmanager
def _fleet() -> Iterator[list[Server]]:
    """Nodes "1" and "2" at FAST_IO_MS, node "3" SLOW_FACTOR times that; reaped on exit."""
    with contextlib.ExitStack() as stack:
        servers = []
        for node in ("1", "2", "3"):
            io_ms = FAST_IO_MS * (SLOW_FACTOR if node == SLOW_NODE else 1)

            def argv(port: int, node: str = node, io_ms: int = io_ms) -> list[str]:
                return node_command(port, node_id=node, load_factor=0, io_millis=io_ms)

            servers.append(stack.enter_context(running(f"node-{node}", argv)))
        yield servers


def _service_ms(url: str) -> float:
    """A node's service time as the client sees it: the median of sequential requests alone."""
    entry = calibrate(LoadPlan(targets=(url,), calibrate=CALIBRATION_REQUESTS, timeout_s=10.0))
    if entry is None or entry["latencyMillis"] is None:
        raise RuntimeError(f"{url}: calibration got no answer")
    return float(entry["latencyMillis"])


def _load(plan: LoadPlan) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="nodelab-bench-") as tmp:
        report_path = Path(tmp) / "report.json"
        measured = run_measured(load_argv(plan, report_path), 60.0 + plan.run_deadline_s())
        measured.check(f"nodelab load --balancing {plan.balancing}")
        report: dict[str, Any] = json.loads(report_path.read_text(encoding="utf-8"))
    return report


def _slow_share(report: dict[str, Any]) -> float:
    rows = {row["node"]: row for row in report["perNode"]}
    return float(rows[SLOW_NODE]["share"]) if SLOW_NODE in rows else 0.0


def _figures(report: dict[str, Any]) -> dict[str, Any]:
    return {
        "slowShare": _slow_share(report),
        "p99Millis": float(report["latencyMillis"]["p99"]),
        "rps": float(report["rps"]),
        "errors": report["errors"],
        "perNode": report["perNode"],
    }


def _measure(ctx: Context) -> dict[str, Any]:
    settings = _settings(ctx.quick)
    names: list[StrategyName] = list(STRATEGIES)
    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    with _fleet() as servers:
        targets = tuple(server.url for server in servers)
        service = [_service_ms(url) for url in targets]
        say("row 7: service times alone " + ", ".join(f"{ms:.1f} ms" for ms in service))
        plan = LoadPlan(
            targets=targets, concurrency=CONCURRENCY, duration_s=settings.seconds, timeout_s=30.0
        )
        for turn in range(settings.rounds):
            order = names[turn % len(names) :] + names[: turn % len(names)]
            for name in order:
                say(f"row 7: round {turn + 1}/{settings.rounds}, {name}")
                rounds[name].append(_figures(_load(replace(plan, balancing=name))))
    return {"serviceMillis": service, "rounds": rounds, "seconds": settings.seconds}


def _model(service_ms: list[float]) -> dict[str, BalancingPrediction]:
    # I/O mode: the wait needs no core; a request's few tenths of a ms of CPU are noise here.
    nodes = [NodeProfile(service_ms=ms, cpu_ms=0.0) for ms in service_ms]
    return {p.strategy: p for p in compare_strategies(nodes, CONCURRENCY)}


def run(ctx: Context) -> list[Row]:
    """Measure row 7: one row per strategy (7a-7e) and the two targets (7f, 7g)."""
    say(f"row 7: 3 one-worker nodes in I/O mode, node {SLOW_NODE} {SLOW_FACTOR}x slower")
    data = _measure(ctx)
    model = _model(data["serviceMillis"])
    slow_index = int(SLOW_NODE) - 1
    measured: dict[str, dict[str, float]] = {}
    for name, runs in data["rounds"].items():
        measured[name] = {
            key: median([figures[key] for figures in runs])
            for key in ("slowShare", "p99Millis", "rps")
        }
    data["median"] = measured
    data["model"] = {
        name: {
            "slowShare": round(p.nodes[slow_index].share, 4),
            "p99Millis": round(p.p99_ms, 1),
            "rps": round(p.throughput_rps, 1),
        }
        for name, p in model.items()
    }
    rows: list[Row] = []
    for letter, name in zip("abcde", STRATEGIES, strict=True):
        got, want = measured[name], model[name]
        rows.append(
            Row(
                f"7{letter}",
                f"{name}: slow-node share {got['slowShare']:.3f}, p99 {got['p99Millis']:,.0f} ms, "
                f"{got['rps']:.1f} req/s",
                f"model: share {want.nodes[slow_index].share:.3f}, p99 {want.p99_ms:,.0f} ms, "
                f"{want.throughput_rps:.1f} req/s",
                got["p99Millis"] / want.p99_ms,
                "- (p99 / model)",
                "info",
                data={"rounds": data["rounds"][name]},
            )
        )
    blind = measured["round-robin"]
    best = min(
        (name for name in STRATEGIES if name != "round-robin"),
        key=lambda n: measured[n]["p99Millis"],
    )
    top = measured[best]
    p99_ratio = top["p99Millis"] / blind["p99Millis"]
    rows.append(
        Row(
            "7f",
            f"best strategy ({best}) p99: {top['p99Millis']:,.0f} ms",
            f"round-robin p99: {blind['p99Millis']:,.0f} ms",
            p99_ratio,
            f"<= {P99_TARGET}",
            judge(p99_ratio <= P99_TARGET),
            data={k: v for k, v in data.items() if k != "rounds"},
        )
    )
    model_share = model[best].nodes[slow_index].share
    off = top["slowShare"] - model_share
    rows.append(
        Row(
            "7g",
            f"best strategy ({best}) slow-node share: {top['slowShare']:.3f}",
            f"model ({best}): {model_share:.3f}",
            top["slowShare"] / model_share,
            f"share within +-{SHARE_TOLERANCE}",
            judge(abs(off) <= SHARE_TOLERANCE),
            f"off by {off:+.3f}",
        )
    )
    return rows
