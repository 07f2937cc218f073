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

__all__ = ["BLOCK_ROWS", "SearchIndex", "smallest"]


#: Rows converted to float32 at a time when the index holds compact rows (uint8 codes, float16).
BLOCK_ROWS = 4096


class SearchIndex:
    """Rows of ``X`` (N, D) prepared for :meth:`query`; ``X`` is kept by reference, not copied.

    ``X`` may be compact: uint8 codes or float16 (the probe images as the db
    stores them, a quarter of float32). The rows searched are then
    ``X / divisor`` (or ``X``), converted :data:`BLOCK_ROWS` rows at a time,
    never all at once.
    """

    def __init__(self, X, divisor: float | None = None, sq_norms=None):
        arr = np.asarray(X)
        if divisor is None and arr.dtype == np.float32:
            self.X, self.divisor = as_matrix(arr, "X"), None
        else:
            if divisor is not None and not (np.isfinite(divisor) and divisor > 0):
                raise ConfigurationError(f"divisor must be a positive number; got {divisor!r}.")
            self.X = as_matrix(arr, "X", dtype=None, check_finite=False)
            self.divisor = None if divisor is None else float(divisor)
        if sq_norms is None:
            # A row's squared norm is finite exactly when every value in it is (float16 and codes cannot
            # overflow it): the check of compact rows costs no pass of its own.
            sq_norms = np.concatenate([np.einsum("ij,ij->i", b, b) for b in self._blocks()])
            if not np.isfinite(sq_norms).all():
                raise non_finite_error("X")
        elif np.shape(sq_norms) != (self.X.shape[0],):
            raise ConfigurationError(f"sq_norms must hold one value per row ({self.X.shape[0]}); got shape {np.shape(sq_norms)}.")
        self.sq_norms = np.asarray(sq_norms)
        self.norms = np.sqrt(self.sq_norms)

    def _blocks(self):
        """The rows as float32, a block at a time (all at once when ``X`` is float32 already)."""
        if self.X.dtype == np.float32 and self.divisor is None:
            yield self.X
            return
        for start in range(0, self.X.shape[0], BLOCK_ROWS):
            if self.divisor is None:
                yield self.X[start:start + BLOCK_ROWS].astype(np.float32)
            else:  # as StoredInputs.decode: code / divisor, in one pass
                yield np.divide(self.X[start:start + BLOCK_ROWS], np.float32(self.divisor), dtype=np.float32)

    def __len__(self) -> int:
        return self.X.shape[0]

    def row(self, i: int) -> np.ndarray:
        """Row ``i`` as searched: (D,) float32."""
        r = self.X[int(i)].astype(np.float32)
        return r / np.float32(self.divisor) if self.divisor is not None else r

    def distances(self, query, metric: str = "cosine", p: float = 3) -> np.ndarray:
        """(N,) float32 distances from one query (D,) to every row, as :func:`deepviz.analysis.distances`."""
        check_metric(metric, p)
        q = np.asarray(query, dtype=np.float32).ravel()
        if q.shape[0] != self.X.shape[1]:
            raise ConfigurationError(f"query has {q.shape[0]} features but X has {self.X.shape[1]}; they must match.")
        if not np.isfinite(q).all():
            raise non_finite_error("query")
        if metric == "minkowski":  # no shortcut: the difference of every pair is needed
            return np.concatenate([_distances(q, b, metric, p)[0] for b in self._blocks()])
        dots = np.concatenate([b @ q for b in self._blocks()])
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
            pool = np.delete(np.arange(d.shape[0]), int(exclude))
        else:
            pool = None
        idx, dist = smallest(d, k, pool)
        if idx.size == 0:
            return idx, dist, float("nan")
        return idx, dist, float(np.median(d if pool is None else d[pool]))


def smallest(d, k: int, pool=None) -> tuple[np.ndarray, np.ndarray]:
    """``(indices, distances)`` of the ``k`` smallest of distances ``d`` (N,), among the indices ``pool``
    (all when None); nearest first, equal distances lower index first."""
    d = np.asarray(d)
    k = positive_int(k, "k")
    pool = np.arange(d.shape[0]) if pool is None else np.asarray(pool, dtype=np.int64)
    kk = min(k, pool.size)
    if kk <= 0:
        return np.empty(0, np.int64), np.empty(0, d.dtype)
    sub = d[pool]
    part = np.argpartition(sub, kk - 1)[:kk] if kk < sub.size else np.arange(sub.size)
    order = np.lexsort((pool[part], sub[part]))  # by distance, then index
    idx = pool[part[order]]
    return idx.astype(np.int64), d[idx]
