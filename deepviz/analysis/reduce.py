"""Narrowing wide activations before neighbour searches and clustering.

A 512-wide layer has far fewer directions that matter than it has units:
PCA to a few dozen components keeps the neighbourhoods t-SNE, UMAP and
k-means see (the distances they use are dominated by the leading components)
and makes every distance many times cheaper.
"""

from __future__ import annotations

import numpy as np

from ._checks import as_matrix, positive_int

__all__ = ["MAX_FIT_ROWS", "pca_reduce"]

#: The components are fitted on at most this many rows (a random sample), then
#: every row is projected: the leading directions of 100,000 rows are those of
#: any 20,000 of them, and the fit was 21 s of a 100,000 x 512 clustering.
MAX_FIT_ROWS = 20_000


def pca_reduce(X, n_components: int, random_state: int = 0) -> np.ndarray:
    """``X`` (N, D) projected on its first ``n_components`` principal components, as float32.

    Returned unchanged (as a float32 matrix) when it is no wider than that.
    Randomised SVD, fitted on at most :data:`MAX_FIT_ROWS` sampled rows;
    deterministic for a ``random_state``.
    """
    from sklearn.decomposition import PCA

    X = as_matrix(X)
    n_components = positive_int(n_components, "n_components")
    if X.shape[1] <= n_components or X.shape[0] <= n_components:
        return X
    pca = PCA(n_components=n_components, svd_solver="randomized", random_state=random_state)
    if X.shape[0] <= MAX_FIT_ROWS:
        return np.ascontiguousarray(pca.fit_transform(X), dtype=np.float32)
    rows = np.sort(np.random.default_rng(random_state).choice(X.shape[0], MAX_FIT_ROWS, replace=False))
    return np.ascontiguousarray(pca.fit(X[rows]).transform(X), dtype=np.float32)
