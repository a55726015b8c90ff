"""The node's ASGI app in process, through ``httpx.ASGITransport``: shapes, errors, metrics."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from urllib.parse import quote

import httpx
import pytest

from node_service.app import create_app
from node_service.front import Front
from node_service.settings import NodeSettings, StoreLimits
from node_service.store import ENTRY_OVERHEAD_BYTES

# Three small entries fit; two of 1 + 62 bytes fit, three do not.
LIMITS = StoreLimits(
    max_key_length=16,
    max_value_bytes=64,
    max_keys=3,
    max_store_bytes=2 * (63 + ENTRY_OVERHEAD_BYTES) + 100,
)


@pytest.fixture
def app() -> Front:
    settings = NodeSettings(node_id="n1", workers=1, load_factor=15, limits=LIMITS)
    front = create_app(settings)
    assert isinstance(front, Front)
    return front


@pytest.fixture
async def client(app: Front) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
        yield client


async def test_health_shape(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {
        "status", "node", "pid", "workers", "serviceFactor", "extraMillis", "uptimeSeconds",
        "inFlight",
    }  # fmt: skip
    assert (body["status"], body["node"], body["pid"], body["workers"]) == (
        "ok",
        "n1",
        os.getpid(),
        1,
    )
    assert body["uptimeSeconds"] >= 0 and body["inFlight"] == 0


async def test_health_escapes_the_node_id() -> None:
    app = create_app(NodeSettings(node_id='we"ird\\id'))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://n") as c:
        assert (await c.get("/health")).json()["node"] == 'we"ird\\id'


async def test_health_refuses_other_methods(client: httpx.AsyncClient) -> None:
    response = await client.post("/health")
    assert (response.status_code, response.headers["allow"]) == (405, "GET, HEAD")


async def test_data_round_trip(client: httpx.AsyncClient) -> None:
    response = await client.post("/data", json={"key": "user_123", "value": "Alice"})
    assert response.status_code == 201
    stored = response.json()
    assert (stored["key"], stored["node"], stored["pid"]) == ("user_123", "n1", os.getpid())
    assert stored["replaced"] is False
    response = await client.get("/data/user_123")
    assert response.status_code == 200
    assert response.json()["value"] == "Alice"
    assert response.json()["node"] == "n1"


async def test_values_come_back_as_the_json_they_were(client: httpx.AsyncClient) -> None:
    body = '{"key": "k€y", "value": {"b": [1, 2.5, null, true], "a": "é\\n\\u0001"}}'
    assert (await client.post("/data", content=body.encode())).status_code == 201
    response = await client.get("/data/k€y")
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "key": "k€y",
        "value": {"b": [1, 2.5, None, True], "a": "é\n\u0001"},
        "node": "n1",
        "pid": os.getpid(),
        "workers": 1,
    }


@pytest.mark.parametrize("number", [b"1e400", b"-1e400", b"NaN", b"Infinity"])
async def test_numbers_json_cannot_carry_are_422(client: httpx.AsyncClient, number: bytes) -> None:
    response = await client.post("/data", content=b'{"key": "k", "value": [%s]}' % number)
    assert (response.status_code, response.json()["field"]) == (422, "value")
    assert (await client.get("/data/k")).status_code == 404


async def test_data_accepts_json_whatever_the_content_type(client: httpx.AsyncClient) -> None:
    headers = {"content-type": "application/x-www-form-urlencoded"}
    body = b'{"key": "k", "value": [1, 2]}'
    assert (await client.post("/data", content=body, headers=headers)).status_code == 201
    assert (await client.get("/data/k")).json()["value"] == [1, 2]


async def test_absent_key_is_404_json(client: httpx.AsyncClient) -> None:
    response = await client.get("/data/nobody")
    assert response.status_code == 404
    body = response.json()
    assert body["error"] == "not found" and body["key"] == "nobody"
    assert "per node" in body["detail"]


async def test_404_explains_per_worker_stores() -> None:
    app = create_app(NodeSettings(workers=4))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://n") as c:
        detail = (await c.get("/data/x")).json()["detail"]
    assert "this worker has no such key; stores are per worker process" in detail


@pytest.mark.parametrize(
    ("content", "field"),
    [
        (b'{"key": "k"', "body"),  # malformed JSON
        (b"[1, 2]", "body"),  # not an object
        (b'{"value": 1}', "key"),
        (b'{"key": "k"}', "value"),
        (b'{"key": 5, "value": 1}', "key"),
        (b"", "body"),
    ],
)
async def test_bad_bodies_are_422_naming_the_field(
    client: httpx.AsyncClient, content: bytes, field: str
) -> None:
    response = await client.post(
        "/data", content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    body = response.json()
    assert body["field"] == field
    assert body["error"] and body["node"] == "n1"


async def test_bad_key_is_422_naming_the_limit(client: httpx.AsyncClient) -> None:
    response = await client.post("/data", json={"key": "x" * 17, "value": 1})
    assert response.status_code == 422
    assert (response.json()["field"], response.json()["limit"]) == ("key", "maxKeyLength")


async def test_value_too_large_is_413(client: httpx.AsyncClient) -> None:
    response = await client.post("/data", json={"key": "k", "value": "x" * 100})
    assert response.status_code == 413
    body = response.json()
    assert (body["limit"], body["max"], body["field"]) == ("maxValueBytes", 64, "value")


async def test_huge_body_is_413_without_being_parsed(client: httpx.AsyncClient) -> None:
    response = await client.post("/data", content=b"x" * (LIMITS.max_body_bytes + 1))
    assert response.status_code == 413
    assert response.json()["limit"] == "maxBodyBytes"


async def test_store_full_is_507_and_nothing_is_lost(client: httpx.AsyncClient) -> None:
    for i in range(3):
        assert (await client.post("/data", json={"key": f"k{i}", "value": i})).status_code == 201
    response = await client.post("/data", json={"key": "k3", "value": 3})
    assert response.status_code == 507
    assert response.json()["limit"] == "maxKeys"
    # Every kind of refusal, then check every stored value survived.
    await client.post("/data", json={"key": "k0", "value": "x" * 100})
    await client.post("/data", content=b"{broken", headers={"content-type": "application/json"})
    await client.post("/data", json={"key": "k0"})
    for i in range(3):
        assert (await client.get(f"/data/k{i}")).json()["value"] == i
    assert (await client.get("/data/k3")).status_code == 404


async def test_store_bytes_full_is_507(client: httpx.AsyncClient) -> None:
    big = "x" * 60
    assert (await client.post("/data", json={"key": "a", "value": big})).status_code == 201
    assert (await client.post("/data", json={"key": "b", "value": big})).status_code == 201
    response = await client.post("/data", json={"key": "c", "value": big})
    assert (response.status_code, response.json()["limit"]) == (507, "maxStoreBytes")
    assert (await client.get("/data/a")).json()["value"] == big
    assert (await client.get("/data/c")).status_code == 404
    # Replacing a value counts the difference, not the sum.
    response = await client.post("/data", json={"key": "a", "value": big + "yy"})
    expected = (63 + ENTRY_OVERHEAD_BYTES) + (65 + ENTRY_OVERHEAD_BYTES)
    assert (response.status_code, response.json()["storeBytes"]) == (201, expected)


async def test_work_answer_shape(client: httpx.AsyncClient) -> None:
    response = await client.get("/work")
    assert response.status_code == 200
    body = response.json()
    assert (body["node"], body["pid"], body["loadFactor"], body["ioMillis"]) == (
        "n1",
        os.getpid(),
        15,
        0,
    )
    assert body["result"] == 610
    assert isinstance(body["serviceMillis"], float) and body["serviceMillis"] >= 0


async def test_work_query_overrides(client: httpx.AsyncClient) -> None:
    body = (await client.get("/work", params={"loadFactor": 10, "ioMillis": 20})).json()
    assert (body["loadFactor"], body["ioMillis"], body["result"]) == (10, 20, 55)
    assert body["serviceMillis"] >= 20 * 0.9  # the loop clock may wake a hair early


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"loadFactor": 41}, "loadFactor"),
        ({"loadFactor": -1}, "loadFactor"),
        ({"loadFactor": "x"}, "loadFactor"),
        ({"ioMillis": 60_001}, "ioMillis"),
    ],
)
async def test_work_bad_overrides_are_422(
    client: httpx.AsyncClient, params: dict[str, int | str], field: str
) -> None:
    response = await client.get("/work", params=params)
    assert response.status_code == 422
    assert response.json()["field"] == field


async def test_work_query_bounds_are_the_nodes() -> None:
    settings = NodeSettings(load_factor=3, io_millis=0, max_load_factor=10, max_io_millis=50)
    app = create_app(settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://n") as c:
        assert (await c.get("/work", params={"loadFactor": 10})).status_code == 200
        assert (await c.get("/work", params={"loadFactor": 11})).status_code == 422
        assert (await c.get("/work", params={"ioMillis": 51})).status_code == 422
        document = (await c.get("/openapi.json")).json()
    parameters = {p["name"]: p["schema"] for p in document["paths"]["/work"]["get"]["parameters"]}
    load_factor, io_millis = parameters["loadFactor"], parameters["ioMillis"]
    assert (load_factor["minimum"], load_factor["maximum"], load_factor["default"]) == (0, 10, 3)
    assert (io_millis["minimum"], io_millis["maximum"], io_millis["default"]) == (0, 50, 0)


@pytest.mark.parametrize("key", ["", ".", "..", "...", "a/b", "a\n", "x" * 17, "\x7f"], ids=repr)
async def test_refused_keys_are_422_on_every_route(client: httpx.AsyncClient, key: str) -> None:
    response = await client.post("/data", json={"key": key, "value": 1})
    assert (response.status_code, response.json()["field"]) == (422, "key")
    if key not in {".", ".."}:  # clients resolve dot segments before a request is sent
        response = await client.get("/data/" + quote(key, safe=""))
        assert (response.status_code, response.json()["field"]) == (422, "key")


async def test_a_trailing_newline_does_not_read_another_key(client: httpx.AsyncClient) -> None:
    await client.post("/data", json={"key": "a", "value": 1})
    assert (await client.get("/data/a%0A")).status_code == 422


async def test_openapi_document_resolves_and_states_the_answers(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()

    def refs(node: object) -> Iterator[str]:
        if isinstance(node, dict):
            for name, value in node.items():
                if name == "$ref":
                    yield value
                yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    schemas = document["components"]["schemas"]
    for ref in refs(document):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas
    paths = document["paths"]
    assert set(paths) == {"/health", "/data", "/data/{key}", "/work", "/metrics"}
    assert set(paths["/data"]["post"]["responses"]) >= {"201", "413", "422", "507"}
    assert set(paths["/data/{key}"]["get"]["responses"]) >= {"200", "404", "422"}
    assert "text/plain" in paths["/metrics"]["get"]["responses"]["200"]["content"]
    assert "field" in schemas["FieldError"]["properties"]
    key = paths["/data"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert key["properties"]["key"]["maxLength"] == LIMITS.max_key_length


async def test_work_runs_one_at_a_time_per_worker(client: httpx.AsyncClient) -> None:
    answers = await asyncio.gather(
        *(client.get("/work", params={"ioMillis": 30, "loadFactor": 5}) for _ in range(3))
    )
    bodies = [a.json() for a in answers]
    # Serialized: the waits add up, and each service time excludes the queueing before it.
    assert max(b["queueMillis"] for b in bodies) >= 2 * 30 * 0.8
    assert all(b["serviceMillis"] < 2 * 30 for b in bodies)


async def test_health_answers_and_counts_in_flight_while_work_runs(
    app: Front, client: httpx.AsyncClient
) -> None:
    work = asyncio.create_task(client.get("/work", params={"ioMillis": 5_000, "loadFactor": 1}))
    while app.state.in_flight == 0:
        await asyncio.sleep(0.001)
    health = await client.get("/health")
    assert health.json()["inFlight"] == 1
    work.cancel()
    with pytest.raises(asyncio.CancelledError):
        await work


async def test_metrics_text(client: httpx.AsyncClient) -> None:
    await client.get("/health")
    await client.post("/data", json={"key": "k", "value": 1})
    await client.get("/data/k")
    await client.get("/data/missing")
    await client.get("/work", params={"loadFactor": 5})
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'nodelab_http_requests_total{path="/health",status="200"} 1.0' in text
    assert 'nodelab_http_requests_total{path="/data/{key}",status="404"} 1.0' in text
    assert 'nodelab_http_requests_total{path="/data",status="201"} 1.0' in text
    assert 'nodelab_http_request_duration_seconds_bucket{le="+Inf",path="/work"} 1.0' in text
    assert "nodelab_http_requests_in_flight 1.0" in text  # the scrape itself
    assert "nodelab_work_service_seconds_count 1.0" in text
    assert "nodelab_store_keys 1.0" in text


async def test_unknown_path_is_404_json(client: httpx.AsyncClient) -> None:
    response = await client.get("/nowhere")
    assert response.status_code == 404
    assert response.json()["error"] == "Not Found"
