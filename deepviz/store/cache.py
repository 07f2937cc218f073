"""One bounded, thread-safe cache per ``StatsDB``.

Every read of the db that is worth keeping goes through it. Keys carry what
makes a value current (a file's mtime, the committed steps), so a value is
never stale; old ones simply age out. The bound is on entries and on bytes
(numpy arrays and frames count their size), least recently used out first.
Values are built outside the lock: two threads may build the same value once
each, but a slow read never blocks the others.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Callable, Hashable

#: Defaults: enough for a few runs' recent steps in the web UI, small next to a training machine's memory.
MAX_ENTRIES = 512
MAX_BYTES = 512 * 2**20

_MISSING = object()


def size_of(value: Any) -> int:
    """Rough bytes held by a cached value: arrays and frames by their buffers, containers by their items."""
    nbytes = getattr(value, "nbytes", None)
    if isinstance(nbytes, int):
        return nbytes
    usage = getattr(value, "memory_usage", None)
    if callable(usage):
        return int(usage(deep=False).sum())
    if isinstance(value, dict):
        return 64 + sum(size_of(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return 64 + sum(size_of(v) for v in value)
    if isinstance(value, (bytes, str)):
        return len(value)
    return 64


class Cache:
    def __init__(self, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES):
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def get(self, key: Hashable, build: Callable[[], Any]) -> Any:
        """The value cached under ``key``, or ``build()``'s, cached."""
        with self._lock:
            found = self._items.get(key, _MISSING)
            if found is not _MISSING:
                self._items.move_to_end(key)
                return found[0]
        value = build()
        self._put(key, value)
        return value

    def latest(self, slot: Hashable, version: Hashable, build: Callable[[], Any]) -> Any:
        """``build()`` once per ``version`` of ``slot``; a new version replaces the old one.

        For values rebuilt whenever files come or go (a run's step table): only
        the newest is worth keeping.
        """
        with self._lock:
            found = self._items.get(slot, _MISSING)
            if found is not _MISSING and found[0][0] == version:
                self._items.move_to_end(slot)
                return found[0][1]
        value = build()
        self._put(slot, (version, value))
        return value

    def _put(self, key: Hashable, value: Any) -> None:
        size = size_of(value)
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._items[key] = (value, size)
            self._bytes += size
            while len(self._items) > 1 and (len(self._items) > self.max_entries or self._bytes > self.max_bytes):
                _, (_, dropped) = self._items.popitem(last=False)
                self._bytes -= dropped
