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

from ._checks import as_matrix, check_metric, positive_int
from .colour import _knn_sets


def neighbourhood_change(XA, XB, k: int = 10, metric: str = "cosine") -> np.ndarray:
    """(N,) float64 in [0, 1]: ``1 - |N_A ∩ N_B| / |N_A ∪ N_B|`` of each row's k-NN sets."""
    A = as_matrix(XA, "XA", min_rows=2)
    B = as_matrix(XB, "XB", min_rows=2)
    if A.shape[0] != B.shape[0]:
        raise ConfigurationError(
            f"XA has {A.shape[0]} rows but XB has {B.shape[0]}; both must hold the same images in the same order."
        )
    k = positive_int(k, "k")
    check_metric(metric, 3)
    if k >= A.shape[0]:
        raise ConfigurationError(f"k={k} neighbours need more than {A.shape[0]} images; lower k.")
    both = np.sort(np.hstack([_knn_sets(A, k, metric), _knn_sets(B, k, metric)]), axis=1)
    # Each set holds distinct rows, so a value seen twice is in both sets.
    shared = (both[:, 1:] == both[:, :-1]).sum(axis=1)
    return 1.0 - shared / (2 * k - shared)
