"""One worker's in-memory key-value store, bounded in key length, value size, keys and bytes.

Every check runs before anything changes, so a refused write leaves the store exactly as it was.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from pydantic import JsonValue

from node_service.settings import StoreLimits

__all__ = ["KeyRejected", "PutResult", "Store", "StoreError", "StoreFull", "ValueTooLarge"]

# "/" would not survive GET /data/{key}; control characters do not belong in a key.
_BAD_KEY_CHAR = re.compile(r"[/\x00-\x1f\x7f]")


class StoreError(Exception):
    """A refused write: HTTP status, the limit it hit, and the figures to show."""

    status = 400
    error = "rejected"

    def __init__(self, limit: str, maximum: int, actual: int, field: str) -> None:
        super().__init__(f"{self.error}: {limit} is {maximum}, got {actual}")
        self.limit = limit
        self.maximum = maximum
        self.actual = actual
        self.field = field

    def to_json(self) -> dict[str, JsonValue]:
        """The JSON body that explains the refusal."""
        return {
            "error": self.error,
            "field": self.field,
            "limit": self.limit,
            "max": self.maximum,
            "actual": self.actual,
        }


class KeyRejected(StoreError):
    """The key is empty, too long or holds a character a URL path cannot carry (422)."""

    status = 422
    error = "invalid key"


class ValueTooLarge(StoreError):
    """The value alone is larger than the per-value limit (413)."""

    status = 413
    error = "value too large"


class StoreFull(StoreError):
    """Storing would pass the key-count or byte limit of the store (507)."""

    status = 507
    error = "store full"


@dataclass(frozen=True)
class PutResult:
    """What a successful write did."""

    replaced: bool
    entry_bytes: int
    keys: int
    store_bytes: int


def value_size(value: JsonValue) -> int:
    """Bytes a value costs: its compact JSON encoding in UTF-8 (what a client sent, unescaped)."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


class Store:
    """A dict with limits and exact byte accounting (key bytes + value bytes per entry)."""

    def __init__(self, limits: StoreLimits) -> None:
        self.limits = limits
        self._items: dict[str, tuple[JsonValue, int]] = {}
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def total_bytes(self) -> int:
        """Bytes held now, by the same measure the limits use."""
        return self._bytes

    def check_key(self, key: str) -> None:
        """Raise :class:`KeyRejected` unless ``key`` could be stored."""
        if not key:
            raise KeyRejected("minKeyLength", 1, 0, "key")
        if len(key) > self.limits.max_key_length:
            raise KeyRejected("maxKeyLength", self.limits.max_key_length, len(key), "key")
        if _BAD_KEY_CHAR.search(key):
            raise KeyRejected("keyCharacters", 0, 1, "key")

    def put(self, key: str, value: JsonValue) -> PutResult:
        """Store ``value`` under ``key`` (replacing an old value) or raise :class:`StoreError`."""
        self.check_key(key)
        size = value_size(value)
        if size > self.limits.max_value_bytes:
            raise ValueTooLarge("maxValueBytes", self.limits.max_value_bytes, size, "value")
        key_bytes = len(key.encode())
        entry = key_bytes + size
        old = self._items.get(key)
        old_entry = 0 if old is None else key_bytes + old[1]
        keys_after = len(self._items) + (1 if old is None else 0)
        bytes_after = self._bytes - old_entry + entry
        if keys_after > self.limits.max_keys:
            raise StoreFull("maxKeys", self.limits.max_keys, keys_after, "key")
        if bytes_after > self.limits.max_store_bytes:
            raise StoreFull("maxStoreBytes", self.limits.max_store_bytes, bytes_after, "value")
        self._items[key] = (value, size)
        self._bytes = bytes_after
        return PutResult(old is not None, entry, keys_after, bytes_after)

    def get(self, key: str) -> JsonValue:
        """The value under ``key``; ``KeyError`` if absent."""
        return self._items[key][0]

    def __contains__(self, key: object) -> bool:
        return key in self._items
