"""The whole flow with real parts: kopf operator, node processes, load generator, report.

The emulated API server has no kubelet and no controllers, so the test plays them: it starts
the Deployment's container command as real node processes on 127.0.0.1 (one per replica),
reports the rollout, then runs the Job's container command as the real ``nodelab load``
process, whose ``--report-to`` patches the NodeLab's status through the emulated API. The only
rewrites are the addresses: the pods' ``0.0.0.0:8080`` becomes a free loopback port, and the
headless Service's DNS name becomes those ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from nodelab.kube.settings import OperatorSettings

from loadgen import cli as loadgen_cli
from tests.support.emulated_api import ApiServer, Emulator, eventually, running_operator
from tests.support.processes import NodeProcess, free_port, reap, wait_healthy

SETTINGS = OperatorSettings(reconcile_interval=0.3, report_grace_seconds=600)
REQUESTS = 12

pytestmark = [
    pytest.mark.kmock(cls=ApiServer),
    pytest.mark.timeout(180),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]


@pytest.fixture
def pods() -> Iterator[list[NodeProcess]]:
    """Node processes the test starts as the kubelet; reaped even when the test fails."""
    started: list[NodeProcess] = []
    yield started
    for node in started:
        reap(node.proc)


def _lab() -> dict[str, Any]:
    # Small work (fib(18) plus a 30 ms wait) on two single-worker replicas: seconds, not minutes.
    return {
        "apiVersion": "lab.nodelab.dev/v1alpha1",
        "kind": "NodeLab",
        "metadata": {"name": "flow-lab"},
        "spec": {
            "node": {"replicas": 2, "workers": 1, "work": {"loadFactor": 18, "ioMillis": 30}},
            "load": {"concurrency": 4, "requests": REQUESTS},
            "slo": {"p99Millis": 5000},
        },
    }


def _start_pod(container: dict[str, Any], pod_name: str) -> NodeProcess:
    """What the kubelet would run for one pod: the container's command and env, on loopback."""
    command = container["command"]
    assert command[:2] == ["nodelab", "node"], command
    port = free_port()
    argv = list(command[2:])
    argv[argv.index("--host") + 1] = "127.0.0.1"
    argv[argv.index("--port") + 1] = str(port)
    env = dict(os.environ)
    for var in container.get("env", []):
        field = var.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
        env[var["name"]] = pod_name if field == "metadata.name" else var["value"]
    args = [sys.executable, "-m", "node_service", *argv]
    proc = subprocess.Popen(args, start_new_session=True, env=env)
    return NodeProcess(proc=proc, port=port, node_id=pod_name, args=args)


async def test_operator_nodes_and_load_end_completed_with_measured_latencies(
    emulator: Emulator, pods: list[NodeProcess]
) -> None:
    async with running_operator(emulator, SETTINGS):
        await emulator.create("NodeLab", _lab())
        deployment = await eventually(
            lambda: emulator.get("apps/v1/deployments", "flow-lab-node"), "the node Deployment"
        )
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        for index in range(deployment["spec"]["replicas"]):
            pods.append(_start_pod(container, f"flow-lab-node-{index}"))
        for node in pods:
            await asyncio.to_thread(wait_healthy, node.url, node.proc)
        await emulator.mark_deployment_ready("flow-lab-node")

        job = await eventually(lambda: emulator.get("batch/v1/jobs", "flow-lab-load-g1"), "the Job")
        command = job["spec"]["template"]["spec"]["containers"][0]["command"]
        assert command[:2] == ["nodelab", "load"]
        plan, options = loadgen_cli.parse(command[2:])
        # An earlier run's report with an error kind this run will not have: it must not survive.
        stale = {"generation": 0, "errors": {"total": 7, "byKind": {"timeout": 7}}}
        await emulator.patch("NodeLab", "flow-lab", {"status": {"lastRun": stale}})
        assert options.report_to == "default/flow-lab"
        # The headless Service would resolve to the pods; here they are loopback ports.
        local_plan = dataclasses.replace(
            plan, targets=tuple(node.url for node in pods), expand_dns=False
        )
        argv = loadgen_cli.build_argv(local_plan, report_to=options.report_to, quiet=True)
        load = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "loadgen", *argv,
            env={**os.environ, "KUBECONFIG": str(emulator.kubeconfig)},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )  # fmt: skip
        try:
            _, err = await asyncio.wait_for(load.communicate(), timeout=120)
        finally:
            if load.returncode is None:  # timed out or cancelled: never leave it running
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(load.pid, signal.SIGKILL)
                await load.wait()
        assert load.returncode == 0, err.decode()
        await emulator.finish_job("flow-lab-load-g1")

        status = await eventually(
            lambda: (s := emulator.lab_status("flow-lab")).get("phase") == "Completed" and s,
            "the NodeLab Completed",
        )
    last = status["lastRun"]
    assert last["generation"] == 1 and last["requests"] == REQUESTS
    assert last["successes"] == REQUESTS and last["errors"] == {"total": 0, "byKind": {}}
    # Real latencies: each request waited at least its 30 ms of simulated I/O.
    assert 30 <= last["latencyMillis"]["p50"] <= last["latencyMillis"]["p99"]
    assert sorted(row["node"] for row in last["perNode"]) == ["flow-lab-node-0", "flow-lab-node-1"]
    assert sum(row["requests"] for row in last["perNode"]) == REQUESTS
    (row,) = status["history"]
    assert (row["replicas"], row["workers"], row["concurrency"]) == (2, 1, 4)
    assert row["p99Millis"] == last["latencyMillis"]["p99"]
    assert row["verdict"] == last["verdict"] == "OK"
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["LoadComplete"]["status"] == "True"
    assert conditions["SLOMet"]["status"] == "True"
