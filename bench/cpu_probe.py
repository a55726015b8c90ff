"""Client CPU per request, start-up and per-run costs aside (row 2).

``python -m bench.cpu_probe {loadgen,raw} --url BASE --path /health --concurrency C
--requests 32,2000,8000`` runs one client in this process several times, one run per count,
and prints one JSON line: per run the requests that succeeded, the client's req/s, and the CPU
this process (and any child it waited for) spent in that run, from ``getrusage``.

Interpreter start-up and imports are not a per-request cost, and neither is what a client does
once per run (opening a session, building and writing the load report: tens of ms for the load
generator); the first run warms every lazy import, and the CPU per request is the difference
between two later runs over the difference of their requests, which cancels both. ``loadgen``
runs ``nodelab load``'s own ``main`` (``loadgen.cli.main``) with ``--json`` and ``--quiet``;
``raw`` runs ``bench.raw_client``'s loop.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import resource
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["main", "run_loadgen", "run_raw"]


def _cpu_s() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_loadgen(url: str, path: str, concurrency: int, requests: int) -> dict[str, Any]:
    """One ``nodelab load`` run (its CLI's ``main``); its report's successes and rps."""
    from loadgen import cli
    from loadgen.plan import LoadPlan

    plan = LoadPlan(
        targets=(url,), path=path, concurrency=concurrency, requests=requests, timeout_s=10.0
    )
    with tempfile.TemporaryDirectory(prefix="nodelab-bench-") as tmp:
        report_path = Path(tmp) / "report.json"
        code = cli.main(cli.build_argv(plan, json_path=str(report_path), quiet=True))
        if code != 0:
            raise RuntimeError(f"nodelab load exited with {code}")
        report = json.loads(report_path.read_text(encoding="utf-8"))
    return {"successes": int(report["successes"]), "rps": float(report["rps"])}


def run_raw(url: str, path: str, concurrency: int, requests: int) -> dict[str, Any]:
    """One run of the raw aiohttp loop (its ``main``); its successes and rps."""
    from bench import raw_client

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        argv = ["--url", url + path, "--concurrency", str(concurrency)]
        code = raw_client.main([*argv, "--requests", str(requests)])
    if code != 0:
        raise RuntimeError(f"raw aiohttp loop exited with {code}")
    result = json.loads(out.getvalue().strip().splitlines()[-1])
    return {"successes": int(result["successes"]), "rps": float(result["rps"])}


CLIENTS = {"loadgen": run_loadgen, "raw": run_raw}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the client once per count; print the runs as one JSON line."""
    parser = argparse.ArgumentParser(prog="python -m bench.cpu_probe", description=__doc__)
    parser.add_argument("client", choices=sorted(CLIENTS))
    parser.add_argument("--url", required=True, help="base URL (http://127.0.0.1:PORT)")
    parser.add_argument("--path", default="/health")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--requests", required=True, help="comma-separated counts, one per run")
    args = parser.parse_args(argv)
    if not args.url.startswith("http://127.0.0.1:"):
        parser.error("the bench only loads 127.0.0.1")
    client = CLIENTS[args.client]
    runs = []
    for count in (int(part) for part in args.requests.split(",")):
        before = _cpu_s()
        result = client(args.url, args.path, args.concurrency, count)
        runs.append({"requests": count, "cpuSeconds": _cpu_s() - before, **result})
    print(json.dumps({"client": args.client, "runs": runs}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
