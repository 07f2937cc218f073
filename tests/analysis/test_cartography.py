import numpy as np
import pytest

from deepviz.analysis.cartography import data_map, data_map_region
from deepviz.errors import ConfigurationError


def probs_from_preds(pred_rows, c=3, p=0.9):
    """(S, N, C) from per-image predicted classes over steps."""
    preds = np.array(pred_rows).T  # (S, N)
    out = np.full(preds.shape + (c,), (1 - p) / (c - 1))
    np.put_along_axis(out, preds[..., None], p, axis=2)
    return out


def test_an_image_that_flips_twice_has_two_forgetting_events():
    # correct -> wrong -> correct -> wrong, label 0
    table = data_map(probs_from_preds([[0, 1, 0, 1], [0, 0, 0, 0], [1, 1, 1, 1]]), [0, 0, 0])
    assert table.forgetting_events.tolist() == [2, 0, 0]
    assert table.correctness.tolist() == [0.5, 1.0, 0.0]
    assert list(table.columns) == ["confidence", "variability", "correctness", "forgetting_events"]


def test_confidence_and_variability():
    table = data_map(probs_from_preds([[0, 1, 0, 1], [0, 0, 0, 0]]), [0, 0])
    assert table.confidence[1] == pytest.approx(0.9) and table.variability[1] == pytest.approx(0)
    assert table.confidence[0] == pytest.approx((0.9 + 0.05) / 2)
    assert table.variability[0] == pytest.approx(0.425)


def test_regions():
    assert data_map_region(0.9, 0.05) == "easy"
    assert data_map_region(0.1, 0.05) == "hard"
    assert data_map_region(0.5, 0.3) == "ambiguous"
    out = data_map_region(np.array([0.9, 0.1]), np.array([0.0, 0.4]))
    assert out.tolist() == ["easy", "ambiguous"]


def test_errors():
    with pytest.raises(ConfigurationError, match=r"probs must be \(S steps, N images, C classes\); got shape \(2, 3\)"):
        data_map(np.ones((2, 3)), [0, 0, 0])
    with pytest.raises(ConfigurationError, match="labels has 2 entries but the data has 3 rows"):
        data_map(np.ones((2, 3, 4)), [0, 0])
    with pytest.raises(ConfigurationError, match=r"labels contains 4, outside 0..3"):
        data_map(np.ones((2, 3, 4)), [0, 0, 4])
    with pytest.raises(ConfigurationError, match=r"conf has shape \(2,\) but var has \(3,\)"):
        data_map_region(np.ones(2), np.ones(3))
    with pytest.raises(ConfigurationError, match="must be finite"):
        data_map_region(np.nan, 0.1)
