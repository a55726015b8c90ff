"""A real slow node of two workers on 127.0.0.1: its flags reach every worker, and one scrape
shows how slow it is and the CPU work it did. Timing only in shape (an answer took at least the
node's extra wait); the CPU work by its deterministic count of fib calls."""

from __future__ import annotations

import httpx

from node_service.settings import node_argv
from node_service.work import fib_calls
from tests.support.processes import running_node

LOAD_FACTOR = 12
EXTRA_MILLIS = 100
FACTOR = 2.0
REQUESTS = 8


def test_a_slow_node_says_so_from_every_worker() -> None:
    slow = node_argv(service_factor=FACTOR, extra_millis=EXTRA_MILLIS)
    with running_node(workers=2, load_factor=LOAD_FACTOR, extra=slow) as node:
        bodies = [httpx.get(f"{node.url}/work", timeout=30).json() for _ in range(REQUESTS)]
        health = httpx.get(f"{node.url}/health", timeout=5).json()
        text = httpx.get(f"{node.url}/metrics", timeout=5).text
    for body in bodies:
        assert (body["serviceFactor"], body["extraMillis"]) == (FACTOR, EXTRA_MILLIS)
        assert body["serviceMillis"] >= EXTRA_MILLIS * 0.9  # the loop clock may wake a hair early
    assert (health["serviceFactor"], health["extraMillis"]) == (FACTOR, EXTRA_MILLIS)
    assert f"nodelab_node_service_factor {FACTOR}" in text
    assert f"nodelab_node_extra_millis {float(EXTRA_MILLIS)}" in text
    calls = REQUESTS * FACTOR * fib_calls(LOAD_FACTOR)
    assert f"nodelab_work_fib_calls_total {calls}" in text
