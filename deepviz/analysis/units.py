"""Unit statistics over stored activations: which probe images excite each unit most."""

from __future__ import annotations

import numbers

import numpy as np

from deepviz.errors import ConfigurationError

__all__ = ["top_k_per_unit"]


def top_k_per_unit(acts: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` strongest rows for every column of ``acts`` ``(N, D)``.

    Returns ``(indices, values)``, each ``(D, k)``: row indices into ``acts``
    (int64) and their activations (float32), strongest first.  Ties keep probe
    order; NaN ranks last.  ``k`` larger than N is cut to N.
    """
    acts = np.asarray(acts)
    if acts.ndim != 2 or acts.shape[0] == 0:
        raise ConfigurationError(
            f"acts must be a non-empty (N probes, D units) array, got shape {acts.shape}; pool conv maps "
            "per channel first."
        )
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise ConfigurationError(f"k={k!r} must be an int >= 1 (images per unit).")
    k = min(int(k), acts.shape[0])
    # Stable sort of the negation: descending, ties in probe order; NaN sorts last.
    order = np.argsort(-acts, axis=0, kind="stable")[:k].T
    values = np.take_along_axis(acts.T, order, axis=1)
    return order.astype(np.int64), values.astype(np.float32)
