"""SearchIndex over compact rows (the probe images as the db keeps them) answers as over their float32 values,
without ever holding those values whole."""

import tracemalloc

import numpy as np
import pytest

from deepviz.analysis import nearest
from deepviz.analysis.search import BLOCK_ROWS, SearchIndex, smallest
from deepviz.errors import ConfigurationError


@pytest.fixture(scope="module")
def codes():
    rng = np.random.default_rng(3)
    return rng.integers(0, 256, (BLOCK_ROWS * 2 + 123, 48), dtype=np.uint8)  # three blocks, the last one short


@pytest.mark.parametrize("metric", ["cosine", "euclidean", "sqeuclidean", "minkowski"])
def test_uint8_codes_search_as_their_values_do(codes, metric):
    values = codes.astype(np.float32) / 255
    compact, full = SearchIndex(codes, divisor=255.0), SearchIndex(values)
    q = compact.row(17)
    np.testing.assert_array_equal(q, values[17])
    np.testing.assert_allclose(compact.distances(q, metric), full.distances(q, metric), rtol=1e-5, atol=1e-5)
    i_c, d_c, m_c = compact.query(q, k=9, metric=metric, exclude=17)
    i_f, d_f, m_f = full.query(q, k=9, metric=metric, exclude=17)
    assert 17 not in i_c
    np.testing.assert_array_equal(i_c, i_f)
    assert m_c == pytest.approx(m_f, rel=1e-5)
    # and they are the neighbours an exhaustive search finds
    i_n, _ = nearest(q, values, k=9, metric=metric, exclude=[17])
    np.testing.assert_array_equal(i_c, i_n)


def test_float16_rows_search_as_their_float32_values(codes):
    half = (codes[:500].astype(np.float32) / 7).astype(np.float16)
    compact, full = SearchIndex(half), SearchIndex(half.astype(np.float32))
    q = full.row(3)
    np.testing.assert_allclose(compact.distances(q, "euclidean"), full.distances(q, "euclidean"), rtol=1e-5, atol=1e-4)


def test_a_query_over_codes_never_holds_the_decoded_rows():
    rows = np.random.default_rng(0).integers(0, 256, (20_000, 3072), dtype=np.uint8)  # 61 MB; 246 MB as float32
    index = SearchIndex(rows, divisor=255.0)
    tracemalloc.start()
    try:
        index.query(index.row(5), k=8, metric="euclidean", exclude=5)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * BLOCK_ROWS * 3072 * 4, f"a query held {peak / 2**20:.0f} MB"  # a few blocks, not 246 MB


def test_bad_codes_and_divisors_are_refused():
    with pytest.raises(ConfigurationError, match="divisor"):
        SearchIndex(np.zeros((3, 2), np.uint8), divisor=0)
    with pytest.raises(ConfigurationError, match="divisor"):
        SearchIndex(np.zeros((3, 2), np.uint8), divisor=float("nan"))
    with pytest.raises(ConfigurationError):
        SearchIndex(np.array([[np.inf, 1]], np.float16))


def test_smallest_breaks_ties_by_index_and_keeps_to_its_pool():
    d = np.array([0.5, 0.1, 0.1, 0.9, 0.1, 0.3], np.float32)
    idx, dist = smallest(d, 3)
    assert idx.tolist() == [1, 2, 4] and dist.tolist() == pytest.approx([0.1, 0.1, 0.1])
    idx, _ = smallest(d, 3, pool=[0, 3, 4, 5])
    assert idx.tolist() == [4, 5, 0]
    idx, dist = smallest(d, 10, pool=[3])
    assert idx.tolist() == [3] and len(dist) == 1
    assert smallest(d, 2, pool=[])[0].size == 0
