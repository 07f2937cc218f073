"""The one cache class: bounded, thread-safe, least recently used out first.

Used by each ``StatsDB`` (its reads), each ``deepviz.derived.Derived`` (run
data, CKA matrices) and the web UI (models, answers, layouts). Keys carry what
makes a value current (a file's mtime, the committed steps), so a value is
never stale; old ones simply age out. The bound is on entries and, when given,
on bytes (numpy arrays and frames count their size). A value is built outside
the cache's lock, once: a second thread asking for the same key waits for the
first one's value, while other keys stay free.
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
    def __init__(self, max_entries: int = MAX_ENTRIES, max_bytes: int | None = MAX_BYTES):
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._building: dict[Hashable, threading.Lock] = {}

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def _lookup(self, key: Hashable) -> Any:
        with self._lock:
            found = self._items.get(key, _MISSING)
            if found is not _MISSING:
                self._items.move_to_end(key)
                return found[0]
        return _MISSING

    def get(self, key: Hashable, build: Callable[[], Any] | None = None) -> Any:
        """The value cached under ``key``; else ``build()``'s, cached (None without ``build``)."""
        if build is None:
            found = self._lookup(key)
            return None if found is _MISSING else found
        return self.get_or_compute(key, build)[0]

    def get_or_compute(self, key: Hashable, build: Callable[[], Any]) -> tuple[Any, bool]:
        """``(value, hit)``: the cached value, else ``build()`` once while others asking for ``key`` wait."""
        found = self._lookup(key)
        if found is not _MISSING:
            return found, True
        with self._lock:
            gate = self._building.setdefault(key, threading.Lock())
        with gate:
            found = self._lookup(key)
            if found is not _MISSING:
                return found, True
            try:
                return self.put(key, build()), False
            finally:
                with self._lock:
                    self._building.pop(key, None)

    def latest(self, slot: Hashable, version: Hashable, build: Callable[[], Any]) -> Any:
        """``build()`` once per ``version`` of ``slot``; a new version replaces the old one.

        For values rebuilt whenever files come or go (a run's step table): only
        the newest is worth keeping.
        """
        found = self._lookup(slot)
        if found is not _MISSING and found[0] == version:
            return found[1]
        return self.put(slot, (version, build()))[1]

    def put(self, key: Hashable, value: Any) -> Any:
        """Cache ``value`` under ``key`` (replacing what was there) and return it."""
        size = size_of(value) if self.max_bytes is not None else 0
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._items[key] = (value, size)
            self._bytes += size
            while len(self._items) > 1 and (
                len(self._items) > self.max_entries or (self.max_bytes is not None and self._bytes > self.max_bytes)
            ):
                _, (_, dropped) = self._items.popitem(last=False)
                self._bytes -= dropped
        return value
