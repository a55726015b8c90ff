"""The raw aiohttp loop: the least CPU a Python aiohttp client can spend per request (row 2).

``python -m bench.raw_client --url URL --concurrency C --requests N`` runs C tasks, each doing
``session.get`` and reading the answer in a loop for its share of N, with nothing else: no
timing, no histogram, no parsing. It uses what the load generator uses (uvloop, one keep-alive
connection per task, no decompression or cookies), so the two differ only by what the load
generator records per request. Prints one JSON line: requests, successes, seconds, rps.

``--latency`` (row 3) also times each request, send to end of answer, and adds ``p50Millis``:
what aiohttp itself lets any client measure. Row 2 never passes it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence

import aiohttp
import uvloop

from bench.common import hdr_percentile

__all__ = ["main", "run"]


async def run(url: str, concurrency: int, requests: int, latency: bool = False) -> dict[str, float]:
    """Send ``requests`` GETs to ``url`` over ``concurrency`` tasks; count the 2xx answers
    (with ``latency``, also time each one and return their median as ``p50Millis``)."""
    shares = [
        requests // concurrency + (1 if i < requests % concurrency else 0)
        for i in range(concurrency)
    ]
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=0)
    ok = 0

    async def client(count: int) -> None:
        nonlocal ok
        for _ in range(count):
            async with session.get(url) as response:
                await response.read()
                ok += 200 <= response.status < 300

    async def timed_client(count: int) -> None:
        nonlocal ok
        for _ in range(count):
            sent = perf_counter()
            async with session.get(url) as response:
                await response.read()
                ok += 200 <= response.status < 300
            durations.append(perf_counter() - sent)

    perf_counter = time.perf_counter
    durations: list[float] = []
    async with aiohttp.ClientSession(
        connector=connector, auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar()
    ) as session:
        started = time.perf_counter()
        loop = timed_client if latency else client
        await asyncio.gather(*(loop(count) for count in shares))
        seconds = time.perf_counter() - started
    result = {"requests": requests, "successes": ok, "seconds": seconds, "rps": ok / seconds}
    if latency:
        result["p50Millis"] = hdr_percentile(durations, 50.0) * 1000.0
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the flags, run the loop, print its JSON line; 0 when every request succeeded."""
    parser = argparse.ArgumentParser(prog="python -m bench.raw_client", description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--requests", type=int, required=True)
    parser.add_argument("--latency", action="store_true", help="time each request; add p50")
    args = parser.parse_args(argv)
    if not args.url.startswith("http://127.0.0.1:"):
        parser.error("the bench only loads 127.0.0.1")
    if args.concurrency < 1 or args.requests < args.concurrency:
        parser.error("need 1 <= concurrency <= requests")
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        result = runner.run(run(args.url, args.concurrency, args.requests, args.latency))
    print(json.dumps(result))
    return 0 if result["successes"] == args.requests else 1


if __name__ == "__main__":
    sys.exit(main())
