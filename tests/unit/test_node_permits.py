"""The node's permit desk: at most N holders, first come first served, a dead holder's permit
comes back. In one process over a real Unix socket; the desk runs in its own thread."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from node_service.permits import NodePermits, PermitDesk


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[PermitDesk]:
    desk = PermitDesk(str(tmp_path / "desk.sock"), permits=2)
    desk.start()
    yield desk
    desk.stop()


async def test_at_most_n_hold_and_the_rest_go_in_arrival_order(desk: PermitDesk) -> None:
    permits = NodePermits(desk.path)
    holding, most, order = 0, 0, []
    release = asyncio.Event()

    async def request(index: int) -> None:
        nonlocal holding, most
        async with permits.hold():
            order.append(index)
            holding += 1
            most = max(most, holding)
            if index < 2:
                await release.wait()  # the first two hold on until the rest are queued
            holding -= 1

    tasks = []
    for index in range(6):
        tasks.append(asyncio.create_task(request(index)))
        await asyncio.sleep(0.02)  # staggered arrivals: the desk sees them in this order
    assert order == [0, 1]  # two permits, both taken; four requests wait
    release.set()
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=10)
    assert most == 2
    assert order == [0, 1, 2, 3, 4, 5]


async def test_a_holder_that_disconnects_gives_its_permit_back(desk: PermitDesk) -> None:
    reader, writer = await asyncio.open_unix_connection(desk.path)
    assert await reader.readexactly(1) == b"!"
    writer.transport.abort()  # a worker killed while holding a permit
    permits = NodePermits(desk.path)
    async with asyncio.timeout(10):
        async with permits.hold(), permits.hold():
            pass  # both permits are free again
