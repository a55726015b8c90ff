"""A real worker's memory (RSS from /proc) after its store is filled with values of every shape.

The store's limit is in bytes of JSON; what a worker holds is Python objects, which cost up to
~40 times more (a parsed ``[{}, {}, ...]`` is 64 bytes of dict per 3 bytes of JSON). The bound
holds only if the worker's real memory stays near the limit whatever the shape of the values.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import httpx
import pytest

from tests.support.processes import running_node

MIB = 1024 * 1024
# The defaults a pod runs with: 64 KiB values, 16 MiB per worker store.
MAX_VALUE_BYTES = 64 * 1024
MAX_STORE_BYTES = 16 * MIB
# What a worker may grow by beyond its store: the one body it parses at a time (a few MiB of
# objects for the worst shapes) and the allocator's fragmentation left behind by such parses.
HEADROOM = 16 * MIB


def _items(item: str, size: int) -> str:
    """A JSON array of copies of ``item`` no longer than ``size`` bytes."""
    return "[" + ",".join([item] * ((size - 1) // (len(item) + 1))) + "]"


# Each builds a value whose compact JSON is at most `size` bytes, in a shape that costs far more
# once parsed (except the flat string, the baseline). Strings and numbers are distinct, so that
# neither the parser's string cache nor CPython's small-object caches share them.
SHAPES: dict[str, Callable[[int], str]] = {
    "empty dicts": lambda size: _items("{}", size),
    "nested lists": lambda size: _items("[" * 60 + "]" * 60, size),
    "small strings": lambda size: (
        "[" + ",".join(f'"{i:04x}"' for i in range((size - 1) // 7)) + "]"
    ),
    "flat string": lambda size: '"' + "x" * (size - 2) + '"',
    "numbers": lambda size: "[" + ",".join(f"{i % 10}.5" for i in range((size - 1) // 4)) + "]",
}


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` now, from /proc."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS in /proc/{pid}/status")


@pytest.mark.parametrize("shape", SHAPES)
def test_worker_memory_stays_near_the_store_limit(shape: str) -> None:
    value = SHAPES[shape](MAX_VALUE_BYTES)
    assert len(value.encode()) <= MAX_VALUE_BYTES
    limits = ["--max-value-bytes", str(MAX_VALUE_BYTES), "--max-store-bytes", str(MAX_STORE_BYTES)]
    with running_node(workers=1, extra=limits) as node, httpx.Client(timeout=30) as client:
        url = f"{node.url}/data"
        # Warm the paths once, so the baseline already holds what serving costs by itself.
        assert client.post(url, json={"key": "warm", "value": 1}).status_code == 201
        assert client.get(f"{url}/warm").status_code == 200
        pid = client.get(f"{node.url}/health").json()["pid"]
        assert os.getpgid(pid) == node.proc.pid  # the worker is ours
        before = rss_bytes(pid)

        refused: httpx.Response | None = None
        for i in range(10 * MAX_STORE_BYTES // MAX_VALUE_BYTES):  # the store fills long before
            body = f'{{"key": "k{i}", "value": {value}}}'.encode()
            answer = client.post(url, content=body)
            if answer.status_code != 201:
                refused = answer
                break
        assert refused is not None, "the store never filled"
        assert (refused.status_code, refused.json()["limit"]) == (507, "maxStoreBytes")
        stored = client.get(f"{url}/k0")
        assert stored.status_code == 200 and len(stored.content) > len(value)
        after = rss_bytes(pid)

    grown = after - before
    print(
        f"\n{shape}: {i} values stored; worker RSS {before / MIB:.1f} -> {after / MIB:.1f} MiB "
        f"(+{grown / MIB:.1f} MiB) for a {MAX_STORE_BYTES / MIB:.0f} MiB store limit"
    )
    assert grown <= MAX_STORE_BYTES + HEADROOM, (
        f"{shape}: RSS grew {grown / MIB:.1f} MiB for a {MAX_STORE_BYTES / MIB:.0f} MiB store"
    )
