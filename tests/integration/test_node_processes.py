"""Real node processes on 127.0.0.1: queueing, busy health, workers, SIGTERM, limits, metrics.

Timing is asserted in shape (ratios of the node's own service times, generous tolerances), never
as absolute wall-clock thresholds; waits are on conditions, bounded by deadlines.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.support.processes import NodeProcess, running_node

# fib(28): tens of ms here, a few hundred on a slow machine: well above per-request overhead.
CPU_LOAD = 28


def wait_for(condition: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> None:
    """Poll ``condition`` until true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.01)  # poll interval of a condition wait
    raise TimeoutError(f"timed out waiting for {what}")


def in_flight(node: NodeProcess) -> int:
    body: int = httpx.get(f"{node.url}/health", timeout=5).json()["inFlight"]
    return body


async def timed_get(client: httpx.AsyncClient, url: str) -> tuple[float, httpx.Response]:
    started = time.perf_counter()
    response = await client.get(url)
    return (time.perf_counter() - started) * 1000, response


async def test_burst_queues_on_one_worker() -> None:
    burst = 6
    with running_node(workers=1, load_factor=CPU_LOAD) as node:
        async with httpx.AsyncClient(timeout=60) as client:
            await client.get(f"{node.url}/work")  # warm up
            results = await asyncio.gather(
                *(timed_get(client, f"{node.url}/work") for _ in range(burst))
            )
    bodies = [response.json() for _, response in results]
    assert all(response.status_code == 200 for _, response in results)
    service = statistics.median(b["serviceMillis"] for b in bodies)
    latencies = sorted(latency for latency, _ in results)
    # One worker, one /work at a time: the last answer waited for the others' service times.
    assert latencies[-1] > (burst - 1) * service * 0.6
    assert latencies[0] < latencies[-1] / 2
    assert max(b["queueMillis"] for b in bodies) > (burst - 2) * service * 0.6
    assert len({b["pid"] for b in bodies}) == 1


async def test_workers_of_a_node_serve_a_burst_together_in_arrival_order() -> None:
    workers, burst, io_millis = 4, 8, 300
    with running_node(workers=workers, load_factor=0, io_millis=io_millis) as node:
        # One keep-alive connection per request, opened however the kernel spreads them: the
        # node still serves `workers` requests at once, never more, and queues the rest.
        limits = httpx.Limits(max_connections=burst)
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:
            bodies = [
                response.json()
                for _, response in await asyncio.gather(
                    *(timed_get(client, f"{node.url}/work") for _ in range(burst))
                )
            ]
    queued = sorted(b["queueMillis"] for b in bodies)
    # The first `workers` requests start at once; the others wait about one service time.
    assert all(q < io_millis * 0.5 for q in queued[:workers]), queued
    assert all(q > io_millis * 0.6 for q in queued[workers:]), queued
    assert all(b["serviceMillis"] > io_millis * 0.9 for b in bodies)


async def test_health_answers_while_the_worker_computes() -> None:
    with running_node(workers=1, load_factor=CPU_LOAD) as node:
        async with httpx.AsyncClient(timeout=60) as client:
            # A queue of CPU work keeps the only worker busy for a while.
            work = [
                asyncio.create_task(client.get(f"{node.url}/work", params={"loadFactor": 30}))
                for _ in range(4)
            ]
            busy_health = []
            while not all(task.done() for task in work):
                health = await client.get(f"{node.url}/health", timeout=5)
                assert health.status_code == 200
                if health.json()["inFlight"] > 0 and not all(task.done() for task in work):
                    busy_health.append(health.json())
                await asyncio.sleep(0.005)
            answers = [task.result() for task in work]
    assert all(answer.status_code == 200 for answer in answers)
    assert busy_health, "/health never answered while /work was in flight"
    assert max(h["inFlight"] for h in busy_health) >= 2


