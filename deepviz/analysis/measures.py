"""The measures of the ``layer_quality`` table: one dict of numbers per representation.

:func:`layer_measures` is what the derived service stores for every layer at
every step (and for the probe pixels, the baseline).  It bounds its cost by
seeded row subsamples, so a 2,000-image run takes a minute or two on two
cores, and it turns a measure that these data cannot define (a constant
layer, a class with one image) into NaN rather than an error: a timeline of
one layer must not lose every step because step 0's ReLUs are all dead.
"""

from __future__ import annotations

import warnings

import numpy as np

from deepviz.errors import ConfigurationError

from .colour import neighbourhood_agreement
from .quality import class_purity, knn_accuracy, linear_probe_accuracy, mean_image_accuracy, silhouette

__all__ = ["QUALITY_METRICS", "layer_measures", "mean_image_measures", "subsample_rows"]

#: The metrics of :func:`layer_measures`, named as :mod:`deepviz.analysis.quality` names them.
QUALITY_METRICS = (
    "knn_accuracy", "linear_probe_accuracy", "silhouette", "class_purity", "colour_agreement", "class_agreement",
)

KNN_K = 5  # neighbours of the leave-one-out k-NN vote
AGREEMENT_K = 10  # neighbourhood size of colour/class agreement
LINEAR_ROWS = 1000  # rows of the linear probe (logistic regression with 3-fold CV)
SILHOUETTE_ROWS = 1000  # rows the silhouette is estimated on
PURITY_ROWS = 2000  # rows k-means is fitted on


def subsample_rows(n: int, cap: int, random_state: int) -> np.ndarray:
    """Deterministic sorted subsample of ``cap`` of ``n`` row indices (all of them when n <= cap)."""
    if n <= cap:
        return np.arange(n)
    return np.sort(np.random.default_rng(random_state).choice(n, cap, replace=False))


def _safe(fn, *args, **kwargs) -> float:
    """A measure that cannot be defined for these data is NaN."""
    try:
        with warnings.catch_warnings():
            # lbfgs not fully converged after 300 iterations is still a fine estimate here.
            warnings.simplefilter("ignore")
            value = float(fn(*args, **kwargs))
    except ConfigurationError:
        return float("nan")
    return value if np.isfinite(value) else float("nan")


def layer_measures(X, y, colour, random_state: int) -> dict[str, float]:
    """Every metric of :data:`QUALITY_METRICS` for one representation ``X`` (N, ...) of labelled images.

    ``colour`` holds the images' colour features (:func:`deepviz.analysis.colour_features`).
    """
    from threadpoolctl import threadpool_limits

    # One BLAS/OpenMP thread: these matrices are small, and on a busy machine
    # threads waiting for each other made the logistic regression and k-means
    # 3-7x slower than one thread; it also leaves cores to the web server.
    with threadpool_limits(limits=1):
        return _measures(np.asarray(X, dtype=np.float32).reshape(len(X), -1), np.asarray(y), colour, random_state)


def _measures(X: np.ndarray, y: np.ndarray, colour, random_state: int) -> dict[str, float]:
    n = X.shape[0]
    lin = subsample_rows(n, LINEAR_ROWS, random_state)
    pur = subsample_rows(n, PURITY_ROWS, random_state)
    out = {
        "knn_accuracy": _safe(knn_accuracy, X, y, k=min(KNN_K, n - 1), metric="cosine"),
        "linear_probe_accuracy": _safe(linear_probe_accuracy, X[lin], y[lin], random_state=random_state),
        "silhouette": _safe(silhouette, X, y, random_state=random_state, sample_size=SILHOUETTE_ROWS),
        "class_purity": _safe(class_purity, X[pur], y[pur], random_state=random_state),
    }
    try:
        agree = neighbourhood_agreement(X, y, colour, k=min(AGREEMENT_K, n - 1))
        out["colour_agreement"], out["class_agreement"] = agree["colour"], agree["class"]
    except ConfigurationError:
        out["colour_agreement"] = out["class_agreement"] = float("nan")
    return out


def mean_image_measures(pixels, y) -> dict[str, float]:
    """The ``mean_image`` baseline: leave-one-out nearest-class-mean accuracy on the pixels."""
    pixels = np.asarray(pixels)
    return {"mean_image_accuracy": _safe(mean_image_accuracy, pixels.reshape(len(pixels), -1), y)}
