import numpy as np
import pytest

from deepviz.analysis.weights import DEAD_FRACTION, dead_filters, filter_change, filter_norms
from deepviz.errors import ConfigurationError


def conv(seed=0, n=6):
    return np.random.default_rng(seed).normal(size=(n, 3, 3, 3)).astype(np.float32)


def test_filter_change_is_bounded_and_names_the_extremes():
    w = conv()
    np.testing.assert_allclose(filter_change(w, w), 0.0)
    np.testing.assert_allclose(filter_change(w, -w), 1.0)  # flipped
    np.testing.assert_allclose(filter_change(w, 2 * w), 1 / 3, rtol=1e-6)  # |w| / (2|w| + |w|)
    died = w.copy()
    died[2] = 0
    assert filter_change(w, died)[2] == pytest.approx(1.0) and filter_change(died, w)[2] == pytest.approx(1.0)
    # The old measure |a - b| / |b| read 127013150 % for a filter whose norm fell near zero and came back.
    tiny = w.copy()
    tiny[1] *= 1e-6
    revived = filter_change(tiny, w)
    assert 0 <= revived.min() and revived.max() <= 1 and revived[1] == pytest.approx(1.0, abs=1e-5)
    both_zero = np.zeros((2, 1, 3, 3))
    np.testing.assert_array_equal(filter_change(both_zero, both_zero), [0.0, 0.0])
    rng = np.random.default_rng(1)
    for _ in range(20):  # bounded for any pair
        c = filter_change(rng.normal(size=(4, 2, 3, 3)) * rng.exponential(size=(4, 1, 1, 1)), rng.normal(size=(4, 2, 3, 3)))
        assert ((0 <= c) & (c <= 1)).all()


def test_dead_filters_are_the_ones_far_below_the_median_norm():
    w = conv(n=8)
    w[3] *= DEAD_FRACTION / 10
    w[5] = 0
    dead = dead_filters(w)
    assert dead.tolist() == [i in (3, 5) for i in range(8)]
    np.testing.assert_allclose(filter_norms(w), np.linalg.norm(w.reshape(8, -1), axis=1), rtol=1e-6)
    assert not dead_filters(conv(n=8)).any()


@pytest.mark.parametrize(("call", "match"), [
    (lambda: filter_change(conv(n=4), conv(n=5)), r"before has shape \(4, 3, 3, 3\) and after \(5, 3, 3, 3\)"),
    (lambda: filter_change(np.full((2, 3), np.nan), np.ones((2, 3))), "before contains NaN or inf"),
    (lambda: filter_norms(np.ones(3)), r"weights must be \(filters, ...\) with at least one filter; got shape \(3,\)"),
    (lambda: dead_filters(conv(), fraction=1.5), "fraction=1.5 must be between 0 and 1"),
])
def test_errors(call, match):
    with pytest.raises(ConfigurationError, match=match):
        call()
