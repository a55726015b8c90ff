"""The reconcile step (handlers.reconcile_lab) and its gate (handlers.LabGate), against an
in-memory API: ``FakeApi`` replaces only ``Cluster.request``, so the real get, list, apply and
delete run; status patches honour the resourceVersion precondition as the API server does."""

from __future__ import annotations

import copy
import itertools
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import kopf
import pytest
from nodelab.kube import builders, cluster_api, handlers
from nodelab.kube.settings import OperatorSettings
from nodelab.model import conditions as lab_conditions
from nodelab.model import names, spec

PHASE_1 = Path(__file__).parents[2] / "manifests" / "phases" / "phase-1-overwhelm.yaml"
SETTINGS = OperatorSettings(report_grace_seconds=600)
LAB_PATH = "/apis/lab.nodelab.dev/v1alpha1/namespaces/default/nodelabs/scaling-lab"
JOBS_PATH = "/apis/batch/v1/namespaces/default/jobs"
DEPLOYMENT_PATH = "/apis/apps/v1/namespaces/default/deployments/scaling-lab-node"
COLLECTIONS = {"nodelabs", "deployments", "pods", "jobs", "services", "serviceaccounts"}
COLLECTIONS |= {"roles", "rolebindings"}
KEY = ("default", "scaling-lab")


