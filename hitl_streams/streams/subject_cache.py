"""`SubjectCache`: the bytes this process last wrote or read for each request key (bounded, LRU).

A read-modify-write (resolve, set_external_id) needs the subject's current bytes: the event is made from
them and the commit is a compare-and-set on them. When this process wrote or read the request a moment ago
(the server created it, or the inbox just showed it and now the decision comes), those bytes are most
likely still current, so the commit goes out at once, without a GET first: one round trip instead of two.

It is only a guess, never an answer: the commit script compares the guessed bytes with the stored ones, and
a stale entry (another replica wrote since, a rebuild, a TypeScript writer) costs the GET it meant to save,
nothing else. A domain error (unknown request, already resolved) is never decided from the cache.
"""

from __future__ import annotations

from collections import OrderedDict

__all__ = ["SubjectCache"]

_ENTRY_OVERHEAD = 160
"""Rough bytes of Python overhead per entry (the dict slot, the key and value objects)."""


def _cost(key: str, raw: bytes | str) -> int:
    return len(raw) + len(key) + _ENTRY_OVERHEAD


class SubjectCache:
    """A byte-bounded LRU map of Redis key -> stored bytes. `max_bytes=0` turns it off."""

    __slots__ = ("_entries", "_max_bytes", "_size")

    def __init__(self, max_bytes: int) -> None:
        self._entries: OrderedDict[str, bytes | str] = OrderedDict()
        self._max_bytes = max(0, max_bytes)
        self._size = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size(self) -> int:
        """Bytes accounted for (values, keys and a fixed overhead per entry)."""
        return self._size

    def get(self, key: str) -> bytes | str | None:
        raw = self._entries.get(key)
        if raw is not None:
            self._entries.move_to_end(key)
        return raw

    def put(self, key: str, raw: bytes | str) -> None:
        # Inline rather than through drop() and _cost(): every get and every write of a request puts.
        entries = self._entries
        size = self._size
        old = entries.pop(key, None)
        if old is not None:
            size -= len(old) + len(key) + _ENTRY_OVERHEAD
        cost = len(raw) + len(key) + _ENTRY_OVERHEAD
        if cost <= self._max_bytes:
            entries[key] = raw
            size += cost
            while size > self._max_bytes:
                evicted, value = entries.popitem(last=False)
                size -= _cost(evicted, value)
        self._size = size

    def drop(self, key: str) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self._size -= _cost(key, old)

    def clear(self) -> None:
        self._entries.clear()
        self._size = 0
