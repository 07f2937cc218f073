"""The one cache class: bounded, thread-safe, least recently used out first.

Used by each ``StatsDB`` (its reads), each ``deepviz.derived.Derived`` (run
data, CKA matrices) and the web UI (models, answers, layouts). Keys carry what
makes a value current (a file's mtime, the committed steps), so a value is
never stale; old ones simply age out. The bound is on entries and on bytes: ``size_of`` counts what a value really holds (array and Arrow
buffers, a model's parameters and buffers, bytes, the items of containers and
the fields of plain objects). A value larger than the whole byte cap is handed
back but not kept, so a cache never holds more than its cap. A value is built
outside the cache's lock, once: a second thread asking for the same key waits
for the first one's value, while other keys stay free.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
from collections import OrderedDict
from itertools import chain
from typing import Any, Callable, Hashable

from .errors import ConfigurationError

#: Defaults: enough for a few runs' recent steps in the web UI, small next to a training machine's memory.
MAX_ENTRIES = 512
MAX_BYTES = 512 * 2**20

#: The largest byte cap a cache may be given: a cap is a promise about a process's memory.
LIMIT_BYTES = 64 * 2**30

_MISSING = object()
_ATOMS = (int, float, complex, bool, str, bytes, bytearray, memoryview, type(None))


def size_of(value: Any) -> int:
    """Bytes held by a cached value (an object reached twice is counted once)."""
    return _size(value, set())


def _size(value: Any, seen: set[int]) -> int:
    if id(value) in seen:
        return 0
    seen.add(id(value))
    if isinstance(value, _ATOMS):
        return sys.getsizeof(value)
    buffers = getattr(value, "get_total_buffer_size", None)  # Arrow tables and arrays: every buffer they keep alive
    if callable(buffers):
        return int(buffers())
    usage = getattr(value, "memory_usage", None)  # pandas: deep, so that strings count
    if callable(usage):
        held = usage(deep=True)
        return int(getattr(held, "sum", lambda: held)())
    nbytes = getattr(value, "nbytes", None)  # numpy arrays, torch tensors
    if isinstance(nbytes, int):
        return nbytes
    if callable(getattr(value, "parameters", None)) and callable(getattr(value, "buffers", None)):  # a torch module
        return sum(_size(t, seen) for t in chain(value.parameters(), value.buffers()))
    if isinstance(value, dict):
        return sys.getsizeof(value) + sum(_size(k, seen) + _size(v, seen) for k, v in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        return sys.getsizeof(value) + sum(_size(v, seen) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return sys.getsizeof(value) + sum(_size(getattr(value, f.name), seen) for f in dataclasses.fields(value))
    if hasattr(value, "__dict__") and not isinstance(value, type):
        return sys.getsizeof(value) + sum(_size(v, seen) for v in vars(value).values())
    return sys.getsizeof(value)


def check_bytes(value: Any, name: str = "max_bytes") -> int:
    """``value`` if it is a byte cap a cache can keep: a whole number from 1 to ``LIMIT_BYTES``."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= LIMIT_BYTES:
        raise ConfigurationError(f"{name} must be a whole number of bytes from 1 to {LIMIT_BYTES:,} (64 GiB); "
                                 f"got {value!r}. Pass a size such as {256 * 2**20} (256 MiB).")
    return value


class Cache:
    def __init__(self, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES):
        self.max_entries = max_entries
        self.max_bytes = check_bytes(max_bytes)
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
        size = size_of(value)
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            if size > self.max_bytes:
                return value  # larger than the whole cache: handed back, not kept
            self._items[key] = (value, size)
            self._bytes += size
            while len(self._items) > self.max_entries or self._bytes > self.max_bytes:
                _, (_, dropped) = self._items.popitem(last=False)
                self._bytes -= dropped
        return value
