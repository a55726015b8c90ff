"""The fault window: its body's validation, its activity on a fake clock, the board that carries
it between processes, the endpoint's authentication, and /work inside and outside a window."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from node_service.app import create_app
from node_service.fault import FaultBoard, FaultInvalid, FaultWindow, authorize, parse_fault
from node_service.front import Front
from node_service.settings import NodeSettings

TOKEN = "fault-token-0123456789"
NOW = 1_700_000_000.0
BEARER = {"Authorization": f"Bearer {TOKEN}"}


def body(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


def test_a_slow_window_starts_later_and_lasts_its_duration() -> None:
    window = parse_fault(
        body(startsInSeconds=2, durationSeconds=3.5, mode="slow", extraMillis=250), NOW
    )
    assert window == FaultWindow("slow", NOW + 2, NOW + 5.5, extra_millis=250)
    assert [window.state(NOW + t) for t in (0, 1.999, 2, 5.499, 5.5)] == [
        "scheduled",
        "scheduled",
        "active",
        "active",
        "over",
    ]
    assert [window.active(NOW + t) for t in (1.999, 2, 5.5)] == [False, True, False]


def test_a_fail_window_defaults_to_now_and_503() -> None:
    window = parse_fault(body(durationSeconds=1, mode="fail"), NOW)
    assert (window.starts_at, window.ends_at, window.status) == (NOW, NOW + 1, 503)
    assert parse_fault(body(durationSeconds=1, mode="fail", status=500), NOW).status == 500


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"durationSeconds": 1, "mode": "slow"}, "extraMillis"),
        ({"durationSeconds": 1, "mode": "slow", "extraMillis": 0}, "extraMillis"),
        ({"durationSeconds": 1, "mode": "slow", "extraMillis": 1.5}, "extraMillis"),
        ({"durationSeconds": 1, "mode": "slow", "extraMillis": 9, "status": 500}, "status"),
        ({"durationSeconds": 1, "mode": "fail", "extraMillis": 9}, "extraMillis"),
        ({"durationSeconds": 1, "mode": "fail", "status": 404}, "status"),
        ({"durationSeconds": 0, "mode": "fail"}, "durationSeconds"),
        ({"durationSeconds": "1", "mode": "fail"}, "durationSeconds"),
        ({"mode": "fail"}, "durationSeconds"),
        ({"startsInSeconds": -1, "durationSeconds": 1, "mode": "fail"}, "startsInSeconds"),
        ({"durationSeconds": 1, "mode": "gone"}, "mode"),
        ({"durationSeconds": 1, "mode": "fail", "when": 3}, "when"),
    ],
)
def test_a_bad_window_names_its_field(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(FaultInvalid) as info:
        parse_fault(body(**fields), NOW)
    locations = [error["loc"] for error in info.value.errors]
    assert any(loc and loc[-1] == field for loc in locations), locations


def test_the_file_board_carries_a_window_to_another_reader(tmp_path: Path) -> None:
    path = str(tmp_path / "window.json")
    writer, reader = FaultBoard(path), FaultBoard(path)  # two workers of one node
    assert reader.current() is None
    first = FaultWindow("slow", NOW, NOW + 1, extra_millis=5)
    writer.publish(first)
    assert reader.current() == first and reader.active(NOW) == first
    assert reader.active(NOW + 1) is None
    second = FaultWindow("fail", NOW + 10, NOW + 11, status=500)
    writer.publish(second)  # replaces the first, as a new file renamed over it
    assert reader.current() == second
    assert [p.name for p in tmp_path.iterdir()] == ["window.json"]  # no temporary left over


@pytest.mark.parametrize(
    ("header", "status"),
    [
        (None, 401),
        ("", 401),
        (TOKEN, 401),
        (f"Basic {TOKEN}", 401),
        ("Bearer ", 401),
        ("Bearer wrong", 403),
        (f"Bearer {TOKEN}x", 403),
        (f"Bearer {TOKEN}", 200),
        (f"bearer  {TOKEN} ", 200),
    ],
)
def test_authorize(header: str | None, status: int) -> None:
    assert authorize(header, TOKEN) == status


class FakeClock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def app(tmp_path: Path, clock: FakeClock) -> Front:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    settings = NodeSettings(node_id="f", load_factor=0, fault_token_file=str(token_file))
    front = create_app(settings)
    assert isinstance(front, Front)
    front.state.clock = clock
    return front


@pytest.fixture
async def client(app: Front) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://n") as c:
        yield c


async def test_no_token_no_endpoint() -> None:
    app = create_app(NodeSettings())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://n") as c:
        for method in ("GET", "POST"):
            response = await c.request(method, "/fault", headers=BEARER)
            assert response.status_code == 404
            assert response.json()["error"] == "Not Found"


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_the_endpoint_wants_the_token(client: httpx.AsyncClient, method: str) -> None:
    fault = {"durationSeconds": 1, "mode": "fail"}
    response = await client.request(method, "/fault", json=fault)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["node"] == "f"
    response = await client.request(
        method, "/fault", json=fault, headers={"Authorization": "Bearer nope"}
    )
    assert (response.status_code, response.json()["error"]) == (403, "wrong fault token")
    response = await client.request(method, "/fault", json=fault, headers=BEARER)
    assert response.status_code == 200


async def test_a_stranger_gets_403_before_a_bad_body_is_read(client: httpx.AsyncClient) -> None:
    response = await client.post("/fault", content=b"{", headers={"Authorization": "Bearer x"})
    assert response.status_code == 403


async def test_a_bad_body_is_422_naming_the_field(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/fault", json={"durationSeconds": 1, "mode": "slow"}, headers=BEARER
    )
    assert (response.status_code, response.json()["field"]) == (422, "extraMillis")
    response = await client.post("/fault", content=b"{", headers=BEARER)
    assert (response.status_code, response.json()["field"]) == (422, "body")
    assert (await client.get("/fault", headers=BEARER)).json()["fault"] is None


async def test_the_schedule_as_get_shows_it(client: httpx.AsyncClient, clock: FakeClock) -> None:
    window = {"startsInSeconds": 2, "durationSeconds": 3, "mode": "slow", "extraMillis": 40}
    posted = (await client.post("/fault", json=window, headers=BEARER)).json()
    assert posted["fault"] == {
        "mode": "slow",
        "extraMillis": 40,
        "state": "scheduled",
        "startsAt": "2023-11-14T22:13:22.000Z",
        "endsAt": "2023-11-14T22:13:25.000Z",
        "durationSeconds": 3.0,
        "startsInSeconds": 2.0,
        "endsInSeconds": 5.0,
    }
    assert posted["now"] == "2023-11-14T22:13:20.000Z"
    clock.now += 2.5
    shown = (await client.get("/fault", headers=BEARER)).json()["fault"]
    assert (shown["state"], shown["startsInSeconds"], shown["endsInSeconds"]) == (
        "active",
        -0.5,
        2.5,
    )


async def test_work_is_slowed_only_inside_a_slow_window(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    window = {"startsInSeconds": 1, "durationSeconds": 2, "mode": "slow", "extraMillis": 30}
    assert (await client.post("/fault", json=window, headers=BEARER)).status_code == 200
    before = (await client.get("/work")).json()
    assert before["faultMillis"] == 0
    clock.now += 1
    started = time.perf_counter()
    during = (await client.get("/work")).json()
    elapsed_millis = (time.perf_counter() - started) * 1000
    assert during["faultMillis"] == 30
    assert during["serviceMillis"] >= 30 * 0.9 and elapsed_millis >= 30 * 0.9
    assert (await client.get("/health")).status_code == 200
    clock.now += 2
    assert (await client.get("/work")).json()["faultMillis"] == 0
    text = (await client.get("/metrics")).text
    assert 'nodelab_work_fault_affected_total{mode="slow"} 1.0' in text
    assert 'nodelab_work_fault_affected_total{mode="fail"} 0.0' in text


async def test_work_fails_fast_inside_a_fail_window(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    window = {"durationSeconds": 1, "mode": "fail", "status": 500}
    assert (await client.post("/fault", json=window, headers=BEARER)).status_code == 200
    response = await client.get("/work", params={"ioMillis": 60_000})  # fails before the wait
    assert response.status_code == 500
    assert (response.json()["error"], response.json()["fault"]) == ("dependency failed", "fail")
    assert (await client.post("/data", json={"key": "k", "value": 1})).status_code == 201
    clock.now += 1
    assert (await client.get("/work")).status_code == 200
    text = (await client.get("/metrics")).text
    assert 'nodelab_work_fault_affected_total{mode="fail"} 1.0' in text
    assert 'nodelab_http_requests_total{path="/fault",status="200"} 1.0' in text


async def test_the_document_of_a_node_with_a_token_states_the_endpoint(
    client: httpx.AsyncClient,
) -> None:
    document = (await client.get("/openapi.json")).json()
    fault = document["paths"]["/fault"]
    assert {"200", "401", "403", "422"} <= set(fault["post"]["responses"])
    schema = fault["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert set(schema["required"]) == {"durationSeconds", "mode"}
