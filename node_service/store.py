"""One worker's in-memory key-value store, bounded in key length, value size, keys and bytes.

Values are kept as the compact JSON bytes they encode to, never as parsed Python objects: a parsed
value costs 5 to 40 times its JSON size (``[{}, {}, ...]`` is 64 bytes of dict per 3 bytes of
JSON), so a byte limit on the JSON would not bound memory. Each entry is charged its key, its
value and :data:`ENTRY_OVERHEAD_BYTES` for the Python objects that hold them, which makes the
store's byte count an upper bound of what it holds in memory.

Every check runs before anything changes, so a refused write leaves the store exactly as it was.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from pydantic import JsonValue

from node_service.settings import StoreLimits

__all__ = [
    "ENTRY_OVERHEAD_BYTES",
    "KEY_PATTERN",
    "KeyRejected",
    "PutResult",
    "Store",
    "StoreError",
    "StoreFull",
    "ValueTooLarge",
    "encode_value",
]

# A key must come back as one segment of GET /data/{key}: no "/", and not "." or ".." (clients
# resolve those as dot segments before sending), so at least one character other than "."; and
# no control character. Also the JSON Schema pattern of a key (ECMA-262 reads \xHH as Python).
_REFUSED = r"/\x00-\x1f\x7f"
KEY_PATTERN = f"^[^{_REFUSED}]*[^{_REFUSED}.][^{_REFUSED}]*$"
_KEY = re.compile(KEY_PATTERN)

# What an entry costs beyond its key's and value's bytes, on 64-bit CPython 3.11: the key's str
# header (49), the value's bytes header (33), each rounded up to the allocator's 16-byte size
# class (up to 2 x 15), and its dict slot (16-byte entry + index: up to ~45 right after the table
# grew). That is ~155; tests/unit/test_node_store.py checks the total with tracemalloc.
ENTRY_OVERHEAD_BYTES = 176


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


def encode_value(value: JsonValue) -> bytes:
    """A value as the store keeps it: compact JSON in UTF-8 (what a client sent, unescaped).

    Raises ``ValueError`` for a number JSON cannot carry (NaN, or an infinity: ``1e400`` parses
    to one), so that nothing is stored that could not be answered.
    """
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


class Store:
    """A dict of JSON bytes with limits; each entry costs key + value + overhead bytes."""

    def __init__(self, limits: StoreLimits) -> None:
        self.limits = limits
        self._items: dict[str, bytes] = {}
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
        if not _KEY.fullmatch(key):  # fullmatch: "$" alone would let a trailing "\n" pass
            raise KeyRejected("keyCharacters", 0, 1, "key")

    def put(self, key: str, value: bytes) -> PutResult:
        """Store the JSON bytes ``value`` (see :func:`encode_value`) under ``key``, replacing an
        old value, or raise :class:`StoreError`."""
        self.check_key(key)
        size = len(value)
        if size > self.limits.max_value_bytes:
            raise ValueTooLarge("maxValueBytes", self.limits.max_value_bytes, size, "value")
        key_bytes = len(key.encode())
        entry = key_bytes + size + ENTRY_OVERHEAD_BYTES
        old = self._items.get(key)
        old_entry = 0 if old is None else key_bytes + len(old) + ENTRY_OVERHEAD_BYTES
        keys_after = len(self._items) + (1 if old is None else 0)
        bytes_after = self._bytes - old_entry + entry
        if keys_after > self.limits.max_keys:
            raise StoreFull("maxKeys", self.limits.max_keys, keys_after, "key")
        if bytes_after > self.limits.max_store_bytes:
            raise StoreFull("maxStoreBytes", self.limits.max_store_bytes, bytes_after, "value")
        self._items[key] = value
        self._bytes = bytes_after
        return PutResult(old is not None, entry, keys_after, bytes_after)

    def get(self, key: str) -> bytes:
        """The JSON bytes of the value under ``key``; ``KeyError`` if absent."""
        return self._items[key]

    def __contains__(self, key: object) -> bool:
        return key in self._items