class FakeApi(cluster_api.Cluster):
    """Objects by path; ``hooks[(method, path)]`` runs before a request is served."""

    def __init__(self) -> None:
        super().__init__(api_client=None)
        self.objects: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        self.bodies: list[tuple[str, str, Any]] = []
        self.hooks: dict[tuple[str, str], Callable[[], None]] = {}
        self._versions = itertools.count(100)
        self._lock = threading.Lock()

    def version(self) -> str:
        return str(next(self._versions))

    def request(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        hook = self.hooks.get((method, path))
        if hook is not None:
            hook()
        with self._lock:
            self.requests.append((method, path))
            self.bodies.append((method, path, copy.deepcopy(body)))
            return self._serve(method, path, body)

    def _serve(self, method: str, path: str, body: Mapping[str, Any] | None) -> dict[str, Any]:
        if method == "GET" and path in self.objects:
            return copy.deepcopy(self.objects[path])
        if method == "GET" and path.rsplit("/", 1)[-1] in COLLECTIONS:
            items = [o for p, o in self.objects.items() if p.rsplit("/", 1)[0] == path]
            return {"items": copy.deepcopy(items)}
        if method == "POST":
            assert body is not None
            key = f"{path}/{body['metadata']['name']}"
            if key in self.objects:
                raise cluster_api.ApiError(409, "AlreadyExists", key)
            obj = copy.deepcopy(dict(body))
            obj["metadata"].setdefault("uid", f"uid-{self.version()}")
            obj["metadata"]["resourceVersion"] = self.version()
            self.objects[key] = obj
            return copy.deepcopy(obj)
        target = path.removesuffix("/status")
        if target not in self.objects:
            raise cluster_api.ApiError(404, "NotFound", path)
        obj = self.objects[target]
        if method == "DELETE":
            del self.objects[target]
            return {}
        assert method == "PATCH" and body is not None
        wanted = (body.get("metadata") or {}).get("resourceVersion")
        if wanted is not None and wanted != obj["metadata"]["resourceVersion"]:
            raise cluster_api.ApiError(409, "Conflict", "the object has been modified")
        if path.endswith("/status"):
            obj.setdefault("status", {}).update(copy.deepcopy(body["status"]))
        else:
            for key, value in body.items():
                if key != "metadata":
                    obj[key] = copy.deepcopy(value)
        obj["metadata"]["resourceVersion"] = self.version()
        return copy.deepcopy(obj)

    # --- what the other controllers and the load Job would do -------------------------------

    def touch_lab(self, **status: Any) -> None:
        """Someone writes the lab (the load Job's report, a spec change): a new version."""
        lab = self.objects[LAB_PATH]
        lab.setdefault("status", {}).update(status)
        lab["metadata"]["resourceVersion"] = self.version()

    def count(self, method: str, path: str) -> int:
        return sum(1 for request in self.requests if request == (method, path))


@pytest.fixture
def posted(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """kopf's Event posting, recorded: (reason, message) of each Event the step posts."""
    events: list[tuple[str, str]] = []

    def record(*_: Any, reason: str, message: str = "", **__: Any) -> None:
        events.append((reason, message))

    for name in ("event", "info", "warn"):
        monkeypatch.setattr(kopf, name, record)
    return events


def _lab_object(generation: int = 1) -> dict[str, Any]:
    lab = spec.load_phase_file(PHASE_1)
    conditions: list[dict[str, Any]] = []
    for type_, state, reason in (
        (lab_conditions.SPEC_VALID, "True", "Valid"),
        (lab_conditions.AVAILABLE, "Unknown", "RolloutStarted"),
        (handlers.CHILDREN_APPLIED, "True", "Applied"),
    ):
        conditions = lab_conditions.set_condition(
            conditions, type_, state, reason, "", generation=generation, now="2025-01-01T00:00:00Z"
        )
    return {
        "apiVersion": "lab.nodelab.dev/v1alpha1",
        "kind": "NodeLab",
        "metadata": {
            "name": lab.name,
            "namespace": "default",
            "uid": "lab-uid",
            "generation": generation,
            "resourceVersion": "1",
            "labels": {},
        },
        "spec": {
            "node": {"replicas": lab.spec.node.replicas, "workers": lab.spec.node.workers},
            "load": {"concurrency": lab.spec.load.concurrency, "requests": 20},
        },
        "status": {
            "phase": "Deploying",
            "observedGeneration": generation,
            "conditions": conditions,
        },
    }


def _cluster(*, ready: bool) -> FakeApi:
    api = FakeApi()
    found = _lab_object()
    api.objects[LAB_PATH] = found
    lab = handlers.parse_lab("scaling-lab", "default", found["metadata"], found["spec"], SETTINGS)
    deployment = builders.build_deployment(lab, SETTINGS)
    kopf.adopt(deployment, owner=kopf.Body(found))
    deployment["metadata"].update(uid="deployment-uid", resourceVersion="2", generation=1)
    if ready:
        deployment["status"] = {
            "observedGeneration": 1, "replicas": 1, "updatedReplicas": 1,
            "readyReplicas": 1, "availableReplicas": 1,
        }  # fmt: skip
    api.objects[DEPLOYMENT_PATH] = deployment
    return api


def _status(api: FakeApi) -> dict[str, Any]:
    found: dict[str, Any] = api.objects[LAB_PATH]["status"]
    return found


def test_a_ready_rollout_gets_its_job_once_and_a_settled_lab_writes_nothing(
    posted: list[tuple[str, str]],
) -> None:
    api = _cluster(ready=True)
    handlers.reconcile_lab(api, SETTINGS, "default", "scaling-lab")
    job_path = f"{JOBS_PATH}/{names.load_job('scaling-lab', 1)}"
    assert job_path in api.objects
    assert _status(api)["phase"] == "Ready"
    # The status write names the version read: a lab changed since is refused, not overwritten.
    (patch,) = [b for m, p, b in api.bodies if m == "PATCH" and p == f"{LAB_PATH}/status"]
    assert patch["metadata"] == {"resourceVersion": "1"}
    assert "LoadJobCreated" in {reason for reason, _ in posted}

    for _ in range(3):
        handlers.reconcile_lab(api, SETTINGS, "default", "scaling-lab")
    assert api.count("POST", JOBS_PATH) == 1
    writes = api.count("PATCH", f"{LAB_PATH}/status")
    handlers.reconcile_lab(api, SETTINGS, "default", "scaling-lab")
    assert api.count("PATCH", f"{LAB_PATH}/status") == writes, "a quiet step writes nothing"


def test_a_lab_changed_under_the_step_is_read_and_decided_again(
    posted: list[tuple[str, str]],
) -> None:
    api = _cluster(ready=True)
    report = {
        "generation": 1, "requests": 20, "successes": 20, "rps": 0.4, "verdict": "OK",
        "finishedAt": "2025-01-01T00:00:59Z", "sloP99Millis": 5000,
        "latencyMillis": {"p50": 9.0, "p99": 14.0},
    }  # fmt: skip
    # The load Job's report lands between the step's read and its status write.
    api.hooks[("PATCH", f"{LAB_PATH}/status")] = lambda: (
        api.hooks.pop(("PATCH", f"{LAB_PATH}/status")),
        api.touch_lab(lastRun=report),
    )
    handlers.reconcile_lab(api, SETTINGS, "default", "scaling-lab")
    assert api.count("GET", LAB_PATH) == 2, "read again after the 409"
    final = _status(api)
    assert final["phase"] == "Completed"
    assert final["lastRun"] == report, "the report is the Job's: never overwritten"
    assert [row["generation"] for row in final["history"]] == [1]


def test_a_step_never_writes_for_a_generation_that_moved_on(
    posted: list[tuple[str, str]],
) -> None:
    api = _cluster(ready=False)

    def spec_change() -> None:
        api.hooks.pop(("PATCH", f"{LAB_PATH}/status"))
        api.objects[LAB_PATH]["metadata"]["generation"] = 2
        api.touch_lab()

    api.hooks[("PATCH", f"{LAB_PATH}/status")] = spec_change
    handlers.reconcile_lab(api, SETTINGS, "default", "scaling-lab")
    # The first write was refused (409); the lab read again is generation 2, not taken in yet.
    assert api.count("PATCH", f"{LAB_PATH}/status") == 1
    assert _status(api)["phase"] == "Deploying"
    assert posted == [], "no Event for a decision that was not written"


def test_a_lab_that_is_gone_ends_the_step_quietly(posted: list[tuple[str, str]]) -> None:
    api = FakeApi()
    handlers.reconcile_lab(api, SETTINGS, "default", "scaling-lab")
    assert api.requests == [("GET", LAB_PATH)]


def test_a_lab_that_keeps_changing_is_retried_later(posted: list[tuple[str, str]]) -> None:
    api = _cluster(ready=False)
    api.hooks[("PATCH", f"{LAB_PATH}/status")] = api.touch_lab
    with pytest.raises(kopf.TemporaryError, match="changed under each of 3 reconcile steps"):
        handlers.reconcile_lab(api, SETTINGS, "default", "scaling-lab")


def test_a_tick_and_a_watch_event_that_race_create_one_job(
    posted: list[tuple[str, str]],
) -> None:
    # The timer's step is inside its look at the Jobs when a Deployment event asks for a step:
    # that request is folded into one more step after it, which sees the Job just created.
    api = _cluster(ready=True)
    gate = handlers.LabGate()
    looking, go_on = threading.Event(), threading.Event()

    def first_look() -> None:
        api.hooks.pop(("GET", JOBS_PATH))
        looking.set()
        assert go_on.wait(timeout=30)

    api.hooks[("GET", JOBS_PATH)] = first_look

    def step() -> None:
        handlers.reconcile_lab(api, SETTINGS, "default", "scaling-lab")

    outcomes: dict[str, bool] = {}
    tick = threading.Thread(target=lambda: outcomes.update(tick=gate.request(KEY, step)))
    tick.start()
    assert looking.wait(timeout=30)
    outcomes["event"] = gate.request(KEY, step)  # returns at once: folded into the tick's
    go_on.set()
    tick.join(timeout=30)
    assert outcomes == {"tick": True, "event": False}
    assert api.count("POST", JOBS_PATH) == 1
    assert api.count("GET", LAB_PATH) == 2, "the folded step ran after, reading afresh"


# --- the gate --------------------------------------------------------------------------------


class _Blocking:
    """A step that blocks its first call until released; counts calls and overlaps."""

    def __init__(self) -> None:
        self.calls = 0
        self.inside = 0
        self.most_inside = 0
        self.entered, self.release = threading.Event(), threading.Event()
        self._lock = threading.Lock()

    def __call__(self) -> None:
        with self._lock:
            self.calls += 1
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
            first = self.calls == 1
        if first:
            self.entered.set()
            assert self.release.wait(timeout=30)
        with self._lock:
            self.inside -= 1


@pytest.fixture
def threads() -> Iterator[list[threading.Thread]]:
    started: list[threading.Thread] = []
    yield started
    for thread in started:
        thread.join(timeout=30)


def _start(threads: list[threading.Thread], target: Callable[[], Any]) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    threads.append(thread)
    return thread


def test_requests_during_a_step_are_folded_into_one_more_step(
    threads: list[threading.Thread],
) -> None:
    gate, step = handlers.LabGate(), _Blocking()
    ran: list[bool] = []
    first = _start(threads, lambda: ran.append(gate.request(KEY, step)))
    assert step.entered.wait(timeout=30)
    # Three more requests while it runs (a tick, two pod events): none waits, none runs it.
    assert [gate.request(KEY, step) for _ in range(3)] == [False, False, False]
    step.release.set()
    first.join(timeout=30)
    assert ran == [True]
    assert step.calls == 2, "one more step for all three, not one each"
    assert step.most_inside == 1
    assert gate.request(KEY, step) is True and step.calls == 3, "the gate is free again"


def test_labs_do_not_wait_for_each_other(threads: list[threading.Thread]) -> None:
    gate, slow, other = handlers.LabGate(), _Blocking(), _Blocking()
    other.release.set()
    _start(threads, lambda: gate.request(KEY, slow))
    assert slow.entered.wait(timeout=30)
    assert gate.request(("default", "another-lab"), other) is True
    assert other.calls == 1
    slow.release.set()


def _until(probe: Callable[[], Any], what: str) -> Any:
    """Poll ``probe`` (a condition another thread makes true) for up to 30 s."""
    done = threading.Event()
    for _ in range(3000):
        value = probe()
        if value:
            return value
        done.wait(0.01)
    pytest.fail(f"timed out waiting for {what}")


def test_the_change_handler_waits_for_the_running_step(
    threads: list[threading.Thread], monkeypatch: pytest.MonkeyPatch
) -> None:
    gate, step = handlers.LabGate(), _Blocking()
    waiting = threading.Event()
    wait = gate._changed.wait

    def observed_wait(timeout: float | None = None) -> bool:
        waiting.set()
        return wait(timeout)

    monkeypatch.setattr(gate._changed, "wait", observed_wait)
    applied: list[int] = []

    def apply() -> None:
        with gate.exclusive(KEY):
            applied.append(step.inside)

    _start(threads, lambda: gate.request(KEY, step))
    assert step.entered.wait(timeout=30)
    applying = _start(threads, apply)
    _until(lambda: waiting.is_set() or applied, "the change handler to wait or apply")
    assert applied == [], "it applied while a step was under way"
    step.release.set()
    applying.join(timeout=30)
    assert applied == [0], "it applied once the step was over"


def test_a_failing_step_leaves_the_gate_free() -> None:
    gate = handlers.LabGate()

    def broken() -> None:
        raise kopf.TemporaryError("the API is down")

    with pytest.raises(kopf.TemporaryError):
        gate.request(KEY, broken)
    calls: list[int] = []
    assert gate.request(KEY, lambda: calls.append(1)) is True
    assert calls == [1]
    with gate.exclusive(KEY):
        pass
