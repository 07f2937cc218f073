"""The one cache class: byte caps that hold whatever is cached, and sizes that count what a value holds."""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import torch

from deepviz.cache import LIMIT_BYTES, Cache, check_bytes, size_of
from deepviz.errors import ConfigurationError


def test_size_of_counts_arrow_buffers_even_of_a_slice():
    table = pa.table({"x": np.arange(100_000, dtype=np.float32)})
    assert size_of(table) >= 400_000
    assert size_of(table.slice(0, 10)) >= 400_000  # the slice keeps the whole buffer alive


def test_size_of_counts_png_bytes_and_the_entries_of_a_dict_of_them():
    thumbs = {i: bytes(700) for i in range(1000)}
    assert size_of(bytes(700)) >= 700
    assert size_of(thumbs) >= 1000 * (700 + sys.getsizeof(0))


def test_size_of_counts_a_models_parameters_and_buffers_inside_a_record():
    model = torch.nn.Sequential(torch.nn.Linear(512, 256), torch.nn.BatchNorm1d(256))
    params = (512 * 256 + 256 + 2 * 256) * 4
    buffers = 2 * 256 * 4 + 8  # running mean and var, num_batches_tracked

    @dataclass
    class Loaded:
        model: torch.nn.Module
        shapes: dict
        lock: object

    assert size_of(model) == params + buffers
    assert size_of(Loaded(model, {"0": (1, 256)}, threading.Lock())) >= params + buffers


def test_size_of_counts_layouts_frames_and_plain_objects_and_a_shared_array_once():
    xy = np.zeros((100_000, 2), np.float32)
    assert size_of((xy, {"provisional": True, "aligned_to": 3})) >= xy.nbytes
    strings = pd.DataFrame({"name": pd.Series(["class %d" % i for i in range(10_000)], dtype=object)})
    assert size_of(strings) > 10_000 * 40  # deep: the strings, not 8-byte pointers

    class Index:
        def __init__(self, X):
            self.X, self.view = X, X

    big = np.zeros(250_000, np.float32)
    assert big.nbytes <= size_of(Index(big)) < 2 * big.nbytes


def test_a_cache_filled_past_its_cap_stays_under_it_and_keeps_working():
    cap = 1_000_000
    cache = Cache(max_entries=10_000, max_bytes=cap)
    rng = np.random.default_rng(0)
    sizes = rng.integers(1_000, 200_000, size=200)
    for i, n in enumerate(sizes):
        value = cache.get(("k", i), lambda n=n, i=i: np.full(n, i, np.uint8))
        assert value.shape == (n,) and value[0] == i % 256
        assert cache.nbytes <= cap
    assert sum(sizes) > 10 * cap and 0 < len(cache) < 200
    last = len(sizes) - 1
    assert cache.get(("k", last))[0] == last % 256  # the newest is kept
    assert cache.get(("k", 0)) is None  # the oldest went first


def test_a_value_larger_than_the_whole_cap_is_handed_back_but_not_kept():
    cache = Cache(max_bytes=100_000)
    cache.get("small", lambda: np.zeros(10_000, np.uint8))
    big, hit = cache.get_or_compute("big", lambda: np.zeros(200_000, np.uint8))
    assert big.shape == (200_000,) and not hit
    assert cache.get("big") is None and cache.get("small") is not None and cache.nbytes <= 100_000


def test_threads_filling_a_cache_together_keep_it_under_its_cap():
    cache = Cache(max_bytes=500_000)

    def fill(t):
        for i in range(300):
            cache.get((t, i % 37), lambda: np.zeros(20_000 + 1000 * (i % 7), np.uint8))

    threads = [threading.Thread(target=fill, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert 0 < cache.nbytes <= 500_000
    assert cache.nbytes == sum(size for _, size in cache._items.values())


@pytest.mark.parametrize("bad", [0, -1, 1.5, "512MB", True, LIMIT_BYTES + 1])
def test_a_byte_cap_must_be_a_whole_number_of_bytes_within_the_limit(bad):
    with pytest.raises(ConfigurationError, match=r"max_bytes must be a whole number of bytes from 1 to .* got "):
        Cache(max_bytes=bad)
    with pytest.raises(ConfigurationError, match=r"DB_CACHE_BYTES must be a whole number of bytes"):
        check_bytes(bad, "DB_CACHE_BYTES")
    assert check_bytes(LIMIT_BYTES) == LIMIT_BYTES
