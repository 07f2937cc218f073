"""Repeated similarity searches over one fixed set of rows (a layer at a step, or the probe pixels).

:func:`deepviz.analysis.nearest` recomputes the norms of every row on each
call; that is a second full pass over the matrix.  A :class:`SearchIndex`
computes them once, so a query is a single matrix-vector product plus an
``argpartition``: over 10,000 x 512 float32 rows, one memory pass of 20 MB.
Results are the same as ``nearest`` (same distances, ties to the lower index);
Minkowski distances have no such shortcut and are computed as ``distances`` does.
"""

from __future__ import annotations

import numpy as np

from deepviz.errors import ConfigurationError

from ._checks import as_matrix, check_metric, non_finite_error, positive_int
from .neighbours import distances as _distances

__all__ = ["SearchIndex"]


class SearchIndex:
    """Rows of ``X`` (N, D) prepared for :meth:`query`; ``X`` is kept by reference, not copied."""

    def __init__(self, X):
        self.X = as_matrix(X, "X")
        self.sq_norms = np.einsum("ij,ij->i", self.X, self.X)
        self.norms = np.sqrt(self.sq_norms)

    def __len__(self) -> int:
        return self.X.shape[0]

    def distances(self, query, metric: str = "cosine", p: float = 3) -> np.ndarray:
        """(N,) float32 distances from one query (D,) to every row, as :func:`deepviz.analysis.distances`."""
        check_metric(metric, p)
        q = np.asarray(query, dtype=np.float32).ravel()
        if q.shape[0] != self.X.shape[1]:
            raise ConfigurationError(f"query has {q.shape[0]} features but X has {self.X.shape[1]}; they must match.")
        if not np.isfinite(q).all():
            raise non_finite_error("query")
        if metric == "minkowski":  # no shortcut: the difference of every pair is needed
            return _distances(q, self.X, metric, p)[0]
        dots = self.X @ q
        if metric == "cosine":
            qn = float(np.sqrt(q @ q))
            denom = self.norms * qn
            with np.errstate(invalid="ignore", divide="ignore"):
                cos = np.where(denom > 0, dots / np.where(denom > 0, denom, 1), 0.0)
            return (1.0 - np.clip(cos, -1.0, 1.0)).astype(np.float32)
        sq = self.sq_norms + float(q @ q) - 2 * dots
        np.maximum(sq, 0, out=sq)  # rounding can push a self-distance below zero
        return (sq if metric == "sqeuclidean" else np.sqrt(sq)).astype(np.float32, copy=False)

    def query(self, query, k: int = 10, metric: str = "cosine", p: float = 3, exclude: int | None = None):
        """``(indices, distances, median_distance)``: the ``k`` nearest rows, nearest first.

        ``exclude`` leaves one row out (the query's own).  Equal distances are
        listed lower index first.  ``median_distance`` is the query's median
        distance to every row (``exclude`` left out), a scale for
        :func:`deepviz.analysis.similarity_percent`.
        """
        k = positive_int(k, "k")
        d = self.distances(query, metric, p)
        if exclude is not None:
            if isinstance(exclude, bool) or not 0 <= int(exclude) < d.shape[0]:
                raise ConfigurationError(f"exclude holds index {exclude!r}, outside 0..{d.shape[0] - 1}.")
            d = d.copy()
            d[int(exclude)] = np.inf
        n = d.shape[0] - (exclude is not None)
        kk = min(k, n)
        if kk <= 0:
            return np.empty(0, np.int64), np.empty(0, np.float32), float("nan")
        part = np.argpartition(d, kk - 1)[:kk] if kk < d.shape[0] else np.arange(d.shape[0])
        order = np.lexsort((part, d[part]))  # by distance, then index
        idx = part[order][:kk]
        pool = np.delete(d, int(exclude)) if exclude is not None else d
        return idx.astype(np.int64), d[idx], float(np.median(pool))