def test_several_workers_answer_from_different_pids_with_separate_stores() -> None:
    with running_node(workers=3, load_factor=5) as node:
        pids: set[int] = set()
        deadline = time.monotonic() + 20
        while len(pids) < 2 and time.monotonic() < deadline:
            # A new connection per request: the kernel hands each to whichever worker accepts.
            pids.add(httpx.get(f"{node.url}/health", timeout=5).json()["pid"])
        assert len(pids) >= 2, "every request landed on the same worker"

        stored_by = httpx.post(f"{node.url}/data", json={"key": "k", "value": "v"}).json()["pid"]
        seen: dict[int, int] = {}  # pid -> status of GET /data/k
        deadline = time.monotonic() + 20
        while (len(seen) < 2 or stored_by not in seen) and time.monotonic() < deadline:
            answer = httpx.get(f"{node.url}/data/k", timeout=5)
            seen[answer.json()["pid"]] = answer.status_code
            if answer.status_code == 404:
                assert "stores are per worker process" in answer.json()["detail"]
        assert seen.get(stored_by) == 200
        others = {pid: code for pid, code in seen.items() if pid != stored_by}
        assert others and set(others.values()) == {404}


def test_one_scrape_sees_every_worker() -> None:
    count = 12
    with running_node(workers=2, load_factor=5) as node:
        pids = set()
        for _ in range(count):
            pids.add(httpx.get(f"{node.url}/work", timeout=10).json()["pid"])
        text = httpx.get(f"{node.url}/metrics", timeout=5).text
    assert f'nodelab_http_requests_total{{path="/work",status="200"}} {count:.1f}' in text
    assert f"nodelab_work_service_seconds_count {count:.1f}" in text


@pytest.mark.parametrize("workers", [1, 2])
async def test_sigterm_lets_in_flight_work_finish(workers: int) -> None:
    with running_node(workers=workers, load_factor=5) as node:
        async with httpx.AsyncClient(timeout=30) as client:
            work = asyncio.create_task(client.get(f"{node.url}/work", params={"ioMillis": 1500}))
            await asyncio.to_thread(wait_for, lambda: in_flight(node) >= 1, 15, "/work in flight")
            # Kubernetes signals the container's main process only; it must stop its workers.
            node.proc.send_signal(signal.SIGTERM)
            answer = await work
        code = await asyncio.to_thread(node.proc.wait, 30)
    assert answer.status_code == 200
    assert answer.json()["serviceMillis"] >= 1500 * 0.9  # the loop clock may wake a hair early
    assert code == 0


def test_store_limits_over_http() -> None:
    limits = ["--max-keys", "2", "--max-value-bytes", "32", "--max-key-length", "8"]
    with running_node(workers=1, extra=limits) as node:
        url = f"{node.url}/data"
        assert httpx.post(url, json={"key": "a", "value": 1}).status_code == 201
        assert httpx.post(url, json={"key": "b", "value": [2]}).status_code == 201

        full = httpx.post(url, json={"key": "c", "value": 3})
        assert (full.status_code, full.json()["limit"]) == (507, "maxKeys")
        large = httpx.post(url, json={"key": "a", "value": "x" * 40})
        assert (large.status_code, large.json()["limit"]) == (413, "maxValueBytes")
        huge = httpx.post(url, content=b"x" * 1_000_000)
        assert (huge.status_code, huge.json()["limit"]) == (413, "maxBodyBytes")
        long_key = httpx.post(url, json={"key": "k" * 9, "value": 1})
        assert (long_key.status_code, long_key.json()["field"]) == (422, "key")
        broken = httpx.post(url, content=b'{"key": "a", "value": ')
        assert (broken.status_code, broken.json()["field"]) == (422, "body")
        missing = httpx.post(url, json={"key": "a"})
        assert (missing.status_code, missing.json()["field"]) == (422, "value")

        assert httpx.get(f"{url}/a").json()["value"] == 1
        assert httpx.get(f"{url}/b").json()["value"] == [2]
        assert httpx.get(f"{url}/c").status_code == 404


@pytest.mark.serial  # counts the node scratch directories in the shared temp dir
def test_metrics_directory_is_private_and_removed(tmp_path: Path) -> None:
    with running_node(workers=2, env={"TMPDIR": str(tmp_path)}) as node:
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith("nodelab-metrics-")]
        assert httpx.get(f"{node.url}/metrics").status_code == 200
        node.proc.send_signal(signal.SIGTERM)
        assert node.proc.wait(timeout=30) == 0
    assert not list(tmp_path.iterdir())


def test_bad_flag_exits_2_naming_it() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "node_service", "--workers", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NODELAB_PORT": "1"},
    )
    assert result.returncode == 2
    assert "--workers" in result.stderr
