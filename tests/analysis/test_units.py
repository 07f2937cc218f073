"""deepviz.analysis.units: the probe images that excite each unit most."""

import numpy as np
import pytest

from deepviz.analysis import top_k_per_unit
from deepviz.errors import ConfigurationError


def test_top_k_per_unit_agrees_with_argsort():
    rng = np.random.default_rng(0)
    acts = rng.normal(size=(50, 7)).astype(np.float32)
    idx, vals = top_k_per_unit(acts, 5)
    assert idx.shape == vals.shape == (7, 5) and idx.dtype == np.int64 and vals.dtype == np.float32
    for unit in range(7):
        expected = np.argsort(acts[:, unit])[::-1][:5]
        np.testing.assert_array_equal(idx[unit], expected)
        np.testing.assert_array_equal(vals[unit], acts[expected, unit])
        assert np.all(np.diff(vals[unit]) <= 0)


def test_top_k_per_unit_ties_keep_probe_order_and_k_is_capped():
    acts = np.array([[1.0], [3.0], [3.0], [np.nan], [2.0]], dtype=np.float32)
    idx, vals = top_k_per_unit(acts, 10)
    np.testing.assert_array_equal(idx[0], [1, 2, 4, 0, 3])
    assert np.isnan(vals[0, -1])


@pytest.mark.parametrize(
    ("acts", "k", "message"),
    [
        (np.zeros((4, 2, 2)), 1, r"acts must be a non-empty \(N probes, D units\) array, got shape \(4, 2, 2\)"),
        (np.zeros((0, 3)), 1, r"got shape \(0, 3\)"),
        (np.zeros((4, 3)), 0, r"k=0 must be an int >= 1"),
    ],
)
def test_top_k_per_unit_refuses_bad_input(acts, k, message):
    with pytest.raises(ConfigurationError, match=message):
        top_k_per_unit(acts, k)
