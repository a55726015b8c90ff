"""Row 5: the real kopf operator against kmock's emulated API server, timed and counted.

The integration tests' harness, ``tests.support.emulated_api``: the emulator serves on this
process's event loop, the operator runs in a task beside it, and the bench plays the kubelet by
reporting each Deployment's rollout as soon as it appears. Nothing leaves the process but
loopback HTTP to the emulator.

* 5a: one NodeLab created -> its Deployment, both Services and the load account exist;
* 5b: the rollout reported ready -> the load Job exists (target 1 s: the watches, not the
  30 s safety-net timer, move the lab);
* 5c: 100 NodeLabs created at once -> every one has its children, then every one its Job;
* 5d: API requests per reconcile: the change handler's calls for one lab, and a steady-state
  reconcile tick's, counted by the operator's own client.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import kmock
from nodelab.kube.settings import OperatorSettings

from bench.common import Context, say
from bench.table import Row, judge
from tests.support.emulated_api import ApiServer, Emulator, emulating, eventually, running_operator
from tests.support.errors import SupportError

__all__ = ["run"]

CREATE_TARGET_S = 1.0
JOB_TARGET_S = 1.0
# Steady-state calls are counted over this window (not a number of timer ticks: the shipped
# timer is a 30 s safety net, and the watches wake the step when a child changes).
COUNT_WINDOW_S = 10.0
FLEET_TARGET_S = 30.0
FULL_FLEET = 100
_CHILDREN = (
    ("apps/v1/deployments", "{lab}-node"),
    ("v1/services", "{lab}-node"),
    ("v1/services", "{lab}-node-headless"),
    ("v1/serviceaccounts", "{lab}-loadgen"),
    ("rbac.authorization.k8s.io/v1/rolebindings", "{lab}-loadgen"),
)
_JOB = ("batch/v1/jobs", "{lab}-load-g1")


class _ApiServer(ApiServer):
    request_log_limit = 10


def run(ctx: Context) -> list[Row]:
    """Measure row 5 in a fresh event loop and return its rows (5a-5d)."""
    fleet = 25 if ctx.quick else FULL_FLEET
    with tempfile.TemporaryDirectory(prefix="nodelab-bench-") as tmp:
        try:
            return asyncio.run(_measure(Path(tmp), fleet))
        except SupportError as exc:  # a wait that ran out, an operator that did not start
            return [Row.failed("5", "operator row", "-", "-", str(exc))]


def _lab(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "lab.nodelab.dev/v1alpha1",
        "kind": "NodeLab",
        "metadata": {"name": name},
        "spec": {"node": {"replicas": 1, "workers": 1}, "load": {"concurrency": 5}},
    }


def _all_have(emulator: Emulator, labs: list[str], wanted: tuple[tuple[str, str], ...]) -> bool:
    live = emulator.live()
    return all((kind, name.format(lab=lab)) in live for lab in labs for kind, name in wanted)


async def _measure(tmp: Path, fleet: int) -> list[Row]:
    settings = OperatorSettings()  # as shipped: the reconcile timer's interval included
    async with _ApiServer() as server, kmock.Server(server):
        with emulating(server, tmp) as emulator:
            async with running_operator(emulator, settings) as cluster:
                return await _rows(emulator, cluster, fleet, settings.reconcile_interval)


async def _until(emulator: Emulator, labs: list[str], wanted: tuple[tuple[str, str], ...]) -> float:
    """Seconds until every lab in ``labs`` has every object in ``wanted``."""
    started = time.perf_counter()
    what = f"{len(labs)} lab(s) with {[kind for kind, _ in wanted]}"
    await eventually(lambda: _all_have(emulator, labs, wanted), what, timeout=120, interval=0.02)
    return time.perf_counter() - started


async def _rows(emulator: Emulator, cluster: Any, fleet: int, interval: float) -> list[Row]:
    say(f"row 5: the kopf operator against the emulated API server ({fleet} labs at once)")
    calls_before = cluster.calls
    await emulator.create("NodeLab", _lab("bench-one"))
    create_s = await _until(emulator, ["bench-one"], _CHILDREN)
    apply_calls = cluster.calls - calls_before
    await emulator.mark_deployment_ready("bench-one-node")
    job_s = await _until(emulator, ["bench-one"], (_JOB,))

    # Steady state: the lab's Job runs; nothing changes, so only the timer may call.
    calls_before = cluster.calls
    await asyncio.sleep(COUNT_WINDOW_S)  # a counting window, not a wait for a condition
    steady = cluster.calls - calls_before

    labs = [f"bench-{index:03d}" for index in range(fleet)]
    started = time.perf_counter()
    await asyncio.gather(*(emulator.create("NodeLab", _lab(name)) for name in labs))
    children_s = await _until(emulator, labs, _CHILDREN)
    await asyncio.gather(*(emulator.mark_deployment_ready(f"{name}-node") for name in labs))
    await _until(emulator, labs, (_JOB,))
    fleet_s = time.perf_counter() - started
    say(f"row 5: {fleet} labs -> Jobs in {fleet_s:.2f} s; {apply_calls} API calls per apply")
    judged = fleet == FULL_FLEET
    return [
        Row(
            "5a", f"NodeLab create -> Deployment, Services, load account: {create_s:.3f} s",
            "target 1 s", create_s / CREATE_TARGET_S, f"< {CREATE_TARGET_S:g} s",
            judge(create_s < CREATE_TARGET_S), data={"seconds": create_s},
        ),
        Row(
            "5b", f"rollout ready -> load Job: {job_s:.3f} s",
            "target 1 s", job_s / JOB_TARGET_S, f"< {JOB_TARGET_S:g} s",
            judge(job_s < JOB_TARGET_S), data={"seconds": job_s, "intervalSeconds": interval},
        ),
        Row(
            "5c", f"{fleet} NodeLabs at once -> children {children_s:.2f} s, Jobs {fleet_s:.2f} s",
            "target 30 s", fleet_s / FLEET_TARGET_S, f"< {FLEET_TARGET_S:g} s",
            judge(fleet_s < FLEET_TARGET_S) if judged else "info",
            note="" if judged else f"quick: {fleet} labs; 100 in the full run",
            data={"labs": fleet, "childrenSeconds": children_s, "jobsSeconds": fleet_s},
        ),
        Row(
            "5d", f"API calls: {apply_calls} per apply, {steady} in {COUNT_WINDOW_S:g} s steady",
            "the operator's own client (kopf's watches, status patches, Events not counted)",
            None, "-", "info",
            data={"callsPerApply": apply_calls, "steadyCalls": steady,
                  "windowSeconds": COUNT_WINDOW_S},
        ),
    ]  # fmt: skip
