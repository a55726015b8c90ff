"""The node's store: limits, byte accounting, and nothing lost when a write is refused."""

from __future__ import annotations

import pytest

from node_service.settings import StoreLimits
from node_service.store import KeyRejected, Store, StoreFull, ValueTooLarge, value_size


def make_store(**limits: int) -> Store:
    return Store(StoreLimits(**limits))


def test_put_then_get_round_trips_any_json() -> None:
    store = make_store()
    store.put("user_123", "Alice")
    store.put("profile", {"name": "Alice", "tags": ["a", 1, None, 2.5]})
    assert store.get("user_123") == "Alice"
    assert store.get("profile") == {"name": "Alice", "tags": ["a", 1, None, 2.5]}
    assert len(store) == 2


def test_absent_key_raises_key_error() -> None:
    with pytest.raises(KeyError):
        make_store().get("nope")


def test_value_size_is_compact_utf8_json() -> None:
    assert value_size("abc") == 5
    assert value_size("é") == 4  # quotes + 2 UTF-8 bytes, not the 6-byte \u escape
    assert value_size({"a": [1, 2]}) == len('{"a":[1,2]}')


def test_bytes_account_key_and_value() -> None:
    store = make_store()
    result = store.put("k", "vv")
    assert result.entry_bytes == 1 + 4
    assert store.total_bytes == 5
    assert result.keys == 1 and not result.replaced


def test_overwrite_replaces_bytes_instead_of_adding() -> None:
    store = make_store()
    store.put("k", "a" * 10)
    store.put("other", 1)
    result = store.put("k", "b")
    assert result.replaced
    assert store.total_bytes == (1 + 3) + (5 + 1)
    assert len(store) == 2


def test_overwrite_at_the_key_limit_is_allowed() -> None:
    store = make_store(max_keys=1)
    store.put("k", 1)
    store.put("k", 2)
    assert store.get("k") == 2


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
        store.put(key, "v")
    assert info.value.status == 422
    assert info.value.to_json()["limit"] == limit
    assert info.value.to_json()["field"] == "key"


def test_value_too_large_is_413_naming_the_limit() -> None:
    store = make_store(max_value_bytes=10)
    with pytest.raises(ValueTooLarge) as info:
        store.put("k", "x" * 20)
    body = info.value.to_json()
    assert info.value.status == 413
    assert body["limit"] == "maxValueBytes" and body["max"] == 10 and body["actual"] == 22


def test_too_many_keys_is_507_and_keeps_everything() -> None:
    store = make_store(max_keys=2)
    store.put("a", 1)
    store.put("b", 2)
    with pytest.raises(StoreFull) as info:
        store.put("c", 3)
    assert info.value.status == 507
    assert info.value.to_json()["limit"] == "maxKeys"
    assert (store.get("a"), store.get("b"), len(store)) == (1, 2, 2)
    assert "c" not in store


def test_too_many_bytes_is_507_and_keeps_the_old_value() -> None:
    store = make_store(max_store_bytes=20)
    store.put("k", "short")  # 1 + 7 = 8 bytes
    before = store.total_bytes
    with pytest.raises(StoreFull) as info:
        store.put("k", "x" * 30)  # would replace 8 bytes by 33
    assert info.value.to_json()["limit"] == "maxStoreBytes"
    assert store.get("k") == "short"
    assert store.total_bytes == before


def test_overwrite_that_shrinks_fits_even_when_nearly_full() -> None:
    store = make_store(max_store_bytes=20)
    store.put("k", "x" * 15)  # 1 + 17 = 18 bytes
    store.put("k", "y")
    assert store.total_bytes == 4
