"""Phases 5 and 6 through the real kopf operator against kmock's emulated API; the test plays
the kubelet, the controllers and the load Job (its report is a storm run's, with a timeline).

Phase 5 (``phase-5c-defended.yaml``): the fault token Secret comes first, node pods and the load
pod mount it, the nodes get the protection flags, the Job the retry policy and the trigger, and
the run ends Completed with its timeline in ``status.lastRun``. Phase 6
(``phase-6b-least-outstanding.yaml``): a slow pool's Deployment beside the fast one, the
rollout waits for both, the Job balances by the spec's strategy, and a spec without the slow
pool deletes its Deployment.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from nodelab.kube import builders
from nodelab.kube.settings import OperatorSettings

from loadgen import cli as loadgen_cli
from tests.support.emulated_api import NODELABS, ApiServer, Emulator, eventually, running_operator

PHASES = Path(__file__).parents[2] / "manifests" / "phases"
SETTINGS = OperatorSettings(reconcile_interval=0.3, report_grace_seconds=600)
DEPLOYMENTS, JOBS, SECRETS = "apps/v1/deployments", "batch/v1/jobs", "v1/secrets"

pytestmark = [
    pytest.mark.kmock(cls=ApiServer),
    pytest.mark.timeout(120),
    # kopf closes its watch streams while the emulator's server is shutting down.
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]


def _phase(name: str) -> dict[str, Any]:
    body: dict[str, Any] = yaml.safe_load((PHASES / name).read_text(encoding="utf-8"))
    return copy.deepcopy(body)


def _pod(obj: dict[str, Any]) -> dict[str, Any]:
    pod: dict[str, Any] = obj["spec"]["template"]["spec"]
    return pod


def _command(obj: dict[str, Any]) -> list[str]:
    command: list[str] = _pod(obj)["containers"][0]["command"]
    return command


def _mounts_the_token(obj: dict[str, Any], secret: str) -> None:
    volumes = {v["name"]: v for v in _pod(obj)["volumes"]}
    assert volumes["fault-token"]["secret"]["secretName"] == secret
    mounts = {m["name"]: m for m in _pod(obj)["containers"][0]["volumeMounts"]}
    assert mounts["fault-token"]["readOnly"] is True
    command = _command(obj)
    assert command[command.index("--fault-token-file") + 1] == builders.FAULT_TOKEN_FILE


def _storm_report(generation: int) -> dict[str, Any]:
    """What ``nodelab load`` reports for a storm run that recovered (loadgen.report)."""
    points = [
        {"second": s, "offered": 64, "attempts": 64 + (30 if 4 <= s < 7 else 0),
         "successes": 40 if 4 <= s < 7 else 64, "errors": {}}
        for s in range(20)
    ]  # fmt: skip
    return {
        "schemaVersion": 1, "generation": generation, "finishedAt": "2025-01-01T00:00:59Z",
        "mode": "open", "rate": 64, "concurrency": 8, "requests": 1280, "successes": 1208,
        "rps": 60.4, "errors": {"total": 72, "byKind": {"http_503": 72}}, "sloP99Millis": 1000,
        "verdict": "Errors", "latencyMillis": {"p50": 101.0, "p99": 420.0},
        "calibration": {"requests": 5, "serviceMillis": 100.0, "latencyMillis": 101.0},
        "breakingConcurrency": None,
        "timeline": {"secondsPerPoint": 1, "points": points},
        "storm": {
            "recovered": True, "verdict": "Recovered",
            "triggerWindow": {"startSeconds": 4, "endSeconds": 7},
            "amplification": 1.07, "triggerAmplification": 1.47, "recoverySeconds": 1,
            "offered": 1280, "attempts": 1370, "retries": 90,
        },
        "trigger": {"startSeconds": 4, "endSeconds": 7, "durationSeconds": 3, "mode": "slow",
                    "extraMillis": 300},
    }  # fmt: skip


async def test_a_storm_lab_gets_its_token_and_ends_completed_with_its_timeline(
    emulator: Emulator,
) -> None:
    async with running_operator(emulator, SETTINGS):
        await emulator.create("NodeLab", _phase("phase-5c-defended.yaml"))
        secret = await eventually(
            lambda: emulator.get(SECRETS, "storm-lab-fault-token"), "the fault token Secret"
        )
        token = builders.fault_token_of(secret)
        assert token and len(token) >= 32
        (owner,) = secret["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["controller"]) == ("NodeLab", "storm-lab", True)
        deployment = await eventually(
            lambda: emulator.get(DEPLOYMENTS, "storm-lab-node"), "the node Deployment"
        )
        _mounts_the_token(deployment, "storm-lab-fault-token")
        command = _command(deployment)
        assert command[command.index("--max-queue") + 1] == "1"
        assert command[command.index("--retry-after-seconds") + 1] == "1"

        await emulator.mark_deployment_ready("storm-lab-node")
        job = await eventually(lambda: emulator.get(JOBS, "storm-lab-load-g1"), "the load Job")
        _mounts_the_token(job, "storm-lab-fault-token")
        plan, options = loadgen_cli.parse(_command(job)[2:])
        assert plan.retry is not None and plan.retry.kind == "backoff"
        assert plan.retry.budget_ratio == 0.1 and plan.retry.breaker is not None
        assert plan.trigger is not None and (plan.trigger.mode, plan.trigger.extra_millis) == (
            "slow",
            300,
        )
        assert (plan.rate, plan.duration_s) == (64, 20)
        assert options.report_to == "default/storm-lab"

        await emulator.patch("Job", "storm-lab-load-g1", {"status": {"active": 1, "ready": 1}})
        await eventually(
            lambda: emulator.lab_status("storm-lab").get("phase") == "Loading", "Loading"
        )
        await emulator.patch("NodeLab", "storm-lab", {"status": {"lastRun": _storm_report(1)}})
        await emulator.finish_job("storm-lab-load-g1")
        status = await eventually(
            lambda: (
                emulator.lab_status("storm-lab").get("phase") == "Completed"
                and emulator.lab_status("storm-lab")
            ),
            "Completed",
        )
        # The timeline is the Job's, and stays as it wrote it.
        assert status["lastRun"]["timeline"] == _storm_report(1)["timeline"]
        assert status["lastRun"]["storm"]["amplification"] == 1.07
        assert [row["generation"] for row in status["history"]] == [1]
        assert emulator.condition("LoadComplete", "storm-lab")["status"] == "True"
        # Steps after the first never rotate the token.
        stored = builders.fault_token_of(emulator.get(SECRETS, "storm-lab-fault-token"))
        assert stored == token


async def test_a_slow_pool_rolls_out_beside_the_fast_one_and_goes_with_its_spec(
    emulator: Emulator,
) -> None:
    async with running_operator(emulator, SETTINGS):
        await emulator.create("NodeLab", _phase("phase-6b-least-outstanding.yaml"))
        fast = await eventually(
            lambda: emulator.get(DEPLOYMENTS, "balancing-lab-node"), "the node Deployment"
        )
        slow = await eventually(
            lambda: emulator.get(DEPLOYMENTS, "balancing-lab-node-slow"), "the slow Deployment"
        )
        assert (fast["spec"]["replicas"], slow["spec"]["replicas"]) == (2, 1)
        assert _command(slow)[-2:] == ["--service-factor", "5.0"]
        assert "--service-factor" not in _command(fast)
        assert emulator.get(SECRETS, "balancing-lab-fault-token") is None, "no trigger"

        # The fast pool alone is not the fleet: no load yet.
        await emulator.mark_deployment_ready("balancing-lab-node")
        available = await eventually(
            lambda: (
                "slow pool" in emulator.condition("Available", "balancing-lab").get("message", "")
                and emulator.condition("Available", "balancing-lab")
            ),
            "Available waiting for the slow pool",
        )
        assert available["reason"] == "RollingOut"
        assert emulator.names(JOBS) == []
        await emulator.mark_deployment_ready("balancing-lab-node-slow")
        job = await eventually(lambda: emulator.get(JOBS, "balancing-lab-load-g1"), "the load Job")
        plan, _options = loadgen_cli.parse(_command(job)[2:])
        assert plan.balancing == "least-outstanding"
        assert plan.targets == ("http://balancing-lab-node-headless.default.svc:8080",)

        # Phase 6 without the slow pool: its Deployment goes, the fast one has every pod.
        await emulator.patch("NodeLab", "balancing-lab", {"spec": {"node": {"slowPool": None}}})
        await eventually(
            lambda: emulator.get(DEPLOYMENTS, "balancing-lab-node-slow") is None,
            "the slow Deployment deleted",
        )
        fast = await eventually(
            lambda: (
                (d := emulator.get(DEPLOYMENTS, "balancing-lab-node"))
                and d["spec"]["replicas"] == 3
                and d
            ),
            "the fast Deployment with every pod",
        )
        assert fast["metadata"]["labels"]["lab.nodelab.dev/generation"] == "2"
        assert emulator.get(NODELABS, "balancing-lab") is not None
