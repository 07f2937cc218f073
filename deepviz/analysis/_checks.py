"""Argument checks shared by the analysis modules.

Each returns a clean numpy array or raises ConfigurationError whose message
names the argument, what was given and what is allowed.
"""

from __future__ import annotations

import numpy as np

from deepviz.errors import ConfigurationError

#: Distance metrics of the neighbour searches and of the measures built on them.
METRICS = ("cosine", "euclidean", "sqeuclidean", "minkowski")


def as_matrix(
    X, name: str = "X", *, min_rows: int = 1, dtype=np.float32, check_finite: bool = True
) -> np.ndarray:
    """``X`` as a finite 2-D float array; (N, ...) inputs are flattened to (N, D).

    ``check_finite=False`` skips the pass over the data, for callers that
    check their (smaller) result instead.
    """
    arr = np.asarray(X)
    if arr.ndim == 1 or arr.ndim == 0:
        raise ConfigurationError(
            f"{name} must be a 2-D array (N samples, D features); got shape {arr.shape}. "
            f"Pass one row per sample, e.g. X.reshape(len(X), -1)."
        )
    if arr.ndim > 2:
        arr = arr.reshape(arr.shape[0], -1)
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise ConfigurationError(f"{name} must hold real numbers; got dtype {arr.dtype}.")
    arr = np.ascontiguousarray(arr, dtype=dtype)
    if arr.shape[0] < min_rows:
        raise ConfigurationError(
            f"{name} has {arr.shape[0]} rows; at least {min_rows} are needed."
        )
    if arr.shape[1] == 0:
        raise ConfigurationError(f"{name} has no features (shape {arr.shape}).")
    if check_finite and not np.isfinite(arr).all():
        raise ConfigurationError(
            f"{name} contains NaN or infinite values; clean or impute them first."
        )
    return arr


def non_finite_error(name: str) -> ConfigurationError:
    return ConfigurationError(f"{name} contains NaN or infinite values; clean or impute them first.")


def as_labels(y, name: str = "labels", *, n: int | None = None) -> np.ndarray:
    """``y`` as a 1-D integer array, of length ``n`` when given."""
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ConfigurationError(f"{name} must be 1-D; got shape {arr.shape}.")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise ConfigurationError(
                f"{name} must hold integer class ids; got dtype {arr.dtype}."
            )
    arr = arr.astype(np.int64, copy=False)
    if n is not None and arr.shape[0] != n:
        raise ConfigurationError(
            f"{name} has {arr.shape[0]} entries but the data has {n} rows; they must match."
        )
    return arr


def check_range(labels: np.ndarray, n_classes: int, name: str) -> None:
    """Every label in 0..n_classes-1."""
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        bad = labels[(labels < 0) | (labels >= n_classes)][0]
        raise ConfigurationError(
            f"{name} contains {bad}, outside 0..{n_classes - 1} for n_classes={n_classes}."
        )


def positive_int(value, name: str, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigurationError(f"{name} must be an integer >= {minimum}; got {value!r}.")
    return int(value)


def check_metric(metric: str, p) -> None:
    """A metric of :data:`METRICS`; Minkowski also needs ``p >= 1``."""
    if metric not in METRICS:
        raise ConfigurationError(f"Unknown metric {metric!r}. Available: {', '.join(METRICS)}.")
    if metric == "minkowski" and (isinstance(p, bool) or not np.isscalar(p) or not p >= 1):
        raise ConfigurationError(
            f"Minkowski p must be a number >= 1 (p < 1 is not a metric); got p={p!r}."
        )


def neighbours_k(k, n_rows: int) -> int:
    """``k`` nearest neighbours among ``n_rows`` images: a positive int below ``n_rows``."""
    k = positive_int(k, "k")
    if k >= n_rows:
        raise ConfigurationError(f"k={k} neighbours need more than {n_rows} images; lower k.")
    return k
