"""Row 1: the node's ``/health`` throughput against bare Starlette and raw ASGI, driven by wrk.

The three servers run at once under the same uvicorn settings (one worker, uvloop, httptools,
no access log); wrk loads one at a time, in rounds whose order rotates, so a busy moment on the
machine does not fall on one target only. Each round gives a ratio; the row is their median.
"""

from __future__ import annotations

import contextlib
from typing import Any

from bench.common import Context, median, say
from bench.processes import Server, node_argv, running, uvicorn_argv
from bench.table import Row, judge
from bench.wrk import MISSING, run_wrk

__all__ = ["TARGET", "run"]

TARGET = 0.85  # node >= 0.85 x bare Starlette (issue 5)
CONNECTIONS = 50
FIGURE = "node /health req/s, 1 worker"


def _settings(quick: bool) -> tuple[int, int]:
    """(rounds, seconds per wrk run)."""
    return (3, 1) if quick else (6, 4)


def run(ctx: Context) -> list[Row]:
    """Measure row 1 and return its rows (1a against Starlette, 1b against raw ASGI)."""
    anchors = ("bare Starlette, same uvicorn settings", "raw ASGI app, same uvicorn settings")
    if ctx.wrk is None:
        return [
            Row.skipped("1a", FIGURE, anchors[0], f">= {TARGET}", MISSING),
            Row.skipped("1b", FIGURE, anchors[1], "-", MISSING),
        ]
    wrk = ctx.wrk
    rounds, seconds = _settings(ctx.quick)
    say(f"row 1: node, bare Starlette and raw ASGI /health; wrk -t1 -c{CONNECTIONS}, {rounds} x")
    with contextlib.ExitStack() as stack:
        servers = [
            stack.enter_context(running("node", node_argv)),
            stack.enter_context(
                running("starlette", lambda port: uvicorn_argv("bench.targets:starlette_app", port))
            ),
            stack.enter_context(
                running("raw-asgi", lambda port: uvicorn_argv("bench.targets:raw_asgi_app", port))
            ),
        ]

        def load(server: Server, duration_s: int) -> float:
            url = f"{server.url}/health"
            return run_wrk(wrk, url, connections=CONNECTIONS, duration_s=duration_s).rps

        for server in servers:  # warm-up: first connections, lazy imports, CPU caches
            load(server, 1)
        samples: dict[str, list[float]] = {server.name: [] for server in servers}
        for round_index in range(rounds):
            shift = round_index % len(servers)
            for server in servers[shift:] + servers[:shift]:
                samples[server.name].append(load(server, seconds))
    node, starlette, raw = samples["node"], samples["starlette"], samples["raw-asgi"]
    vs_starlette = median([n / s for n, s in zip(node, starlette, strict=True)])
    vs_raw = median([n / r for n, r in zip(node, raw, strict=True)])
    data: dict[str, Any] = {
        "rounds": rounds,
        "secondsPerRun": seconds,
        "connections": CONNECTIONS,
        "rps": {name: [round(v, 1) for v in values] for name, values in samples.items()},
        "medianRps": {name: round(median(values), 1) for name, values in samples.items()},
    }
    node_text = f"{FIGURE}: {median(node):,.0f}"
    say(
        f"row 1: node {median(node):,.0f}, Starlette {median(starlette):,.0f}, "
        f"raw ASGI {median(raw):,.0f} req/s (medians)"
    )
    return [
        Row(
            "1a",
            node_text,
            f"{anchors[0]}: {median(starlette):,.0f}",
            vs_starlette,
            f">= {TARGET}",
            judge(vs_starlette >= TARGET),
            data=data,
        ),
        Row("1b", node_text, f"{anchors[1]}: {median(raw):,.0f}", vs_raw, "-", "info", data=data),
    ]
