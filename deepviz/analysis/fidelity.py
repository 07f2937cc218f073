"""How faithful a 2-D layout is to the layer it was made from.

Two measures, both in [0, 1], higher is better, both over the same sample of
query points so that two layouts of the same data compare fairly:

- ``layout_knn_accuracy``: each query point classified by the majority class of
  its k nearest other points *in the layout* (what a reader sees as "its group");
- ``neighbour_preservation``: the share of each point's k nearest neighbours in
  the layer that are also among its k nearest in the layout.
"""

from __future__ import annotations

import numpy as np

from deepviz.errors import ConfigurationError

from ._checks import as_labels, as_matrix, neighbours_k, positive_int
from .knn_graph import drop_self

__all__ = ["MAX_QUERIES", "layout_knn_accuracy", "neighbour_preservation"]

#: Query points sampled when there are more (the neighbour search over all points stays exact).
MAX_QUERIES = 5000


def _queries(n: int, max_queries: int, random_state: int) -> np.ndarray:
    max_queries = positive_int(max_queries, "max_queries")
    if n <= max_queries:
        return np.arange(n)
    return np.sort(np.random.default_rng(random_state).choice(n, max_queries, replace=False))


def _neighbours(X: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    """The k nearest other points of ``X[rows]`` (euclidean), each row's own index left out."""
    from sklearn.neighbors import NearestNeighbors

    idx = NearestNeighbors(n_neighbors=k + 1).fit(X).kneighbors(X[rows], return_distance=False)
    return drop_self(idx, rows)[0]


def layout_knn_accuracy(Y, labels, k: int = 10, *, max_queries: int = MAX_QUERIES, random_state: int = 0) -> float:
    """Leave-one-out k-NN accuracy of the (N, 2) layout ``Y``: majority vote of the k nearest other points."""
    Y = as_matrix(Y, "Y", min_rows=2)
    y = as_labels(labels, "labels", n=Y.shape[0])
    k = neighbours_k(k, Y.shape[0])
    rows = _queries(Y.shape[0], max_queries, random_state)
    _, yi = np.unique(y, return_inverse=True)
    votes = np.zeros((len(rows), yi.max() + 1))
    nn = _neighbours(Y, rows, k)
    np.add.at(votes, (np.repeat(np.arange(len(rows)), k), yi[nn].ravel()), 1.0)
    return float((votes.argmax(axis=1) == yi[rows]).mean())


def neighbour_preservation(X, Y, k: int = 10, *, max_queries: int = MAX_QUERIES, random_state: int = 0) -> float:
    """Mean share of each point's k nearest neighbours in ``X`` (N, D) kept among its k nearest in ``Y`` (N, 2)."""
    X = as_matrix(X, "X", min_rows=2)
    Y = as_matrix(Y, "Y", min_rows=2)
    if Y.shape[0] != X.shape[0]:
        raise ConfigurationError(f"Y has {Y.shape[0]} points but X has {X.shape[0]}; they must be the same points.")
    k = neighbours_k(k, X.shape[0])
    rows = _queries(X.shape[0], max_queries, random_state)
    high, low = _neighbours(X, rows, k), _neighbours(Y, rows, k)
    return float(np.mean([np.intersect1d(a, b).size / k for a, b in zip(high, low)]))
