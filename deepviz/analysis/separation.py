"""How well one fixed grouping of images separates in a layer, step by step.

The grouping is found once (e.g. the sub-clusters of one class at a reference
step) and then held fixed; each step's own activations say how far apart those
same images lie at that step.  The measure is the silhouette score: for each
image, (b - a) / max(a, b) with a its mean distance to its own group and b its
mean distance to the nearest other group, averaged over the images.  It lies in
-1..1: near 1 the groups are compact and far apart, near 0 they overlap, below 0
images sit closer to another group than to their own.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from deepviz.errors import ConfigurationError

from ._checks import as_labels, as_matrix

__all__ = ["SEPARATION_MEASURE", "SEPARATION_METRICS", "SEPARATED", "separation", "separation_over_steps"]

SEPARATION_MEASURE = "silhouette"
SEPARATION_METRICS = ("cosine", "euclidean")
#: Kaufman & Rousseeuw's bound for "a weak structure": a silhouette at or above it reads as separated.
SEPARATED = 0.25


def _groups(groups, n: int) -> np.ndarray:
    g = as_labels(groups, "groups", n=n)
    n_groups = np.unique(g).size
    if not 2 <= n_groups <= n - 1:
        raise ConfigurationError(
            f"A silhouette needs 2..{n - 1} groups among {n} images; groups has {n_groups}. "
            "Group the images into at least 2 groups, each smaller than the whole."
        )
    return g


def _metric(metric: str) -> str:
    if metric not in SEPARATION_METRICS:
        raise ConfigurationError(f"Unknown metric {metric!r}. Available: {', '.join(SEPARATION_METRICS)}.")
    return metric


def separation(X, groups, metric: str = "cosine") -> float:
    """Silhouette score (-1..1) of ``groups`` (one label per row) in the rows of ``X``."""
    from sklearn.metrics import silhouette_score

    X = as_matrix(X, min_rows=3)
    return float(silhouette_score(X, _groups(groups, X.shape[0]), metric=_metric(metric)))


def separation_over_steps(activations: Sequence, groups, metric: str = "cosine") -> list[float | None]:
    """The silhouette of one fixed grouping at every step: one value per entry of ``activations``.

    ``activations[t]`` is the (N, D) activations of the same N images, in the
    order of ``groups``, at step t; ``None`` marks a step that could not be
    read and gives ``None`` (a gap), so one bad step does not hide the others.
    """
    if len(activations) == 0:
        raise ConfigurationError("activations is empty; give one (N, D) array per step.")
    metric = _metric(metric)
    readable = [X for X in activations if X is not None]
    if not readable:
        raise ConfigurationError(f"All {len(activations)} steps are None (unreadable); nothing to measure.")
    n = np.asarray(readable[0]).shape[0]
    g = _groups(groups, n)
    out: list[float | None] = []
    for t, X in enumerate(activations):
        if X is None:
            out.append(None)
            continue
        rows = np.asarray(X).shape[0] if np.ndim(X) else 0
        if rows != n:
            raise ConfigurationError(
                f"activations[{t}] has {rows} rows but groups has {n}; every step must hold the same images."
            )
        out.append(separation(X, g, metric))
    return out
