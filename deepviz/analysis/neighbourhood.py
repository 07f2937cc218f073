"""How much each image's neighbourhood changed between two embeddings of the same images.

The measure is ``1 - Jaccard(N_A(i), N_B(i))``, where ``N_S(i)`` is the set of
the ``k`` nearest other images of image ``i`` in embedding ``S`` (e.g. one
layer at steps A and B): 0 when an image keeps the same neighbours, 1 when it
shares none. It compares neighbour sets, not coordinates, so it needs no
alignment between the two embeddings and is unchanged by any rotation,
scaling or shift of either one (for cosine, by any rotation or scaling).
"""

from __future__ import annotations

import numpy as np

from deepviz.errors import ConfigurationError

from ._checks import as_matrix, check_metric, neighbours_k
from .colour import _knn_sets
from .neighbours import distances


def _pair(XA, XB, k, metric) -> tuple[np.ndarray, np.ndarray, int]:
    """The two embeddings as matrices of the same images, and k, checked."""
    A = as_matrix(XA, "XA", min_rows=2)
    B = as_matrix(XB, "XB", min_rows=2)
    if A.shape[0] != B.shape[0]:
        raise ConfigurationError(
            f"XA has {A.shape[0]} rows but XB has {B.shape[0]}; both must hold the same images in the same order."
        )
    check_metric(metric, 3)
    return A, B, neighbours_k(k, A.shape[0])


def neighbourhood_change(XA, XB, k: int = 10, metric: str = "cosine") -> np.ndarray:
    """(N,) float64 in [0, 1]: ``1 - |N_A ∩ N_B| / |N_A ∪ N_B|`` of each row's k-NN sets."""
    A, B, k = _pair(XA, XB, k, metric)
    both = np.sort(np.hstack([_knn_sets(A, k, metric), _knn_sets(B, k, metric)]), axis=1)
    # Each set holds distinct rows, so a value seen twice is in both sets.
    shared = (both[:, 1:] == both[:, :-1]).sum(axis=1)
    return 1.0 - shared / (2 * k - shared)


def neighbour_drift(XA, XB, k: int = 10, metric: str = "cosine") -> np.ndarray:
    """(N,) float64 >= 0: how far each image's k neighbours at A have drifted from it at B.

    The mean distance at B from image ``i`` to its ``k`` nearest neighbours at A,
    divided by its mean distance at B to every other image: near 0 when the old
    neighbours are still right beside it, near 1 when they are as far as a
    typical image, above 1 when further. It orders images that share no
    neighbour (``neighbourhood_change`` 1.0 for all of them) by how far their
    old neighbourhood went, and, being a ratio, is unchanged by any scaling of B.
    """
    A, B, k = _pair(XA, XB, k, metric)
    old = _knn_sets(A, k, metric)
    out = np.empty(B.shape[0])
    for s in range(0, B.shape[0], 1024):
        d = distances(B[s:s + 1024], B, metric)
        rows = np.arange(d.shape[0])
        typical = (d.sum(axis=1) - d[rows, rows + s]) / (B.shape[0] - 1)
        near = np.take_along_axis(d, old[s:s + 1024], axis=1).mean(axis=1)
        out[s:s + 1024] = np.divide(near, typical, out=np.zeros_like(near), where=typical > 0)
    return out
