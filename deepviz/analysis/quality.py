"""How well a layer's representation separates the classes, one number per metric.

Computed per layer per step with a fixed seed, so a curve over steps reflects
the network, not the randomness of the estimate.
"""

from __future__ import annotations

import numpy as np

from deepviz.errors import ConfigurationError

from ._checks import as_labels, as_matrix, check_metric, positive_int
from .clusters import kmeans, purity
from .neighbours import distances

__all__ = [
    "knn_accuracy", "linear_probe_accuracy", "silhouette", "class_purity",
    "mean_image_accuracy", "layer_quality",
]

#: Rows the linear probe and the silhouette are estimated on at most.
MAX_ROWS = 2000

_CHUNK = 1024  # query rows per block of the leave-one-out distance matrix


def _xy(X, y, min_classes: int = 1):
    X = as_matrix(X, min_rows=2)
    y = as_labels(y, "y", n=X.shape[0])
    n_classes = np.unique(y).size
    if n_classes < min_classes:
        raise ConfigurationError(
            f"y has {n_classes} distinct class(es); this measure needs at least {min_classes}."
        )
    return X, y


def _subsample(X, y, cap: int, random_state: int):
    if X.shape[0] <= cap:
        return X, y
    rows = np.sort(np.random.default_rng(random_state).choice(X.shape[0], cap, replace=False))
    return X[rows], y[rows]


def knn_accuracy(X, y, k: int = 5, metric: str = "cosine") -> float:
    """Leave-one-out k-NN accuracy: each row classified by its k nearest other rows.

    Majority vote; a tie goes to the class whose tied member is nearest.
    """
    X, y = _xy(X, y)
    k = positive_int(k, "k")
    check_metric(metric, 3)
    if k >= X.shape[0]:
        raise ConfigurationError(f"k={k} neighbours need more than {X.shape[0]} rows; lower k.")
    _, yi = np.unique(y, return_inverse=True)
    n_cls = yi.max() + 1
    # Vote weights 1 + tiny rank bonus: ties between classes go to the nearer one.
    w = 1.0 + (np.arange(k, 0, -1) * 1e-6)
    correct = 0
    for s in range(0, X.shape[0], _CHUNK):
        d = distances(X[s:s + _CHUNK], X, metric)
        rows = np.arange(d.shape[0])
        d[rows, rows + s] = np.inf  # leave the row itself out
        nn = np.argpartition(d, k - 1, axis=1)[:, :k]
        nn = np.take_along_axis(nn, np.argsort(np.take_along_axis(d, nn, axis=1), axis=1, kind="stable"), axis=1)
        votes = np.zeros((d.shape[0], n_cls))
        np.add.at(votes, (np.repeat(rows, k), yi[nn].ravel()), np.tile(w, d.shape[0]))
        correct += int((votes.argmax(axis=1) == yi[s:s + _CHUNK]).sum())
    return correct / X.shape[0]


def linear_probe_accuracy(X, y, cv: int = 3, random_state: int = 0) -> float:
    """Cross-validated accuracy of a standardised logistic regression.

    At most :data:`MAX_ROWS` rows (a seeded subsample) keep it to about a
    second per layer.  Stratified folds; ``cv`` is lowered to the size of the
    smallest class when that is smaller.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = _xy(X, y, min_classes=2)
    cv = positive_int(cv, "cv", minimum=2)
    X, y = _subsample(X, y, MAX_ROWS, random_state)
    folds = min(cv, int(np.bincount(np.unique(y, return_inverse=True)[1]).min()))
    if folds < 2:
        raise ConfigurationError(
            "linear_probe_accuracy needs at least 2 rows of every class for cross-validation; "
            "some class has only 1. Use a larger probe set."
        )
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=300))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=random_state)
    return float(cross_val_score(model, X, y, cv=splitter).mean())


def silhouette(X, y, random_state: int = 0, sample_size: int = MAX_ROWS) -> float:
    """Silhouette score of the classes (-1..1, Euclidean), on at most ``sample_size`` rows."""
    from sklearn.metrics import silhouette_score

    X, y = _xy(X, y, min_classes=2)
    sample_size = positive_int(sample_size, "sample_size", minimum=2)
    X, y = _subsample(X, y, sample_size, random_state)
    n_labels = np.unique(y).size
    if not 2 <= n_labels <= X.shape[0] - 1:
        raise ConfigurationError(
            f"silhouette needs 2..{X.shape[0] - 1} classes among {X.shape[0]} rows; got {n_labels}."
        )
    return float(silhouette_score(X, y, random_state=random_state))


def class_purity(X, y, random_state: int = 0) -> float:
    """Purity of k-means clusters (k = number of classes) against the classes."""
    X, y = _xy(X, y)
    return purity(kmeans(X, np.unique(y).size, random_state), y)


def mean_image_accuracy(X, y) -> float:
    """Leave-one-out accuracy of the nearest-class-mean classifier (Euclidean).

    On raw pixels this is the "mean image" baseline.  Exact leave-one-out in
    closed form: removing x from its class of n rows moves that class's mean so
    that ``|x - mean_without_x| = n / (n - 1) * |x - mean|``.  A row alone in
    its class cannot be predicted as that class.
    """
    X, y = _xy(X, y, min_classes=2)
    X = X.astype(np.float64)
    classes, yi = np.unique(y, return_inverse=True)
    counts = np.bincount(yi).astype(np.float64)
    means = np.zeros((classes.size, X.shape[1]))
    np.add.at(means, yi, X)
    means /= counts[:, None]
    d = (np.einsum("ij,ij->i", X, X)[:, None] + np.einsum("ij,ij->i", means, means)[None, :]
         - 2 * X @ means.T)
    np.maximum(d, 0, out=d)
    rows = np.arange(X.shape[0])
    n_own = counts[yi]
    with np.errstate(divide="ignore"):
        d[rows, yi] = np.where(n_own > 1, d[rows, yi] * (n_own / (n_own - 1)) ** 2, np.inf)
    return float((d.argmin(axis=1) == yi).mean())


def layer_quality(X, y, random_state: int = 0) -> dict[str, float]:
    """Every measure above for one layer at one step, as ``{name: value}``."""
    X, y = _xy(X, y, min_classes=2)
    return {
        "knn_accuracy": knn_accuracy(X, y, k=min(5, X.shape[0] - 1)),
        "linear_probe_accuracy": linear_probe_accuracy(X, y, random_state=random_state),
        "silhouette": silhouette(X, y, random_state=random_state),
        "class_purity": class_purity(X, y, random_state=random_state),
        "mean_image_accuracy": mean_image_accuracy(X, y),
    }
