import numpy as np
import pytest
from scipy.spatial.distance import cdist

from deepviz.analysis import knn_graph as G
from deepviz.analysis.synthetic import drifting_blobs
from deepviz.errors import ConfigurationError


def _true_neighbours(X, k):
    d = cdist(X, X)
    np.fill_diagonal(d, np.inf)
    return np.argsort(d, axis=1, kind="stable")[:, :k], np.sort(d, axis=1)[:, :k]


def _recall(graph, truth) -> float:
    return float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(graph.indices, truth)]))


def test_exact_graph_is_every_point_s_nearest_others():
    X = drifting_blobs(300, 1, 12, seed=1)[1][0]
    graph = G.neighbour_graph(X, 10)
    idx, dist = _true_neighbours(X, 10)
    assert graph.indices.shape == (300, 10) and graph.k == 10
    assert not (graph.indices == np.arange(300)[:, None]).any()  # nobody is their own neighbour
    np.testing.assert_allclose(graph.distances, dist, rtol=1e-4)
    assert _recall(graph, idx) > 0.99  # ties aside, the same lists


@pytest.mark.slow  # compiles pynndescent's numba code (a minute on a loaded machine)
def test_descent_seeded_from_the_previous_step_finds_this_step_s_neighbours(monkeypatch):
    labels, (X0, X1) = drifting_blobs(1500, 2, 16, spread=0.5, drift=0.2, seed=2)
    monkeypatch.setattr(G, "EXACT_MAX_N", 500)  # take the approximate path at a test's size
    before = G.neighbour_graph(X0, 15, random_state=0)
    after = G.neighbour_graph(X1, 15, init=before, random_state=0)
    truth0, truth1 = _true_neighbours(X0, 15)[0], _true_neighbours(X1, 15)[0]
    assert _recall(before, truth0) > 0.95
    # Seeded from step 0's lists, the search repairs them into step 1's, not step 0's.
    assert _recall(after, truth1) > 0.95 and _recall(after, truth1) > _recall(before, truth1) + 0.1
    assert not (after.indices == np.arange(1500)[:, None]).any()


def test_drop_self_keeps_k_others_even_when_a_duplicate_comes_first():
    idx = np.array([[0, 1, 2], [0, 1, 2], [1, 0, 2]])  # row 1's own entry is second, after a duplicate
    dist = np.array([[0.0, 1, 2], [0, 0, 3], [0, 1, 1]], dtype=np.float32)
    kept, d = G.drop_self(idx, np.arange(3), dist)
    np.testing.assert_array_equal(kept, [[1, 2], [0, 2], [1, 0]])
    np.testing.assert_array_equal(d, [[1, 2], [0, 3], [0, 1]])


def test_bad_arguments_say_what_is_allowed():
    X = np.random.default_rng(0).normal(size=(20, 3))
    with pytest.raises(ConfigurationError, match=r"k=20 neighbours need more than 20 points; lower k"):
        G.neighbour_graph(X, 20)
    small = G.neighbour_graph(X[:10], 3)
    with pytest.raises(ConfigurationError, match=r"init is a graph of 10 points with 3 neighbours each; it must cover the same 20 points"):
        G.neighbour_graph(X, 3, init=small)
    with pytest.raises(ConfigurationError, match=r"k must be"):
        G.neighbour_graph(X, 0)
