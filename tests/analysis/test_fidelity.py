import numpy as np
import pytest

from deepviz.analysis.fidelity import layout_knn_accuracy, neighbour_preservation
from deepviz.errors import ConfigurationError


def test_a_layout_equal_to_the_data_keeps_every_neighbour_and_a_random_one_almost_none():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(800, 2))
    assert neighbour_preservation(X, X, k=10) == 1.0
    assert neighbour_preservation(X, rng.normal(size=(800, 2)), k=10) < 0.05  # chance: 10 / 799
    # A rotation and scale keep neighbourhoods.
    assert neighbour_preservation(X, 3 * X @ np.array([[0, -1], [1, 0]]), k=10) == 1.0


def test_knn_accuracy_is_one_on_separate_groups_and_chance_on_shuffled_labels(make_blobs):
    X, y = make_blobs(n_per=100, n_classes=4, dim=2)
    assert layout_knn_accuracy(X, y, k=10) == 1.0
    shuffled = np.random.default_rng(1).permutation(y)
    assert abs(layout_knn_accuracy(X, shuffled, k=10) - 0.25) < 0.1


def test_sampled_queries_estimate_the_full_value(make_blobs):
    X, y = make_blobs(n_per=300, n_classes=3, dim=2, spread=4.0)
    full = layout_knn_accuracy(X, y, k=10)
    assert 0.5 < full < 1.0  # the groups overlap
    assert layout_knn_accuracy(X, y, k=10, max_queries=400) == pytest.approx(full, abs=0.06)


def test_bad_arguments():
    X = np.zeros((10, 2))
    with pytest.raises(ConfigurationError, match=r"Y has 9 points but X has 10; they must be the same points"):
        neighbour_preservation(X, X[:9])
    with pytest.raises(ConfigurationError, match=r"k=10 neighbours need more than 10 images; lower k"):
        layout_knn_accuracy(X, np.zeros(10, int), k=10)
    with pytest.raises(ConfigurationError, match=r"max_queries must be"):
        layout_knn_accuracy(X, np.zeros(10, int), k=3, max_queries=0)
