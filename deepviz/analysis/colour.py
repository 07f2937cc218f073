"""Colour or meaning?  Whether a layer groups images by colour statistics or by class.

Early layers of a CNN often put images of the same colour together; later
layers should put images of the same class together.  :func:`neighbourhood_agreement`
puts a number on both for one layer at one step.
"""

from __future__ import annotations

import numpy as np

from deepviz.errors import ConfigurationError

from ._checks import as_labels, as_matrix, check_metric, neighbours_k
from .neighbours import distances

__all__ = ["colour_features", "colour_stats", "neighbourhood_agreement", "HIST_BINS", "LUMA"]

#: Bins per channel of the joint colour histogram (4 -> 64 bins for RGB).
HIST_BINS = 4
_CHANNELS = (1, 3, 4)


def _unit_pixels(images, channels_last: bool | None) -> np.ndarray:
    """(N, H, W, C) float32 in [0, 1], C in 1 or 3: the scaling :func:`colour_features` documents."""
    x = np.asarray(images)
    if x.ndim != 4:
        raise ConfigurationError(
            f"images must be 4-D, (N, H, W, C) or (N, C, H, W); got shape {x.shape}."
        )
    if channels_last is None:
        last, first = x.shape[3] in _CHANNELS, x.shape[1] in _CHANNELS
        if last and first:
            raise ConfigurationError(
                f"Cannot tell the channel axis of images with shape {x.shape}; "
                "pass channels_last=True or False."
            )
        if not (last or first):
            raise ConfigurationError(
                f"images of shape {x.shape} have no axis of 1, 3 or 4 channels at position 1 or 3."
            )
        channels_last = last
    if not channels_last:
        x = np.moveaxis(x, 1, 3)
    if x.shape[3] not in _CHANNELS:
        raise ConfigurationError(f"images must have 1, 3 or 4 channels; got {x.shape[3]}.")
    if x.shape[3] == 4:
        x = x[..., :3]
    if np.issubdtype(x.dtype, np.integer):
        return x.astype(np.float32) / 255.0
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise ConfigurationError("images contain NaN or infinite values.")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0 or hi > 1:
        x = (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
    return x


def colour_features(images, channels_last: bool | None = None) -> np.ndarray:
    """(N, F) float32: mean colour per channel, then a joint colour histogram.

    ``images`` is (N, H, W, C) or (N, C, H, W) with C in 1, 3, 4 (alpha is
    dropped); the layout is guessed from which axis has 1, 3 or 4 entries
    unless ``channels_last`` says.  uint8 is scaled by 1/255; float images
    already in [0, 1] are used as they are, others (e.g. normalised tensors)
    are rescaled by their overall min and max, so colours are then relative.
    The histogram has HIST_BINS**C bins and sums to 1 per image.
    """
    x = _unit_pixels(images, channels_last)
    n, c = x.shape[0], x.shape[3]
    flat = x.reshape(n, -1, c)
    q = np.minimum((flat * HIST_BINS).astype(np.int64), HIST_BINS - 1)
    code = (q * (HIST_BINS ** np.arange(c))).sum(axis=2)  # (N, HW) joint bin
    n_bins = HIST_BINS**c
    hist = np.bincount((code + n_bins * np.arange(n)[:, None]).ravel(), minlength=n * n_bins)
    hist = hist.reshape(n, n_bins) / flat.shape[1]
    return np.hstack([flat.mean(axis=1), hist]).astype(np.float32)


#: Rec. 601 luma weights: brightness as the eye weighs the three primaries.
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def colour_stats(images, channels_last: bool | None = None) -> dict[str, np.ndarray]:
    """Per image: ``mean_rgb`` (N, 3), ``brightness`` (N,) and ``saturation`` (N,), all in [0, 1].

    Pixels are scaled as in :func:`colour_features`, so for normalised inputs
    the values are relative to the whole set.  ``brightness`` is the mean Rec.
    601 luma; ``saturation`` the mean HSV saturation ``(max - min) / max`` of
    the pixels (0 for a black pixel).  A grey image (C = 1) has its one
    channel repeated as the mean colour and saturation 0.
    """
    x = _unit_pixels(images, channels_last)
    if x.shape[3] == 1:
        x = np.repeat(x, 3, axis=3)
    flat = x.reshape(x.shape[0], -1, 3)
    top, bottom = flat.max(axis=2), flat.min(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        sat = np.where(top > 0, (top - bottom) / np.where(top > 0, top, 1), 0.0)
    return {
        "mean_rgb": flat.mean(axis=1).astype(np.float32),
        "brightness": (flat @ LUMA).mean(axis=1).astype(np.float32),
        "saturation": sat.mean(axis=1).astype(np.float32),
    }


def _knn_sets(F: np.ndarray, k: int, metric: str) -> np.ndarray:
    """(N, k) indices of each row's k nearest other rows."""
    out = np.empty((F.shape[0], k), dtype=np.int64)
    for s in range(0, F.shape[0], 1024):
        d = distances(F[s:s + 1024], F, metric)
        rows = np.arange(d.shape[0])
        d[rows, rows + s] = np.inf
        out[s:s + 1024] = np.argpartition(d, k - 1, axis=1)[:, :k]
    return out


def neighbourhood_agreement(X, class_labels, colour, k: int = 10, metric: str = "cosine") -> dict[str, float]:
    """How far the embedding's k-NN neighbourhoods follow class vs colour.

    For each image take its k nearest neighbours in ``X`` (``metric``):

    - ``class``: the fraction of them sharing the image's class;
    - ``colour``: the fraction that are also among its k nearest neighbours
      in ``colour`` (Euclidean; e.g. :func:`colour_features` output).

    Averaged over images.  ``class_chance`` (sum of squared class shares) and
    ``colour_chance`` (k / (N - 1)) are what a random embedding would score.
    """
    X = as_matrix(X, min_rows=2)
    y = as_labels(class_labels, "class_labels", n=X.shape[0])
    C = as_matrix(colour, "colour")
    if C.shape[0] != X.shape[0]:
        raise ConfigurationError(
            f"colour has {C.shape[0]} rows but X has {X.shape[0]}; they must be the same images."
        )
    check_metric(metric, 3)
    k = neighbours_k(k, X.shape[0])
    emb_nn = _knn_sets(X, k, metric)
    col_nn = _knn_sets(C, k, "euclidean")
    same_class = (y[emb_nn] == y[:, None]).mean()
    # Size of the intersection of the two k-sets of each row, via an (N, k, k) comparison.
    overlap = (emb_nn[:, :, None] == col_nn[:, None, :]).any(axis=2).mean()
    shares = np.bincount(np.unique(y, return_inverse=True)[1]) / y.size
    return {
        "class": float(same_class),
        "colour": float(overlap),
        "class_chance": float((shares**2).sum()),
        "colour_chance": k / (X.shape[0] - 1),
    }
