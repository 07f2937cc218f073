"""Each point's nearest neighbours: exact at small N, approximate at large N,
and seeded from the previous step's lists.

t-SNE's affinities are built from each point's ``3 * perplexity`` nearest
neighbours. Between two snapshots of a layer those lists barely change, so a
step's search starts from the previous step's graph (pynndescent's
``init_graph``) instead of from random projection trees: the descent then
only has to repair the few lists that did change.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deepviz.errors import ConfigurationError

from ._checks import as_matrix, positive_int

__all__ = ["EXACT_MAX_N", "NeighbourGraph", "neighbour_graph", "drop_self"]

#: Up to this many points a brute-force search (BLAS) beats NN-descent here:
#: 20,000 x 50 dims, 91 neighbours: 3.4 s exact against 30 s for pynndescent
#: from scratch (2 cores, load ~5).
EXACT_MAX_N = 20_000

#: NN-descent when starting from the previous step's graph: most lists are
#: already right, so a couple of rounds over few candidates repair the rest.
#: 20,000 x 50 dims, 91 neighbours, a step that drifted (bench data, drift 0.1):
#: 8.6 s and recall 0.972 against 14.6 s for the exact search at the same load
#: (~11, 2 cores); pynndescent from scratch took 30 s at load ~5. The exact
#: search grows with N squared, the seeded descent about with N.
SEEDED_N_ITERS = 2
SEEDED_MAX_CANDIDATES = 20


@dataclass(frozen=True)
class NeighbourGraph:
    """``indices`` (N, k) int64, nearest first, the point itself left out; ``distances`` (N, k) float32 (euclidean)."""

    indices: np.ndarray
    distances: np.ndarray

    @property
    def k(self) -> int:
        return self.indices.shape[1]


def neighbour_graph(X, k: int, *, init: NeighbourGraph | None = None, random_state: int = 0,
                    n_jobs: int = 1) -> NeighbourGraph:
    """The ``k`` nearest other points of every row of ``X`` (euclidean).

    Exact up to :data:`EXACT_MAX_N` rows; above, pynndescent, started from
    ``init`` (the same points' graph at the previous step) when given.
    """
    X = as_matrix(X, min_rows=2)
    k = positive_int(k, "k")
    n = X.shape[0]
    if k >= n:
        raise ConfigurationError(f"k={k} neighbours need more than {n} points; lower k (perplexity).")
    if init is not None and (init.indices.shape[0] != n or init.k < k):
        raise ConfigurationError(
            f"init is a graph of {init.indices.shape[0]} points with {init.k} neighbours each; "
            f"it must cover the same {n} points with at least k={k}. Pass init=None to search afresh."
        )
    if n <= EXACT_MAX_N:
        return _exact(X, k, n_jobs)
    return _descent(X, k, init, random_state, n_jobs)


def _exact(X, k, n_jobs) -> NeighbourGraph:
    from sklearn.neighbors import NearestNeighbors

    # kneighbors() without a query leaves each point out of its own list.
    dist, idx = NearestNeighbors(n_neighbors=k, algorithm="brute", n_jobs=n_jobs).fit(X).kneighbors()
    return NeighbourGraph(idx.astype(np.int64), dist.astype(np.float32))


def _descent(X, k, init, random_state, n_jobs) -> NeighbourGraph:
    import pynndescent  # loads numba: imported only for large N

    options = {}
    if init is not None:
        # pynndescent's lists include the point itself first.
        seed = np.column_stack([np.arange(X.shape[0]), init.indices[:, :k]]).astype(np.int32)
        options = {"init_graph": seed, "tree_init": False, "n_iters": SEEDED_N_ITERS,
                   "max_candidates": SEEDED_MAX_CANDIDATES}
    index = pynndescent.NNDescent(X, n_neighbors=k + 1, random_state=random_state, n_jobs=n_jobs, **options)
    idx, dist = index.neighbor_graph
    idx, dist = drop_self(idx, np.arange(X.shape[0]), dist)
    return NeighbourGraph(idx.astype(np.int64), dist.astype(np.float32))


def drop_self(idx: np.ndarray, rows: np.ndarray, *others: np.ndarray) -> tuple[np.ndarray, ...]:
    """Lists of k + 1 neighbours of the points ``rows`` that hold each point itself -> k others.

    A point's own entry is normally first; with duplicates it may come later
    or be missing (then the list's last entry goes). ``others`` (distances)
    are cut the same way.
    """
    n, width = idx.shape
    keep = idx != np.asarray(rows)[:, None]
    keep[keep.sum(axis=1) == width, -1] = False
    return tuple(a[keep].reshape(n, width - 1) for a in (idx, *others))
