"""Client CPU per request of the storm path against the plain open loop, start-up aside (row 8).

``python -m bench.storm_probe {plain,storm,defended} --url BASE --path /work --rate R
--requests 200,200,3000`` runs one client in this process once per count and prints one JSON
line: per run the requests that succeeded, the attempts sent, the retries granted and the CPU
this process spent in that run, from ``getrusage``. As in ``bench.cpu_probe``, the first run
warms every lazy import and the CPU per request is the difference between two later runs over
the difference of their requests, so start-up and per-run work cancel.

- ``plain``: the load generator's own open loop (``loadgen.session.run_level``), the engine
  every non-storm plan runs.
- ``storm``: ``loadgen.storm.run_storm_sync`` with a policy whose retrying never happens
  against a healthy node (``immediate``, 2 attempts, no budget, no breaker): every request
  takes the storm path's one-attempt road, as ``kind: none`` would if it took the storm path
  (a plan without retries or trigger does not: ``LoadPlan.storm``).
- ``defended``: the same with a retry budget and a circuit breaker, which see every outcome.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
from collections.abc import Sequence
from typing import Any

from loadgen.plan import LoadPlan
from loadgen.resilience import RetryPolicy
from tests.support.retry_policies import defended_policy

__all__ = ["CLIENTS", "POLICIES", "main", "run_plain", "run_storm"]

TIMEOUT_S = 2.0
PLAIN_CONCURRENCY = 32

# The storm path's policies; against a node that always answers 200 neither ever retries.
POLICIES: dict[str, RetryPolicy] = {
    "storm": RetryPolicy(kind="immediate", max_attempts=2),
    "defended": defended_policy(),
}


def _cpu_s() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def _plan(url: str, path: str, rate: float, requests: int, retry: RetryPolicy | None) -> LoadPlan:
    return LoadPlan(
        targets=(url,),
        path=path,
        concurrency=PLAIN_CONCURRENCY,
        requests=requests,
        rate=rate,
        timeout_s=TIMEOUT_S,
        retry=retry,
    )


def run_plain(url: str, path: str, rate: float, requests: int) -> dict[str, Any]:
    """One open-loop run through the plain engine; its successes."""
    from loadgen import session

    plan = _plan(url, path, rate, requests, None)
    result = session.run_sync(lambda: session.run_level(plan))
    return {"successes": result.stats.successes, "attempts": requests, "retries": 0}


def run_storm(
    url: str, path: str, rate: float, requests: int, policy: RetryPolicy
) -> dict[str, Any]:
    """One open-loop run through the storm path with ``policy``; successes, attempts, retries."""
    from loadgen import storm

    outcome = storm.run_storm_sync(_plan(url, path, rate, requests, policy))
    return {
        "successes": outcome.result.stats.successes,
        "attempts": outcome.attempts,
        "retries": outcome.retries,
    }


CLIENTS = ("plain", *POLICIES)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the client once per count; print the runs as one JSON line."""
    parser = argparse.ArgumentParser(prog="python -m bench.storm_probe", description=__doc__)
    parser.add_argument("client", choices=CLIENTS)
    parser.add_argument("--url", required=True, help="base URL (http://127.0.0.1:PORT)")
    parser.add_argument("--path", default="/work")
    parser.add_argument("--rate", type=float, required=True, help="arrivals per second")
    parser.add_argument("--requests", required=True, help="comma-separated counts, one per run")
    args = parser.parse_args(argv)
    if not args.url.startswith("http://127.0.0.1:"):
        parser.error("the bench only loads 127.0.0.1")
    runs = []
    for count in (int(part) for part in args.requests.split(",")):
        before = _cpu_s()
        if args.client == "plain":
            result = run_plain(args.url, args.path, args.rate, count)
        else:
            result = run_storm(args.url, args.path, args.rate, count, POLICIES[args.client])
        runs.append({"requests": count, "cpuSeconds": _cpu_s() - before, **result})
    print(json.dumps({"client": args.client, "runs": runs}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
