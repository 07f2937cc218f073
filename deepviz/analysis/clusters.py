"""Clusters in a layer's activations, and how well they match the classes."""

from __future__ import annotations

import numpy as np

from deepviz.errors import ConfigurationError

from ._checks import as_labels, as_matrix, positive_int
from .reduce import pca_reduce

__all__ = ["KMEANS_PCA_DIMS", "kmeans", "hdbscan", "purity", "subclusters"]

#: k-means runs on this many principal components of a wider layer.  k-means'
#: objective is a sum of squared distances, which the leading components carry
#: almost entirely.  On the CIFAR-10 subset run's activations (bench/clusters.py)
#: the partition agrees with k-means on the full width (same seed) better than
#: full-width k-means agrees with itself under another seed, and Lloyd's
#: iterations on the full width from it change no label; on hard synthetic
#: data tests/analysis/test_clusters.py checks adjusted Rand >= 0.9.
KMEANS_PCA_DIMS = 32


def kmeans(X, k: int, random_state: int = 0) -> np.ndarray:
    """k-means labels (N,) in 0..k-1, on the first :data:`KMEANS_PCA_DIMS` principal components of ``X``.

    Deterministic for a ``random_state``.
    """
    from sklearn.cluster import KMeans

    X = as_matrix(X)
    k = positive_int(k, "k")
    if k > X.shape[0]:
        raise ConfigurationError(f"k={k} clusters asked for but X has only {X.shape[0]} rows.")
    Z = pca_reduce(X, KMEANS_PCA_DIMS, random_state)
    return KMeans(n_clusters=k, n_init=4, random_state=random_state).fit_predict(Z).astype(np.int64)


def hdbscan(X, min_cluster_size: int = 5, min_samples: int | None = None) -> np.ndarray:
    """HDBSCAN labels (N,); ``-1`` marks noise.  Needs no number of clusters."""
    from sklearn.cluster import HDBSCAN

    X = as_matrix(X)
    min_cluster_size = positive_int(min_cluster_size, "min_cluster_size", minimum=2)
    if min_cluster_size > X.shape[0]:
        raise ConfigurationError(
            f"min_cluster_size={min_cluster_size} exceeds the {X.shape[0]} rows of X."
        )
    if min_samples is not None:
        min_samples = positive_int(min_samples, "min_samples")
    return HDBSCAN(min_cluster_size=min_cluster_size, min_samples=min_samples, copy=True).fit_predict(X).astype(np.int64)


def purity(cluster_labels, class_labels) -> float:
    """Fraction of points whose class is the majority class of their cluster.

    1.0 when every cluster holds one class.  HDBSCAN noise (``-1``) is treated
    as one more cluster, so noise lowers purity instead of being ignored.
    """
    clusters = as_labels(cluster_labels, "cluster_labels")
    classes = as_labels(class_labels, "class_labels", n=clusters.shape[0])
    if clusters.size == 0:
        raise ConfigurationError("purity of zero points is undefined; cluster_labels is empty.")
    _, ci = np.unique(clusters, return_inverse=True)
    _, ki = np.unique(classes, return_inverse=True)
    table = np.zeros((ci.max() + 1, ki.max() + 1), dtype=np.int64)
    np.add.at(table, (ci, ki), 1)
    return float(table.max(axis=1).sum() / clusters.size)


def subclusters(X, class_labels, cls: int, k: int = 2, random_state: int = 0) -> np.ndarray:
    """k-means inside one class, e.g. planes on the ground vs in the sky.

    Returns labels (0..k-1) for that class's rows only, in the order of
    ``np.flatnonzero(class_labels == cls)``.
    """
    X = as_matrix(X)
    classes = as_labels(class_labels, "class_labels", n=X.shape[0])
    rows = np.flatnonzero(classes == cls)
    if rows.size == 0:
        present = ", ".join(map(str, np.unique(classes)[:20]))
        raise ConfigurationError(f"Class {cls!r} has no rows. Classes present: {present}.")
    k = positive_int(k, "k")
    if rows.size < k:
        raise ConfigurationError(
            f"Class {cls} has {rows.size} rows, fewer than k={k} sub-clusters; lower k."
        )
    return kmeans(X[rows], k, random_state)
