import numpy as np
import pytest

from deepviz.analysis.clusters import hdbscan, kmeans, purity, subclusters
from deepviz.errors import ConfigurationError


def test_kmeans_purity_on_separated_blobs_is_near_one(blobs):
    X, y = blobs
    labels = kmeans(X, 4, random_state=0)
    assert labels.shape == y.shape and set(labels) == {0, 1, 2, 3}
    assert purity(labels, y) > 0.98
    np.testing.assert_array_equal(labels, kmeans(X, 4, random_state=0))


def test_hdbscan_finds_the_blobs_without_k(blobs):
    X, y = blobs
    labels = hdbscan(X, min_cluster_size=10)
    assert len(set(labels) - {-1}) == 4
    assert purity(labels, y) > 0.9


def test_purity_properties():
    y = np.array([0, 0, 1, 1, 2, 2])
    assert purity(y, y) == 1.0
    assert purity(np.zeros(6, int), y) == pytest.approx(1 / 3)
    # Relabelling clusters changes nothing.
    assert purity(np.array([5, 5, 9, 9, 7, 7]), y) == 1.0
    # Noise (-1) is one cluster, not dropped.
    assert purity(np.array([-1, -1, -1, -1, 0, 0]), y) == pytest.approx(4 / 6)


def test_subclusters_find_two_modes_inside_one_class(make_blobs):
    rng = np.random.default_rng(0)
    X, y = make_blobs(n_per=30, n_classes=3, dim=8)
    rows = np.flatnonzero(y == 1)
    mode = np.arange(rows.size) % 2  # e.g. planes in the sky vs on the ground
    X = X.copy()
    X[rows] += np.where(mode[:, None] == 1, 3.0, -3.0) * rng.normal(size=8)[None, :].clip(0.5, 1.0)
    sub = subclusters(X, y, 1, k=2, random_state=0)
    assert sub.shape == (rows.size,)
    assert purity(sub, mode) == 1.0


def test_errors(blobs):
    X, y = blobs
    with pytest.raises(ConfigurationError, match=r"k=500 clusters asked for but X has only 160 rows"):
        kmeans(X, 500)
    with pytest.raises(ConfigurationError, match=r"k must be an integer >= 1; got 0"):
        kmeans(X, 0)
    with pytest.raises(ConfigurationError, match=r"min_cluster_size must be an integer >= 2; got 1"):
        hdbscan(X, min_cluster_size=1)
    with pytest.raises(ConfigurationError, match=r"min_cluster_size=999 exceeds the 160 rows"):
        hdbscan(X, min_cluster_size=999)
    with pytest.raises(ConfigurationError, match=r"min_samples must be an integer >= 1; got 0"):
        hdbscan(X, min_samples=0)
    with pytest.raises(ConfigurationError, match="cluster_labels is empty"):
        purity([], [])
    with pytest.raises(ConfigurationError, match="class_labels has 2 entries but the data has 3 rows"):
        purity([0, 1, 2], [0, 1])
    with pytest.raises(ConfigurationError, match=r"class_labels must hold integer class ids; got dtype <U1"):
        purity([0, 1], ["a", "b"])
    with pytest.raises(ConfigurationError, match=r"class_labels must be 1-D; got shape \(1, 2\)"):
        purity([0, 1], [[0, 1]])
    with pytest.raises(ConfigurationError, match=r"Class 7 has no rows. Classes present: 0, 1, 2, 3"):
        subclusters(X, y, 7)
    with pytest.raises(ConfigurationError, match=r"Class 0 has 40 rows, fewer than k=41"):
        subclusters(X, y, 0, k=41)
