"""How conv filters change between two steps, and which ones are dead."""

from __future__ import annotations

import numpy as np

from deepviz.errors import ConfigurationError

__all__ = ["DEAD_FRACTION", "dead_filters", "filter_change", "filter_norms"]

#: A filter is dead when its L2 norm is below this fraction of its layer's median filter norm.
DEAD_FRACTION = 0.01


def _per_filter(w, name: str) -> np.ndarray:
    w = np.asarray(w, dtype=np.float64)
    if w.ndim < 2 or w.shape[0] == 0:
        raise ConfigurationError(f"{name} must be (filters, ...) with at least one filter; got shape {w.shape}.")
    if not np.isfinite(w).all():
        raise ConfigurationError(f"{name} contains NaN or inf; a diverged layer has no change to measure.")
    return w.reshape(w.shape[0], -1)


def filter_norms(weights) -> np.ndarray:
    """(F,) L2 norm of each filter of a ``(filters, ...)`` weight."""
    return np.linalg.norm(_per_filter(weights, "weights"), axis=1)


def filter_change(before, after) -> np.ndarray:
    """(F,) bounded relative change of each filter: ``|a - b| / (|a| + |b|)``, in [0, 1].

    0 means unchanged; 0.5 is a change as large as the filter itself; 1 means
    the filter was replaced outright: it fell to zero, came from zero, or
    flipped its sign.  Unlike ``|a - b| / |b|`` it cannot blow up when a
    filter's norm passed near zero (that ratio read 127013150 % for one that
    died and revived).  Two all-zero filters have changed by 0.
    """
    b, a = _per_filter(before, "before"), _per_filter(after, "after")
    if a.shape != b.shape:
        raise ConfigurationError(
            f"before has shape {np.shape(before)} and after {np.shape(after)}; the filters of one layer at two "
            "steps must have the same shape."
        )
    diff = np.linalg.norm(a - b, axis=1)
    total = np.linalg.norm(a, axis=1) + np.linalg.norm(b, axis=1)
    return np.where(total > 0, diff / np.where(total > 0, total, 1.0), 0.0)


def dead_filters(weights, fraction: float = DEAD_FRACTION) -> np.ndarray:
    """(F,) bool: filters whose L2 norm is below ``fraction`` of the layer's median filter norm."""
    if not 0 < fraction < 1:
        raise ConfigurationError(f"fraction={fraction!r} must be between 0 and 1 (exclusive), e.g. {DEAD_FRACTION}.")
    norms = filter_norms(weights)
    return norms < fraction * float(np.median(norms))
