"""The node's store: limits, byte accounting, and nothing lost when a write is refused."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Callable

import pytest
from pydantic import JsonValue

from node_service.settings import StoreLimits
from node_service.store import (
    ENTRY_OVERHEAD_BYTES,
    KeyRejected,
    Store,
    StoreFull,
    ValueTooLarge,
    encode_value,
)

OVERHEAD = ENTRY_OVERHEAD_BYTES


def make_store(**limits: int) -> Store:
    return Store(StoreLimits(**limits))


def put(store: Store, key: str, value: JsonValue) -> None:
    store.put(key, encode_value(value))


def test_put_then_get_round_trips_any_json() -> None:
    store = make_store()
    put(store, "user_123", "Alice")
    put(store, "profile", {"name": "Alice", "tags": ["a", 1, None, 2.5]})
    assert json.loads(store.get("user_123")) == "Alice"
    assert json.loads(store.get("profile")) == {"name": "Alice", "tags": ["a", 1, None, 2.5]}
    assert len(store) == 2


def test_absent_key_raises_key_error() -> None:
    with pytest.raises(KeyError):
        make_store().get("nope")


def test_values_are_kept_as_compact_utf8_json() -> None:
    assert encode_value("abc") == b'"abc"'
    assert encode_value("é") == '"é"'.encode()  # 4 bytes, not the 8 of a \u escape
    assert encode_value({"a": [1, 2]}) == b'{"a":[1,2]}'


@pytest.mark.parametrize("number", [float("inf"), float("-inf"), float("nan")])
def test_numbers_json_cannot_carry_are_refused(number: float) -> None:
    with pytest.raises(ValueError):
        encode_value([number])


def test_bytes_account_key_value_and_entry_overhead() -> None:
    store = make_store()
    result = store.put("k", b'"vv"')
    assert result.entry_bytes == 1 + 4 + OVERHEAD
    assert store.total_bytes == 5 + OVERHEAD
    assert result.keys == 1 and not result.replaced


def test_overwrite_replaces_bytes_instead_of_adding() -> None:
    store = make_store()
    put(store, "k", "a" * 10)
    put(store, "other", 1)
    put(store, "k", "b")
    assert store.get("k") == b'"b"'
    assert store.total_bytes == (1 + 3 + OVERHEAD) + (5 + 1 + OVERHEAD)
    assert len(store) == 2


def test_overwrite_at_the_key_limit_is_allowed() -> None:
    store = make_store(max_keys=1)
    put(store, "k", 1)
    put(store, "k", 2)
    assert store.get("k") == b"2"


@pytest.mark.parametrize(
    ("key", "limit"),
    [
        ("", "minKeyLength"),
        ("x" * 9, "maxKeyLength"),
        ("a/b", "keyCharacters"),
        ("a\n", "keyCharacters"),
    ],
)
def test_bad_keys_are_rejected_with_422(key: str, limit: str) -> None:
    store = make_store(max_key_length=8)
    with pytest.raises(KeyRejected) as info:
        put(store, key, "v")
    assert info.value.status == 422
    assert info.value.to_json()["limit"] == limit
    assert info.value.to_json()["field"] == "key"


def test_value_too_large_is_413_naming_the_limit() -> None:
    store = make_store(max_value_bytes=10)
    with pytest.raises(ValueTooLarge) as info:
        put(store, "k", "x" * 20)
    body = info.value.to_json()
    assert info.value.status == 413
    assert body["limit"] == "maxValueBytes" and body["max"] == 10 and body["actual"] == 22


def test_too_many_keys_is_507_and_keeps_everything() -> None:
    store = make_store(max_keys=2)
    put(store, "a", 1)
    put(store, "b", 2)
    with pytest.raises(StoreFull) as info:
        put(store, "c", 3)
    assert info.value.status == 507
    assert info.value.to_json()["limit"] == "maxKeys"
    assert (store.get("a"), store.get("b"), len(store)) == (b"1", b"2", 2)
    assert "c" not in store


def test_too_many_bytes_is_507_and_keeps_the_old_value() -> None:
    store = make_store(max_store_bytes=OVERHEAD + 20)
    put(store, "k", "short")  # 1 + 7 bytes + overhead
    before = store.total_bytes
    with pytest.raises(StoreFull) as info:
        put(store, "k", "x" * 30)  # would replace 8 bytes by 33
    assert info.value.to_json()["limit"] == "maxStoreBytes"
    assert store.get("k") == b'"short"'
    assert store.total_bytes == before


def test_overwrite_that_shrinks_fits_even_when_nearly_full() -> None:
    store = make_store(max_store_bytes=OVERHEAD + 20)
    put(store, "k", "x" * 15)  # 1 + 17 bytes + overhead
    put(store, "k", "y")
    assert store.total_bytes == 4 + OVERHEAD


# Values of about 16 KiB of JSON each, in shapes whose parsed form costs far more than their JSON
# (tests/integration/test_node_memory.py sends the same shapes to a real worker).
VALUE_SHAPES: dict[str, Callable[[], JsonValue]] = {
    "empty dicts": lambda: [{} for _ in range(5_400)],
    "nested lists": lambda: [json.loads("[" * 60 + "]" * 60) for _ in range(135)],
    "small strings": lambda: [f"{i:04x}" for i in range(2_300)],
    "flat string": lambda: "x" * 16_000,
    "numbers": lambda: [i + 0.5 for i in range(1_600)],
    "tiny values": lambda: 1,
}


@pytest.mark.parametrize("shape", VALUE_SHAPES)
def test_memory_held_is_within_the_bytes_counted(shape: str) -> None:
    make = VALUE_SHAPES[shape]
    store = make_store(max_store_bytes=2 * 1024 * 1024, max_keys=100_000)
    entries = 0
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for entries in range(100_000):  # the store fills long before this
            try:
                put(store, f"key-{entries}", make())
            except StoreFull:
                break
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert entries == len(store) > 0, "the store never filled"
    # tracemalloc counts what Python allocated and still holds: the store's keys, values and
    # table, and a few KiB of free lists the interpreter keeps (up to 80 dicts and lists). The
    # parsed values are gone once encoded; kept, they cost 5 to 40 times the bytes counted.
    assert held - before <= store.total_bytes + 16 * 1024
    assert store.total_bytes <= 2 * 1024 * 1024
