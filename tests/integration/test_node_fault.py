"""A real node of two workers on 127.0.0.1: a fault window posted to one worker reaches both.

Each request goes over a new connection, so the kernel hands them to either worker; a phase
ends once both workers (two pids) have answered, bounded by a deadline. Waits are on conditions;
timing is checked only in shape (a slowed answer took at least the added wait).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from node_service.settings import node_argv
from tests.support.processes import NodeProcess, running_node

TOKEN = "integration-fault-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
EXTRA_MILLIS = 300
WORKERS = 2


def post_fault(node: NodeProcess, **window: Any) -> dict[str, Any]:
    response = httpx.post(f"{node.url}/fault", json=window, headers=BEARER, timeout=10)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def every_worker(
    node: NodeProcess, check: Callable[[float, httpx.Response], None], timeout: float = 30.0
) -> int:
    """GET /work over new connections until every worker answered; ``check`` each answer.

    Returns how many answers were checked.
    """
    pids: set[int] = set()
    answers = 0
    deadline = time.monotonic() + timeout
    while len(pids) < WORKERS:
        assert time.monotonic() < deadline, f"only workers {pids} answered in {timeout}s"
        started = time.perf_counter()
        response = httpx.get(f"{node.url}/work", timeout=30)  # a new connection each time
        check((time.perf_counter() - started) * 1000, response)
        pids.add(response.json()["pid"])
        answers += 1
    return answers


def slowed(millis: float, response: httpx.Response) -> None:
    assert response.status_code == 200, response.text
    assert response.json()["faultMillis"] == EXTRA_MILLIS
    assert millis >= EXTRA_MILLIS * 0.9  # the loop clock may wake a hair early


def failed(_: float, response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.json()["fault"] == "fail"


def unharmed(_: float, response: httpx.Response) -> None:
    assert response.status_code == 200, response.text
    assert response.json()["faultMillis"] == 0


def counter(text: str, mode: str) -> float:
    found = re.search(rf'^nodelab_work_fault_affected_total{{mode="{mode}"}} (\S+)$', text, re.M)
    assert found, text
    return float(found.group(1))


def test_a_fault_window_reaches_every_worker(tmp_path: Path) -> None:
    token_file = tmp_path / "fault-token"
    token_file.write_text(TOKEN + "\n")
    extra = node_argv(fault_token_file=str(token_file))
    with running_node(workers=WORKERS, load_factor=0, extra=extra) as node:
        assert httpx.get(f"{node.url}/fault", timeout=10).status_code == 401
        every_worker(node, unharmed)

        # Long windows, each replaced by the next: their end is never raced by the checks.
        window = post_fault(node, durationSeconds=600, mode="slow", extraMillis=EXTRA_MILLIS)
        assert window["fault"]["state"] == "active"
        slow_answers = every_worker(node, slowed)

        post_fault(node, durationSeconds=600, mode="fail", status=503)
        fail_answers = every_worker(node, failed)

        # A short window replaces the long one; once it is over, no worker is harmed.
        post_fault(node, durationSeconds=0.2, mode="fail")
        deadline = time.monotonic() + 30
        while True:
            schedule = httpx.get(f"{node.url}/fault", headers=BEARER, timeout=10).json()
            if schedule["fault"]["state"] == "over":
                break
            assert time.monotonic() < deadline, schedule
            time.sleep(0.02)  # poll interval of a condition wait
        every_worker(node, unharmed)

        text = httpx.get(f"{node.url}/metrics", timeout=10).text
    # One scrape counts both workers' harmed answers; no /work ran in the short window.
    assert counter(text, "slow") == slow_answers
    assert counter(text, "fail") == fail_answers
