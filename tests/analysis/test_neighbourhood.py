"""Neighbourhood change (1 - Jaccard of k-NN sets) between two embeddings of the same images."""

import numpy as np
import pytest

from deepviz.analysis.neighbourhood import neighbour_drift, neighbourhood_change
from deepviz.errors import ConfigurationError


@pytest.fixture
def X():
    return np.random.default_rng(0).normal(size=(200, 16)).astype(np.float32)


def test_the_same_embedding_changes_nothing_and_scores_lie_in_0_1(X):
    assert np.allclose(neighbourhood_change(X, X, k=8), 0)
    other = np.random.default_rng(1).normal(size=X.shape)
    s = neighbourhood_change(X, other, k=8)
    assert s.shape == (200,) and (s >= 0).all() and (s <= 1).all()
    assert s.mean() > 0.8  # unrelated embeddings share few neighbours


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_a_rotation_and_scaling_of_b_changes_nothing(X, metric):
    q, _ = np.linalg.qr(np.random.default_rng(2).normal(size=(16, 16)))
    assert np.allclose(neighbourhood_change(X, 3.0 * X @ q, k=5, metric=metric), 0)


def test_images_moved_into_another_group_score_highest():
    rng = np.random.default_rng(3)
    centres = np.array([[10.0, 0], [0, 10.0], [-10.0, 0]])
    labels = np.repeat([0, 1, 2], 40)
    A = centres[labels] + rng.normal(size=(120, 2))
    B = A.copy()
    moved = np.array([3, 17, 25])
    B[moved] = centres[2] + rng.normal(size=(3, 2))  # three images of group 0 now sit in group 2
    s = neighbourhood_change(A, B, k=6, metric="euclidean")
    assert set(np.argsort(-s)[:3]) == set(moved.tolist())
    assert (s[moved] == 1).all()


def test_one_shared_neighbour_of_two_is_one_minus_a_third():
    # Points on a line; in B the two end points swap: row 1's neighbours go from {0, 2} to {2, 3}.
    A = np.array([[0.0], [1.0], [2.0], [3.0], [10.0]])
    B = np.array([[2.9], [1.0], [2.0], [0.0], [10.0]])
    s = neighbourhood_change(A, B, k=2, metric="euclidean")
    assert s[1] == pytest.approx(1 - 1 / 3)


def test_bad_arguments_say_what_to_change(X):
    with pytest.raises(ConfigurationError, match="XA has 200 rows but XB has 10"):
        neighbourhood_change(X, X[:10])
    with pytest.raises(ConfigurationError, match="k=200 neighbours need more than 200 images"):
        neighbourhood_change(X, X, k=200)
    with pytest.raises(ConfigurationError, match="k must be an integer >= 1; got 0"):
        neighbourhood_change(X, X, k=0)
    with pytest.raises(ConfigurationError, match="Unknown metric 'manhattan'"):
        neighbourhood_change(X, X, metric="manhattan")


def test_drift_is_small_for_kept_neighbours_about_one_for_unrelated_and_ignores_scaling(X):
    kept = neighbour_drift(X, X, k=8)
    other = neighbour_drift(X, np.random.default_rng(1).normal(size=X.shape), k=8)
    assert kept.shape == (200,) and (kept >= 0).all() and kept.max() < other.min() + 0.3
    assert kept.mean() < 0.85 and 0.9 < other.mean() < 1.1
    for metric in ("cosine", "euclidean"):
        assert np.allclose(neighbour_drift(X, 4.0 * X, k=5, metric=metric), neighbour_drift(X, X, k=5, metric=metric))


@pytest.mark.parametrize("seed", range(5))
def test_drift_orders_images_that_share_no_neighbour_by_how_far_they_went(seed):
    # Groups at 0, 10 and 40 on a line; image a moves into the group at 10, image b into the far one at 40.
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0], [10.0, 0], [40.0, 0]])
    A = centres[np.repeat([0, 1, 2], 30)] + rng.normal(size=(90, 2))
    B = A.copy()
    a, b = rng.choice(30, size=2, replace=False)
    B[a] = centres[1] + rng.normal(size=2)
    B[b] = centres[2] + rng.normal(size=2)
    change = neighbourhood_change(A, B, k=6, metric="euclidean")
    drift = neighbour_drift(A, B, k=6, metric="euclidean")
    assert change[a] == change[b] == 1  # a tie on the Jaccard measure ...
    assert drift[b] > drift[a] > drift[np.setdiff1d(np.arange(90), [a, b])].max()  # ... that the drift breaks


def test_drift_checks_its_arguments_like_the_change(X):
    with pytest.raises(ConfigurationError, match="XA has 200 rows but XB has 10"):
        neighbour_drift(X, X[:10])
    with pytest.raises(ConfigurationError, match="k=200 neighbours need more than 200 images"):
        neighbour_drift(X, X, k=200)
