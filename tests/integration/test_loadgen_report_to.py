"""``--report-to``: the real CLI patches a NodeLab's status through a tiny fake API server.

The fake speaks just enough of the Kubernetes API for one merge patch on the status
subresource, and answers the first patch with a 409 to exercise the retry. (The operator's
tests run the full flow against kmock's emulated API server.)
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from aiohttp import web

from loadgen.cli import main
from loadgen.schema import REPORT_SCHEMA
from tests.support.processes import free_port

STATUS_PATH = "/apis/lab.nodelab.dev/v1alpha1/namespaces/labs/nodelabs/scaling-lab/status"


@dataclass
class FakeApi:
    url: str
    kubeconfig: Path
    failures: list[int] = field(default_factory=list)
    patches: list[tuple[str, Any]] = field(default_factory=list)


def _status(code: int, reason: str) -> web.Response:
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "reason": reason,
        "code": code,
    }
    return web.json_response(body, status=code)


@pytest.fixture
async def fake_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeApi]:
    port = free_port()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "fake", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
                "users": [{"name": "load-job", "user": {"token": "test-token"}}],
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "load-job"}}],
                "current-context": "fake",
            }
        )
    )
    api = FakeApi(url=f"http://127.0.0.1:{port}", kubeconfig=kubeconfig)

    async def patch_status(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != "Bearer test-token":
            return _status(401, "Unauthorized")
        if request.match_info["name"] != "scaling-lab":
            return _status(404, "NotFound")
        body = await request.json()
        api.patches.append((request.content_type, body))
        if api.failures:
            code = api.failures.pop(0)
            return _status(code, "Conflict" if code == 409 else "ServiceUnavailable")
        return web.json_response({"apiVersion": "lab.nodelab.dev/v1alpha1", "status": {}})

    async def work(request: web.Request) -> web.Response:
        return web.json_response({"node": "fake", "serviceMillis": 0.1})

    app = web.Application()
    app.router.add_patch(
        "/apis/lab.nodelab.dev/v1alpha1/namespaces/{ns}/nodelabs/{name}/status", patch_status
    )
    app.router.add_get("/work", work)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    try:
        yield api
    finally:
        await runner.cleanup()


async def test_report_lands_in_status_last_run_after_a_conflict(fake_api: FakeApi) -> None:
    fake_api.failures = [409]
    argv = [
        "--target", fake_api.url, "--requests", "5", "-c", "1", "--generation", "2",
        "--quiet", "--report-to", "labs/scaling-lab",
    ]  # fmt: skip
    # The CLI runs its own event loop; the fake API keeps serving on this one.
    assert await asyncio.to_thread(main, argv) == 0
    assert len(fake_api.patches) == 2  # the conflict, then the retry
    content_type, body = fake_api.patches[-1]
    assert content_type == "application/json-patch+json"
    (operation,) = body
    assert (operation["op"], operation["path"]) == ("add", "/status/lastRun")
    report = operation["value"]
    jsonschema.validate(report, REPORT_SCHEMA)
    assert (report["successes"], report["generation"]) == (5, 2)
    assert report["perNode"][0]["node"] == "fake"


async def test_a_missing_nodelab_fails_the_command(
    fake_api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--target", fake_api.url, "--requests", "2", "--quiet", "--report-to", "labs/gone"]
    assert await asyncio.to_thread(main, argv) == 1
    assert "--report-to" in capsys.readouterr().err
    assert fake_api.patches == []
